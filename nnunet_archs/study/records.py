"""What a study's jobs left on disk, read back for the report: the trainings' wall times and GPU memory, the
prediction times, the jobs that failed and each training's attempts (the per-case tables: ``folder``). Reading
only: nothing here computes statistics."""
from __future__ import annotations

import json
from typing import Dict, List, Optional

import numpy as np

from nnunet_archs.analysis.costs import InferenceCost, TrainingCost
from nnunet_archs.study.folder import StudyLayout
from nnunet_archs.study.runner import DONE, FAILED, read_marker
from nnunet_archs.study.spec import StudySpec
from nnunet_archs.training.environment import INFERENCE_LOG, VALIDATION_LOG


def training_costs(spec: StudySpec, layout: StudyLayout) -> Dict[str, TrainingCost]:
    costs = {}
    for architecture in spec.architectures:
        cost = TrainingCost(gpus=spec.num_gpus if spec.device.startswith("cuda") else 0)
        records = []
        for fold in spec.folds:
            for seed in spec.training_seeds:
                done = read_marker(layout.folder.job_folder(layout.training_job(architecture, fold, seed)), DONE)
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
                 for path in [layout.folder.test_predictions(architecture, seed) / INFERENCE_LOG] if path.exists()]
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


def failures(layout: StudyLayout) -> List[str]:
    """One line per job that failed or never ran because a job it needs failed."""
    lines = []
    if not layout.folder.jobs.exists():
        return lines
    for folder in sorted(layout.folder.jobs.iterdir()):
        failed = read_marker(folder, FAILED)
        if failed and not (folder / DONE).exists():
            how = "killed by a signal" if failed.get("killed") else f"exit status {failed['returncode']}"
            lines.append(f"{folder.name}: {how}; read {failed['log']}")
    return lines


def training_jobs(spec: StudySpec, layout: StudyLayout) -> List[List[str]]:
    """Every training's attempts and the executor's job ids (SLURM job ids on a cluster), from state.json."""
    state = layout.folder.read_state()
    if state is None:
        return []
    records = state["jobs"]
    rows = []
    for name in (layout.training_job(a, f, s) for a in spec.architectures for s in spec.training_seeds
                 for f in spec.folds):
        record = records.get(name)
        if not record or not record["attempts"]:
            continue
        done = read_marker(layout.folder.job_folder(name), DONE)
        rows.append([name, str(len(record["attempts"])), ", ".join(
            f"{a['executor']} {a['job_id']} ({a['status']})" for a in record["attempts"]),
            f"{done['seconds']:.0f}" if done else "-"])
    return rows
