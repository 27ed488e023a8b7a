"""What a study's jobs left on disk, read back for the report: the per-case tables, the trainings' wall times and
GPU memory, the jobs that failed and each training's attempts. Reading only: nothing here computes statistics."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import pandas as pd

from nnunet_archs.study.jobs import StudyLayout
from nnunet_archs.study.metrics import COLUMNS, objects_path
from nnunet_archs.study.objects import OBJECT_COLUMNS
from nnunet_archs.study.runner import DONE, FAILED, read_marker
from nnunet_archs.study.spec import StudySpec
from nnunet_archs.training.environment import INFERENCE_LOG, VALIDATION_LOG
from nnunet_archs.training.gpu_memory import nvidia_smi_equivalent

# identifiers stay text (a case id "001" is not the number 1)
TEXT_COLUMNS = {"fold": str, "case": str, "label": str, "seed": str, "failure": str}


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


def assemble(parts: List[Path], target: Path, columns: List[str] = COLUMNS) -> Optional[pd.DataFrame]:
    """Concatenate the per-job metric CSVs into one tidy table (or read ``target`` when no parts exist)."""
    existing = [p for p in parts if p.exists()]
    if existing:
        table = pd.concat([pd.read_csv(p, dtype=TEXT_COLUMNS) for p in existing])
        table.to_csv(target, index=False, columns=[c for c in columns if c in table.columns])
        return table
    if target.exists():
        return pd.read_csv(target, dtype=TEXT_COLUMNS)
    return None


def assemble_objects(parts: List[Path], target: Path) -> Optional[pd.DataFrame]:
    """The objects tables beside the per-job metric CSVs ``parts``, as one table (``per_object.csv``)."""
    return assemble([objects_path(p) for p in parts], target, OBJECT_COLUMNS)


def training_costs(spec: StudySpec, layout: StudyLayout) -> Dict[str, TrainingCost]:
    costs = {}
    for architecture in spec.architectures:
        cost = TrainingCost(gpus=spec.num_gpus if spec.device.startswith("cuda") else 0)
        records = []
        for fold in spec.folds:
            for seed in spec.training_seeds:
                done = read_marker(layout.job_folder(layout.training_job(architecture, fold, seed)), DONE)
                if done:
                    cost.seconds[(fold, seed)] = done["seconds"]
                epochs = layout.epoch_log(spec, architecture, fold, seed)
                if epochs.exists():
                    records += [json.loads(line) for line in epochs.read_text().split("\n") if line.strip()]

        def largest(key: str) -> Optional[int]:
            measured = [r[key] for r in records if r.get(key) is not None]
            return max(measured) if measured else None
        cost.peak_memory_bytes = largest("max_memory_allocated_bytes")
        cost.peak_reserved_bytes = largest("max_memory_reserved_bytes")
        cost.context_bytes = largest("cuda_context_bytes")
        cost.context_note = next((r["nvml_note"] for r in records if r.get("nvml_note")), None)
        costs[architecture] = cost
    return costs


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


def inference_costs(spec: StudySpec, layout: StudyLayout) -> Dict[str, InferenceCost]:
    costs = {}
    for architecture in spec.architectures:
        cost = InferenceCost()
        validations = [json.loads(path.read_text()) for fold in spec.folds for seed in spec.training_seeds
                       for path in [layout.fold_folder(spec, architecture, fold, seed) / VALIDATION_LOG]
                       if path.exists()]
        cases = sum(v["cases"] for v in validations)
        if cases:
            cost.validation_seconds_per_case = sum(v["seconds"] for v in validations) / cases
        tests = [json.loads(path.read_text()) for seed in spec.training_seeds
                 for path in [layout.test_predictions(architecture, seed) / INFERENCE_LOG] if path.exists()]
        per_case = [t for record in tests for t in record.get("per_case", [])]
        if per_case:
            cost.test_seconds_per_case = float(np.median([t["seconds"] for t in per_case]))
            cost.test_models = tests[0]["models"]
            cost.test_seconds_per_megavoxel = float(np.median([t["seconds"] / (t["voxels"] / 1e6)
                                                               for t in per_case]))
            peaks = [t["max_memory_allocated_bytes"] for t in per_case if t["max_memory_allocated_bytes"]]
            cost.test_peak_memory_bytes = max(peaks) if peaks else None
        costs[architecture] = cost
    return costs


def jobs_side_by_side(machine: List[dict]) -> int:
    """The most jobs a driver session of the study ran at once (1 when unknown)."""
    return max([session.get("max_parallel") or 1 for session in machine] or [1])


def failures(layout: StudyLayout) -> List[str]:
    """One line per job that failed or never ran because a job it needs failed."""
    lines = []
    if not layout.jobs.exists():
        return lines
    for folder in sorted(layout.jobs.iterdir()):
        failed = read_marker(folder, FAILED)
        if failed and not (folder / DONE).exists():
            how = "killed by a signal" if failed.get("killed") else f"exit status {failed['returncode']}"
            lines.append(f"{folder.name}: {how}; read {failed['log']}")
    return lines


def training_jobs(spec: StudySpec, layout: StudyLayout) -> List[List[str]]:
    """Every training's attempts and the executor's job ids (SLURM job ids on a cluster), from state.json."""
    state_path = layout.report / "state.json"
    if not state_path.exists():
        return []
    records = json.loads(state_path.read_text())["jobs"]
    rows = []
    for name in (layout.training_job(a, f, s) for a in spec.architectures for s in spec.training_seeds
                 for f in spec.folds):
        record = records.get(name)
        if not record or not record["attempts"]:
            continue
        done = read_marker(layout.job_folder(name), DONE)
        rows.append([name, str(len(record["attempts"])), ", ".join(
            f"{a['executor']} {a['job_id']} ({a['status']})" for a in record["attempts"]),
            f"{done['seconds']:.0f}" if done else "-"])
    return rows
