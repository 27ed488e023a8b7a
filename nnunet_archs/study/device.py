"""The device a study trains and predicts on when ``-device`` is not given, and why (the summary says it).

On this machine: CUDA when torch sees a GPU, else the CPU. On a cluster the submitting host's GPUs say nothing about
the nodes the jobs run on: CUDA when the jobs ask for GPUs, else the user must say. A resumed study keeps the device
it was started with (``study.json``), so ``--resume`` never needs the flag repeated.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from nnunet_archs.errors import UserError
from nnunet_archs.profiling import default_device
from nnunet_archs.study.executors import executor_class
from nnunet_archs.study.folder import StudyFolder


@dataclass(frozen=True)
class DeviceChoice:
    device: str
    reason: str

    def __str__(self) -> str:
        return f"{self.device} ({self.reason})"


def study_device(given: Optional[str], executor: str, gpus_per_job: Optional[int], report: Path,
                 resume: bool) -> DeviceChoice:
    """``given`` (``-device``) if any; else the resumed study's; else, for a backend that runs the jobs on this
    machine, the one this machine has; else CUDA when the jobs ask for GPUs (``gpus_per_job``)."""
    if given is not None:
        return DeviceChoice(given, "given with -device")
    folder = StudyFolder(Path(report))
    if resume and folder.spec_file.exists():
        return DeviceChoice(folder.read_spec().device, f"the study's, from {folder.spec_file}")
    backend = executor_class(executor)
    if backend.assigns_devices:  # the jobs run here
        return DeviceChoice(*default_device())
    if gpus_per_job:
        return DeviceChoice("cuda", f"the {backend.name} jobs ask for {gpus_per_job} GPU(s) each")
    raise UserError(f"--executor {backend.name}: give -device cuda (with --slurm-gpus-per-job N) or -device cpu; "
                    f"the GPUs of this host say nothing about the nodes the jobs will run on")
