"""The scheduler on small job graphs of real commands, run through the real job runner by a synchronous
executor: order, failures that stop only their dependants, killed jobs resubmitted (resumable ones with --c) up to
--max-retries, adoption of a job an earlier driver left running, and --no-wait."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List

from nnunet_archs.study.executors.base import Submission
from nnunet_archs.study.executors.local import LocalExecutor
from nnunet_archs.study.jobs import Job
from nnunet_archs.study.runner import DONE, run_job
from nnunet_archs.study.scheduler import Scheduler, write_commands

# exits 0 when given --c, else kills itself with SIGKILL (a training killed by a wall-time limit)
KILLED_UNLESS_CONTINUED = "import os, signal, sys; sys.exit(0) if '--c' in sys.argv else os.kill(os.getpid(), 9)"


class SynchronousExecutor:
    """Runs each submission at once through the real runner; nothing stays alive unless ``hold`` says so. The
    scheduler sees it as the local backend (it assigns devices, at most ``max_parallel`` jobs at once)."""

    name, assigns_devices = LocalExecutor.name, True

    def __init__(self, hold: bool = False):
        self.hold, self.submitted, self.warnings = hold, [], []

    def submit(self, submissions: List[Submission]) -> List[str]:
        ids = []
        for submission in submissions:
            self.submitted.append(submission)
            if not self.hold:
                run_job(str(submission.job_dir), submission.command, submission.env, submission.attempt)
            ids.append(str(len(self.submitted)))
        return ids

    def alive(self, job_id: str) -> bool:
        return self.hold

    def free_slots(self, ready: int, running: int) -> int:
        return 2 - running


def python(code: str) -> List[str]:
    return [sys.executable, "-c", code]


def scheduler(tmp_path: Path, jobs: List[Job], executor, max_retries: int = 2) -> Scheduler:
    return Scheduler(jobs, tmp_path / "jobs", tmp_path / "state.json", executor, max_parallel=2,
                     max_retries=max_retries, poll_seconds=0.01, log=lambda line: None)


def test_jobs_run_in_order_and_a_failure_stops_only_its_dependants(tmp_path):
    jobs = [Job("a", "x", python("pass")), Job("b", "x", python("raise SystemExit(3)"), deps=["a"]),
            Job("c", "x", python("pass"), deps=["b"]), Job("d", "x", python("pass"), deps=["a"])]
    executor = SynchronousExecutor()
    statuses = scheduler(tmp_path, jobs, executor).run()
    assert statuses == {"a": "done", "b": "failed", "c": "blocked", "d": "done"}
    assert [Path(s.job_dir).name for s in executor.submitted] == ["a", "b", "d"]
    failed = json.loads((tmp_path / "jobs" / "b" / "failed.json").read_text())
    assert failed["returncode"] == 3 and not failed["killed"]
    assert "exit status 3" in (tmp_path / "jobs" / "b" / "log.txt").read_text()


def test_a_killed_training_continues_with_dash_c(tmp_path):
    jobs = [Job("train", "train", python(KILLED_UNLESS_CONTINUED), resumable=True)]
    executor = SynchronousExecutor()
    assert scheduler(tmp_path, jobs, executor).run() == {"train": "done"}
    assert [s.command[-1] for s in executor.submitted] == [KILLED_UNLESS_CONTINUED, "--c"]
    state = json.loads((tmp_path / "state.json").read_text())
    assert [a["status"] for a in state["jobs"]["train"]["attempts"]] == ["killed", "done"]


def test_a_job_killed_more_than_max_retries_times_fails(tmp_path):
    always_killed = python("import os; os.kill(os.getpid(), 9)")
    executor = SynchronousExecutor()
    assert scheduler(tmp_path, [Job("j", "x", always_killed)], executor, max_retries=1).run() == {"j": "failed"}
    assert len(executor.submitted) == 2


def test_a_new_driver_adopts_running_jobs_and_retries_earlier_failures(tmp_path):
    jobs = [Job("slow", "x", python("pass")), Job("broken", "x", python("raise SystemExit(1)"))]
    held = SynchronousExecutor(hold=True)
    first = scheduler(tmp_path, jobs, held)
    assert first.run(wait=False) == {"slow": "running", "broken": "running"}
    assert len(held.submitted) == 2
    # that driver is gone; its jobs are still alive: a new driver submits nothing new
    again = SynchronousExecutor(hold=True)
    assert scheduler(tmp_path, jobs, again).run(wait=False) == {"slow": "running", "broken": "running"}
    assert again.submitted == []
    # the jobs ended without their markers (the cluster lost them): both are submitted again
    rerun = SynchronousExecutor()
    assert scheduler(tmp_path, jobs, rerun).run() == {"slow": "done", "broken": "failed"}
    # a later driver tries the failed job once more, and leaves the finished one alone
    last = SynchronousExecutor()
    assert scheduler(tmp_path, jobs, last).run() == {"slow": "done", "broken": "failed"}
    assert [Path(s.job_dir).name for s in last.submitted] == ["broken"]
    assert json.loads((tmp_path / "jobs" / "slow" / DONE).read_text())["attempt"] == 2


def test_commands_file_lists_every_job_with_its_own_variables(tmp_path):
    jobs = [Job("a", "x", ["/bin/nnUNetv2_train", "1", "2d"], env={"SHARED": "1", "OWN": "yes"}, deps=[])]
    write_commands(jobs, tmp_path / "commands.sh", {"SHARED": "1"})
    text = (tmp_path / "commands.sh").read_text()
    assert "export SHARED=1" in text and "OWN=yes nnUNetv2_train 1 2d" in text


def test_a_job_in_a_slurm_allocation_uses_the_cpus_it_was_given(tmp_path, monkeypatch):
    print_threads = python("import os; print(os.environ['OMP_NUM_THREADS'], os.environ['NNUNET_ARCHS_THREADS'])")
    monkeypatch.setenv("SLURM_CPUS_ON_NODE", "3")
    run_job(str(tmp_path), print_threads, {}, 1)
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "5")
    run_job(str(tmp_path), print_threads, {}, 2)
    run_job(str(tmp_path), print_threads, {"OMP_NUM_THREADS": "1", "NNUNET_ARCHS_THREADS": "1"}, 3)  # set by the job
    printed = [line for line in (tmp_path / "log.txt").read_text().splitlines() if line[:1].isdigit()]
    assert printed == ["3 3", "5 5", "1 1"]
