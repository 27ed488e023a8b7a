"""The driver: runs a study's jobs as their inputs finish, on any executor, and survives being killed.

Truth lives in files. A job is done when its done-marker exists (``runner``); ``state.json`` (written atomically)
records the attempts the driver submitted, so that a driver started again with ``--resume`` adopts jobs that are
still running instead of starting them twice. A job that vanished or was ended by a signal (a wall-time limit,
``scancel``, a node fault, a killed process) is submitted again, a training continuing from its latest checkpoint
(nnU-Net's ``--c``), up to ``max_retries`` times; a job that failed on its own stops only the jobs that need it.
"""
from __future__ import annotations

import json
import os
import shlex
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

from nnunet_archs.files import write_json_atomically
from nnunet_archs.study.executors import EXECUTORS
from nnunet_archs.study.executors.base import Executor, Submission
from nnunet_archs.study.jobs import Job, resumed_command
from nnunet_archs.study.runner import DONE, FAILED, read_marker
from nnunet_archs.training.environment import thread_variables

FINISHED = ("done", "failed", "blocked")


class Scheduler:
    def __init__(self, jobs: List[Job], jobs_folder: Path, state_path: Path, executor: Executor,
                 max_parallel: int, max_retries: int = 2, gpu_ids: Optional[List[int]] = None,
                 cpu_threads: Optional[int] = None, poll_seconds: float = 2.0, log: Callable[[str], None] = print):
        self.jobs = {job.name: job for job in jobs}
        self.jobs_folder, self.state_path, self.executor = jobs_folder, state_path, executor
        self.max_parallel, self.max_retries, self.poll_seconds, self.log = max_parallel, max_retries, poll_seconds, log
        self.gpu_ids, self.cpu_threads = list(gpu_ids or []), cpu_threads
        self.state = json.loads(state_path.read_text()) if state_path.exists() else {"sessions": 0, "jobs": {}}
        self.state["sessions"] += 1
        self.session = self.state["sessions"]
        self.reported: Dict[str, str] = {}

    # -- state ---------------------------------------------------------------------------------------------------
    def attempts(self, name: str) -> List[dict]:
        return self.state["jobs"].setdefault(name, {"attempts": []})["attempts"]

    def save(self) -> None:
        write_json_atomically(self.state_path, self.state)

    def folder(self, name: str) -> Path:
        return self.jobs_folder / name

    def _observe(self, name: str) -> None:
        """Bring the last attempt's record up to date with its markers and its liveness."""
        attempts = self.attempts(name)
        if not attempts or attempts[-1]["status"] != "submitted":
            return
        last = attempts[-1]
        alive = self._alive(last)  # before the markers: no lost race
        done, failed = read_marker(self.folder(name), DONE), read_marker(self.folder(name), FAILED)
        if done is not None:
            last["status"] = "done"
        elif failed is not None and failed["attempt"] == last["attempt"]:
            last["status"] = "killed" if failed["killed"] else "failed"
        elif not alive:
            last["status"] = "vanished"  # ended with its runner: cancelled, wall time, node fault
        else:
            return
        self.save()

    def _alive(self, attempt: dict) -> bool:
        """Whether an attempt may still write its marker, asked of the backend that runs it (an earlier driver may
        have used another)."""
        if attempt["executor"] == self.executor.name:
            return self.executor.alive(attempt["job_id"])
        return EXECUTORS[attempt["executor"]].job_alive(attempt["job_id"], self.executor.warnings)

    def status(self, name: str, statuses: Dict[str, str]) -> str:
        """done | failed | blocked | running | ready | waiting, given the statuses of the jobs before it."""
        job = self.jobs[name]
        self._observe(name)
        if (self.folder(name) / DONE).exists():
            return "done"
        attempts = self.attempts(name)
        now = [a for a in attempts if a["session"] == self.session]
        if now and now[-1]["status"] == "submitted":
            return "running"
        if now and now[-1]["status"] == "failed":
            return "failed"
        if sum(a["status"] in ("killed", "vanished") for a in now) > self.max_retries:
            return "failed"
        if attempts and attempts[-1]["status"] == "submitted":
            return "running"  # adopted from an earlier driver
        if any(statuses[d] in ("failed", "blocked") for d in job.deps):
            return "blocked"
        return "ready" if all(statuses[d] == "done" for d in job.deps) else "waiting"

    # -- submission ----------------------------------------------------------------------------------------------
    def _free_gpus(self) -> List[int]:
        busy = {g for record in self.state["jobs"].values() for a in record["attempts"]
                if a["status"] == "submitted" for g in a.get("gpu_ids", [])}
        return [g for g in self.gpu_ids if g not in busy]

    def _submission(self, job: Job, gpu_ids: List[int]) -> Submission:
        attempts = self.attempts(job.name)
        # a training that ran before, in any attempt, continues from its checkpoint: never from scratch again
        command = resumed_command(job) if attempts else job.command
        env = dict(job.env)
        if self.executor.assigns_devices:
            if job.gpus:
                env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, gpu_ids))
            if self.cpu_threads:
                env.update(thread_variables(self.cpu_threads))
        folder = self.folder(job.name)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / FAILED).unlink(missing_ok=True)
        (folder / "job.json").write_text(json.dumps({"name": job.name, "kind": job.kind, "command": command,
                                                     "env": env, "deps": job.deps}, indent=1))
        return Submission(folder, command, env, len(attempts) + 1, job.gpus, job.kind == "train")

    def _submit(self, ready: List[Job]) -> int:
        # locally at most max_parallel jobs run; a cluster queues whatever is ready and throttles the trainings'
        # job array itself
        running = sum(1 for record in self.state["jobs"].values() if record["attempts"]
                      and record["attempts"][-1]["status"] == "submitted")
        free_slots = self.executor.free_slots(len(ready), running)
        chosen, gpu_plan = [], []
        free_gpus = self._free_gpus()
        for job in ready:
            if len(chosen) >= free_slots:
                break
            ids: List[int] = []
            if job.gpus and self.executor.assigns_devices and self.gpu_ids:
                if len(free_gpus) < job.gpus:
                    continue
                ids, free_gpus = free_gpus[:job.gpus], free_gpus[job.gpus:]
            chosen.append(job)
            gpu_plan.append(ids)
        if not chosen:
            return 0
        submissions = [self._submission(job, ids) for job, ids in zip(chosen, gpu_plan)]
        job_ids = self.executor.submit(submissions)
        for job, submission, job_id, ids in zip(chosen, submissions, job_ids, gpu_plan):
            self.attempts(job.name).append({"attempt": submission.attempt, "session": self.session,
                                            "executor": self.executor.name, "job_id": job_id, "gpu_ids": ids,
                                            "status": "submitted", "submitted": time.time()})
            self.log(f"  started {job.name} ({self.executor.name} job {job_id}"
                     f"{', attempt ' + str(submission.attempt) if submission.attempt > 1 else ''})")
        self.save()
        return len(chosen)

    # -- the loop ------------------------------------------------------------------------------------------------
    def run(self, wait: bool = True) -> Dict[str, str]:
        """Run until every job is done, failed or blocked (or, with ``wait=False``, until everything that can
        start has been submitted). Returns each job's status."""
        total = len(self.jobs)
        first = True
        while True:
            statuses: Dict[str, str] = {}
            for name in self.jobs:  # built in dependency order
                statuses[name] = self.status(name, statuses)
            if first:
                earlier = [n for n, s in statuses.items() if s == "done"]
                if earlier:
                    self.log(f"{len(earlier)} of {total} jobs done earlier, not run again: {', '.join(earlier)}")
                    self.reported.update({n: "done" for n in earlier})
                first = False
            for name, status in statuses.items():
                if status in FINISHED and self.reported.get(name) != status:
                    self.reported[name] = status
                    marker = read_marker(self.folder(name), DONE if status == "done" else FAILED) or {}
                    detail = {"done": f"{marker.get('seconds', 0):.0f} s",
                              "failed": f"see {self.folder(name) / 'log.txt'}",
                              "blocked": "a job it needs failed"}[status]
                    self.log(f"[{sum(s in FINISHED for s in statuses.values())}/{total}] {name}: {status} ({detail})")
            submitted = self._submit([self.jobs[n] for n, s in statuses.items() if s == "ready"])
            running = sum(s == "running" for s in statuses.values()) + submitted
            if running == 0:  # nothing runs and nothing can start: every job is done, failed or blocked
                return statuses
            if not wait:
                return {n: self.status(n, statuses) if s == "ready" else s for n, s in statuses.items()}
            time.sleep(self.poll_seconds)


def write_commands(jobs: List[Job], path: Path, shared_env: Dict[str, str]) -> None:
    """``commands.sh``: every command of the study in dependency order, with the variables each job adds to the
    study's shared ones (listed once at the top)."""
    lines = ["# Commands of this study in dependency order (nnunet-archs compare). Shared environment:"]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in sorted(shared_env.items())]
    for job in jobs:
        extra = {k: v for k, v in job.env.items() if shared_env.get(k) != v}
        prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(extra.items()))
        lines.append(f"# {job.name}" + (f" (after {', '.join(job.deps)})" if job.deps else ""))
        lines.append((prefix + " " if prefix else "") + shlex.join([Path(job.command[0]).name, *job.command[1:]]))
    path.write_text("\n".join(lines) + "\n")


def default_cpu_threads(max_parallel: int) -> int:
    return max(1, (os.cpu_count() or 1) // max_parallel)
