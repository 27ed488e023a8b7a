"""What each network's trainings and predictions cost, as measured by the study's jobs (``study.records`` reads
them): wall time per training, peak GPU memory, prediction time per case."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from nnunet_archs.training.gpu_memory import nvidia_smi_equivalent


@dataclass
class TrainingCost:
    """What the trainings of one network took: wall time per (fold, training seed), and peak GPU memory where it
    was measured (allocated and reserved peaks over every epoch, and the CUDA context NVML saw)."""

    seconds: Dict[Tuple[int, int], float] = field(default_factory=dict)
    peak_memory_bytes: Optional[int] = None  # None: not trained on CUDA, so not measured
    peak_reserved_bytes: Optional[int] = None
    context_bytes: Optional[int] = None
    context_note: Optional[str] = None  # why the context is missing on CUDA
    gpus: int = 0

    @property
    def nvidia_smi_bytes(self) -> Optional[int]:
        return nvidia_smi_equivalent(self.peak_reserved_bytes, self.context_bytes)

    @property
    def gpu_hours(self) -> float:
        return sum(self.seconds.values()) * self.gpus / 3600

    @property
    def seconds_per_training(self) -> Optional[float]:
        return float(np.mean(list(self.seconds.values()))) if self.seconds else None


@dataclass
class InferenceCost:
    """Prediction time of one network: the cross-validation (nnU-Net's final validation in each training: wall
    time per case, test-time mirroring as trained and export included) and the test set (``nnunet-archs
    predict``: the fold ensemble per case on the device, medians over cases and training seeds)."""

    validation_seconds_per_case: Optional[float] = None
    test_seconds_per_case: Optional[float] = None
    test_models: Optional[int] = None
    test_seconds_per_megavoxel: Optional[float] = None
    test_peak_memory_bytes: Optional[int] = None

    @property
    def test_seconds_per_model(self) -> Optional[float]:
        return None if self.test_seconds_per_case is None else self.test_seconds_per_case / self.test_models


def jobs_side_by_side(machine: List[dict]) -> int:
    """The most jobs a driver session of the study ran at once (1 when unknown)."""
    return max([session.get("max_parallel") or 1 for session in machine] or [1])
