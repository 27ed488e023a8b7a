"""Jobs submitted to a SLURM cluster with sbatch, through submitit: whatever is ready is queued (trainings that
become ready together go out as one job array, throttled by ``--max-parallel``); SLURM allocates GPUs and CPUs.

A job's liveness comes from ``squeue``, never from ``sacct``: clusters without a SLURM accounting database
(``slurmdbd``) disable it.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from nnunet_archs.errors import UserError
from nnunet_archs.study.executors.base import Executor

ALIVE_STATES = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "REQUEUED", "RESIZING",
                "REQUEUE_HOLD", "REQUEUE_FED", "SIGNALING", "STAGE_OUT", "STOPPED"}


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


class SlurmExecutor(Executor):
    name = cluster = "slurm"

    @classmethod
    def preflight(cls) -> None:
        if shutil.which("sbatch") is None:
            raise UserError(f"--executor {cls.name} needs SLURM's sbatch on PATH (run the driver on a login node)")

    def parameters(self, gpus: int) -> dict:
        options = self.options or SlurmOptions()
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

    def free_slots(self, ready: int, running: int) -> int:
        return ready  # the cluster queues them; the job array's throttle limits what runs

    @classmethod
    def job_alive(cls, job_id: str, warnings: List[str]) -> bool:
        result = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True)
        if result.returncode != 0:
            if "Invalid job id" in result.stderr:
                return False  # finished long enough ago that slurmctld forgot it
            warnings.append(f"squeue failed ({result.stderr.strip()}); treating job {job_id} as alive")
            return True
        return bool(set(result.stdout.split()) & ALIVE_STATES)
