"""The executor interface: where a study's jobs run. Every backend is a submitit executor and shares everything
but what is specific to it (``local``, ``slurm``): the parameters of a submission, how a job that this driver did
not submit is known to be alive, how many jobs it takes at once, and what it needs on this machine.

Whether a job is still alive is read from the backend directly, never from an accounting database: a job that was
cancelled or hit its wall time must still be noticed and resubmitted.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Dict, List, Optional

from nnunet_archs.study.runner import run_job


@dataclass
class Submission:
    """One attempt of one job, as the executor receives it."""

    job_dir: Path
    command: List[str]
    env: Dict[str, str]
    attempt: int
    gpus: int = 0  # the GPUs it asks for (local jobs get theirs through CUDA_VISIBLE_DEVICES in env)
    training: bool = False


class Executor(abc.ABC):
    """Submits job attempts and tells whether a submitted job may still write its marker."""

    name: ClassVar[str]
    # the driver gives each job its GPUs (CUDA_VISIBLE_DEVICES) and CPU threads: a backend without an allocator
    assigns_devices: ClassVar[bool] = False
    # what submitit calls the backend
    cluster: ClassVar[str]

    def __init__(self, folder: Path, max_parallel: int, options: Optional[object] = None):
        import submitit
        self.max_parallel, self.options = max_parallel, options
        self.executor = submitit.AutoExecutor(folder=str(folder / "%j"), cluster=self.cluster)
        self.handles: Dict[str, object] = {}  # job id -> submitit Job, for jobs submitted by this driver
        self.warnings: List[str] = []

    @classmethod
    def preflight(cls) -> None:
        """Raise a UserError when this backend cannot run from here; before the study writes anything."""

    @abc.abstractmethod
    def parameters(self, gpus: int) -> dict:
        """submitit's parameters for a group of jobs that each ask for ``gpus`` GPUs."""

    @abc.abstractmethod
    def free_slots(self, ready: int, running: int) -> int:
        """How many of the ``ready`` jobs to submit now, with ``running`` of the study's jobs submitted."""

    @classmethod
    @abc.abstractmethod
    def job_alive(cls, job_id: str, warnings: List[str]) -> bool:
        """Whether a job of this backend that this driver did not submit is pending or running."""

    def alive(self, job_id: str) -> bool:
        """Whether the job may still write its marker: pending or running."""
        return self.job_alive(job_id, self.warnings)

    def submit(self, submissions: List[Submission]) -> List[str]:
        """Submit attempts; trainings that ask for the same resources go out together (on SLURM one job array,
        throttled to ``max_parallel`` running tasks), and so do the other jobs."""
        ids: List[Optional[str]] = [None] * len(submissions)
        groups: Dict[tuple, List[int]] = {}
        for i, submission in enumerate(submissions):
            groups.setdefault((submission.gpus, submission.training), []).append(i)
        for (gpus, _), members in groups.items():
            self.executor.update_parameters(**self.parameters(gpus))
            with self.executor.batch():
                jobs = [self.executor.submit(run_job, str(submissions[i].job_dir), submissions[i].command,
                                             submissions[i].env, submissions[i].attempt) for i in members]
            for i, job in zip(members, jobs):
                ids[i] = job.job_id
                self.handles[job.job_id] = job
        return [i for i in ids if i is not None]
