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

# identifiers stay text (a case id "001" is not the number 1)
TEXT_COLUMNS = {"fold": str, "case": str, "label": str, "seed": str, "failure": str}


@dataclass
class TrainingCost:
    """What the trainings of one network took: wall time per (fold, training seed), and peak GPU memory where it
    was measured."""

    seconds: Dict[Tuple[int, int], float] = field(default_factory=dict)
    peak_memory_bytes: Optional[int] = None  # None: not trained on CUDA, so not measured
    gpus: int = 0

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
        peaks = []
        for fold in spec.folds:
            for seed in spec.training_seeds:
                done = read_marker(layout.job_folder(layout.training_job(architecture, fold, seed)), DONE)
                if done:
                    cost.seconds[(fold, seed)] = done["seconds"]
                epochs = layout.epoch_log(spec, architecture, fold, seed)
                if epochs.exists():
                    peaks += [json.loads(line).get("max_memory_allocated_bytes")
                              for line in epochs.read_text().split("\n") if line.strip()]
        measured = [p for p in peaks if p is not None]
        cost.peak_memory_bytes = max(measured) if measured else None
        costs[architecture] = cost
    return costs


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
