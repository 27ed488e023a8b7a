"""Metrics added to a finished study (``nnunet-archs report DIR --metrics ...``), computed from the predictions it
stored, without training again: every fold model's validation predictions (in nnU-Net's results folders) and the
test-set predictions (in the report folder) are evaluated for the new metrics only, their rows added to the
per-job tables, and ``study.json`` records the longer metric list (a later ``compare --resume`` then needs it).

Every per-job table is read and every folder evaluated before anything is written: a table that is cut or a
prediction that cannot be measured refuses the whole addition and leaves the study as it was."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

from nnunet_archs.errors import UserError
from nnunet_archs.evaluation.folder import Evaluation, evaluate_folder
from nnunet_archs.evaluation.labels import read_dataset_json
from nnunet_archs.evaluation.metrics import check_metrics
from nnunet_archs.evaluation.tables import OBJECT_COLUMNS, objects_path, read_table, write_rows
from nnunet_archs.study.folder import open_study
from nnunet_archs.study.spec import StudySpec


@dataclass
class _Part:
    """One evaluation job's table and the predictions it measured."""

    table: Path
    reference: Path
    predictions: Path
    architecture: str
    fold: str
    seed: int
    existing: Optional[List[dict]] = None
    evaluation: Optional[Evaluation] = None

    def measure(self, dataset_json: dict, spec: StudySpec, metrics: Sequence[str], processes: int) -> None:
        self.existing = read_table(self.table).to_dict("records")
        self.evaluation = evaluate_folder(self.reference, self.predictions, dataset_json, self.architecture, self.fold,
                                          metrics, spec.nsd_tolerance_mm, self.seed, spec.object_labels,
                                          spec.match_iou, processes)

    def write(self) -> None:
        write_rows(self.existing + self.evaluation.rows, self.table)
        if self.evaluation.objects and not objects_path(self.table).exists():
            write_rows(self.evaluation.objects, objects_path(self.table), OBJECT_COLUMNS)


def add_metrics(report_folder: Path, metrics: Sequence[str], processes: Optional[int] = None) -> List[str]:
    """Add the ``metrics`` a study has not measured yet, with ``processes`` workers per folder (default:
    nnU-Net's); returns them (none: nothing to do)."""
    folder = open_study(report_folder)
    spec, layout = folder.read_spec(), folder.read_layout()
    check_metrics(metrics, spec.nsd_tolerance_mm)
    new = [m for m in metrics if m not in spec.metrics]
    if not new:
        return []
    dataset_json = read_dataset_json(layout.raw / "dataset.json")
    parts = []
    for architecture in spec.architectures:
        for seed in spec.training_seeds:
            parts += [_Part(folder.fold_metrics(architecture, fold, seed), layout.raw / "labelsTr",
                            layout.fold_folder(spec, architecture, fold, seed) / "validation", architecture,
                            str(fold), seed) for fold in spec.folds]
            parts.append(_Part(folder.test_metrics(architecture, seed), layout.raw / "labelsTs",
                               folder.test_predictions(architecture, seed), architecture, "ensemble", seed))
    parts = [p for p in parts if p.table.exists() and p.predictions.is_dir()]
    if not any(p.fold != "ensemble" for p in parts):
        raise UserError(f"{report_folder} holds no evaluated predictions to measure {new} on")
    for part in parts:
        part.measure(dataset_json, spec, new, processes)
    for part in parts:
        part.write()
    spec.metrics = [*spec.metrics, *new]
    folder.write_spec(spec)
    return new
