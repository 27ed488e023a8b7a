"""Metrics added to a finished study (``nnunet-archs report DIR --metrics ...``), computed from the predictions it
stored, without training again: every fold model's validation predictions (in nnU-Net's results folders) and the
test-set predictions (in the report folder) are evaluated for the new metrics only, their rows added to the
per-job tables, and ``study.json`` records the longer metric list (a later ``compare --resume`` then needs it)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Sequence

from nnunet_archs.errors import UserError
from nnunet_archs.evaluation.folder import evaluate_folder
from nnunet_archs.evaluation.metrics import check_metrics
from nnunet_archs.evaluation.tables import OBJECT_COLUMNS, objects_path, read_table, write_rows
from nnunet_archs.study.folder import open_study
from nnunet_archs.study.spec import StudySpec


def _extend(part: Path, reference: Path, predictions: Path, dataset_json: dict, spec: StudySpec, architecture: str,
            fold: str, seed: int, metrics: Sequence[str]) -> bool:
    """Evaluate ``predictions`` for ``metrics`` and add the rows to the per-job table ``part``."""
    if not part.exists() or not predictions.is_dir():
        return False
    evaluation = evaluate_folder(reference, predictions, dataset_json, architecture, fold, metrics,
                                 spec.nsd_tolerance_mm, seed, spec.object_labels, spec.match_iou)
    existing = read_table(part).to_dict("records")
    write_rows(existing + evaluation.rows, part)
    if evaluation.objects and not objects_path(part).exists():
        write_rows(evaluation.objects, objects_path(part), OBJECT_COLUMNS)
    return True


def add_metrics(report_folder: Path, metrics: Sequence[str]) -> List[str]:
    """Add the ``metrics`` a study has not measured yet; returns them (none: nothing to do)."""
    folder = open_study(report_folder)
    spec, layout = folder.read_spec(), folder.read_layout()
    check_metrics(metrics, spec.nsd_tolerance_mm)
    new = [m for m in metrics if m not in spec.metrics]
    if not new:
        return []
    dataset_json = json.loads((layout.raw / "dataset.json").read_text())
    evaluated = 0
    for architecture in spec.architectures:
        for seed in spec.training_seeds:
            for fold in spec.folds:
                evaluated += _extend(folder.fold_metrics(architecture, fold, seed), layout.raw / "labelsTr",
                                     layout.fold_folder(spec, architecture, fold, seed) / "validation", dataset_json,
                                     spec, architecture, str(fold), seed, new)
            _extend(folder.test_metrics(architecture, seed), layout.raw / "labelsTs",
                    folder.test_predictions(architecture, seed), dataset_json, spec, architecture, "ensemble", seed,
                    new)
    if not evaluated:
        raise UserError(f"{report_folder} holds no evaluated predictions to measure {new} on")
    spec.metrics = [*spec.metrics, *new]
    folder.write_spec(spec)
    return new
