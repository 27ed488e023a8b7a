"""Executors: where a study's jobs run. Both are submitit executors and share everything but the backend:
``local`` runs jobs as processes on this machine (one training per visible GPU with CUDA), ``slurm`` submits them
with sbatch (trainings that become ready together go out as one job array, throttled by ``--max-parallel``).

Whether a job is still alive is read from the backend directly (the process, or ``squeue``), never from
``sacct``: clusters without a SLURM accounting database (``slurmdbd``) disable it, and a job that was cancelled or
hit its wall time must still be noticed and resubmitted.
"""
from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

from nnunet_archs.errors import UserError
from nnunet_archs.study.runner import run_job

EXECUTORS = ("local", "slurm")
LOCAL_TIMEOUT_MIN = 60 * 24 * 365  # submitit's local default is 2 minutes; a training takes days
SLURM_ALIVE_STATES = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "REQUEUED", "RESIZING",
                      "REQUEUE_HOLD", "REQUEUE_FED", "SIGNALING", "STAGE_OUT", "STOPPED"}


@dataclass
class Submission:
    """One attempt of one job, as the executor receives it."""

    job_dir: Path
    command: List[str]
    env: Dict[str, str]
    attempt: int
    gpus: int = 0  # the GPUs it asks for (local jobs get theirs through CUDA_VISIBLE_DEVICES in env)
    training: bool = False


@dataclass
class SlurmOptions:
    partition: Optional[str] = None
    gpus_per_job: Optional[int] = None
    cpus_per_job: Optional[int] = None
    mem: Optional[str] = None
    time_min: Optional[int] = None
    account: Optional[str] = None
    qos: Optional[str] = None
    extra: Dict[str, str] = field(default_factory=dict)  # other sbatch options, e.g. {"constraint": "a100"}

    def __post_init__(self):
        for name in ("gpus_per_job", "cpus_per_job"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UserError(f"--slurm-{name.replace('_', '-')} must be >= 1, got {value}")


def parse_slurm_options(options: List[str]) -> Dict[str, str]:
    """``--slurm-option KEY=VALUE`` (repeatable) as sbatch options without their dashes."""
    extra = {}
    for option in options:
        key, sep, value = option.partition("=")
        if not sep or not key:
            raise UserError(f"--slurm-option takes KEY=VALUE (an sbatch option without its dashes), got {option!r}")
        extra[key.lstrip("-")] = value
    return extra


def parse_slurm_time(text: str) -> int:
    """sbatch's --time formats (minutes, MM:SS, HH:MM:SS, D-HH[:MM[:SS]]) as whole minutes."""
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text.strip())
    if not match:
        raise UserError(f"--slurm-time must be minutes or [D-]HH:MM:SS, got {text!r}")
    days, first, second, third = match.groups()
    if days is None and second is None:
        minutes = int(first)
    elif days is None and third is None:
        minutes = int(first) + int(second) / 60  # MM:SS
    else:
        minutes = int(days or 0) * 1440 + int(first) * 60 + int(second or 0) + int(third or 0) / 60
    if minutes <= 0:
        raise UserError(f"--slurm-time must be positive, got {text!r}")
    return max(1, round(minutes))


class SubmititExecutor:
    def __init__(self, kind: str, folder: Path, max_parallel: int, slurm: Optional[SlurmOptions] = None):
        import submitit
        if kind not in EXECUTORS:
            raise UserError(f"--executor must be one of {list(EXECUTORS)}, got {kind!r}")
        self.kind, self.max_parallel, self.slurm = kind, max_parallel, slurm or SlurmOptions()
        self.executor = submitit.AutoExecutor(folder=str(folder / "%j"), cluster=kind)
        self.handles: Dict[str, object] = {}  # job id -> submitit Job, for jobs submitted by this driver
        self.warnings: List[str] = []

    def _parameters(self, gpus: int) -> dict:
        if self.kind == "local":
            # submitit's local backend gives every job the same first GPUs; the scheduler assigns them instead
            return {"timeout_min": LOCAL_TIMEOUT_MIN}
        options = self.slurm
        if gpus and options.gpus_per_job:
            gpus = options.gpus_per_job
        parameters = {"name": "nnunet-archs", "gpus_per_node": gpus, "slurm_array_parallelism": self.max_parallel,
                      "slurm_additional_parameters": dict(options.extra)}
        for key, value in (("timeout_min", options.time_min), ("cpus_per_task", options.cpus_per_job),
                           ("slurm_partition", options.partition), ("slurm_mem", options.mem),
                           ("slurm_account", options.account), ("slurm_qos", options.qos)):
            if value is not None:
                parameters[key] = value
        return parameters

    def submit(self, submissions: List[Submission]) -> List[str]:
        """Submit attempts; trainings that ask for the same resources go out together (on SLURM one job array,
        throttled to ``max_parallel`` running tasks), and so do the other jobs."""
        ids: List[Optional[str]] = [None] * len(submissions)
        groups: Dict[tuple, List[int]] = {}
        for i, submission in enumerate(submissions):
            groups.setdefault((submission.gpus, submission.training), []).append(i)
        for (gpus, _), members in groups.items():
            self.executor.update_parameters(**self._parameters(gpus))
            with self.executor.batch():
                jobs = [self.executor.submit(run_job, str(submissions[i].job_dir), submissions[i].command,
                                             submissions[i].env, submissions[i].attempt) for i in members]
            for i, job in zip(members, jobs):
                ids[i] = job.job_id
                self.handles[job.job_id] = job
        return [i for i in ids if i is not None]

    def alive(self, job_id: str, kind: str) -> bool:
        """Whether the job (submitted by this driver or an earlier one, with executor ``kind``) may still write
        its marker: pending or running."""
        handle = self.handles.get(job_id)
        if kind == "local":
            if handle is not None:
                return not handle.done()  # polls, and so reaps, our own child
            return _process_alive(int(job_id))
        return self._slurm_alive(job_id)

    def _slurm_alive(self, job_id: str) -> bool:
        result = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True)
        if result.returncode != 0:
            if "Invalid job id" in result.stderr:
                return False  # finished long enough ago that slurmctld forgot it
            self.warnings.append(f"squeue failed ({result.stderr.strip()}); treating job {job_id} as alive")
            return True
        states = set(result.stdout.split())
        return bool(states & SLURM_ALIVE_STATES)


def _process_alive(pid: int) -> bool:
    """A live, non-zombie process (a job started by an earlier driver that was killed)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError, ProcessLookupError):
        return False
    return state not in ("Z", "X")
