"""Per-case metrics of a folder of predictions against their references, usable without a study (``nnunet-archs
evaluate``) as nnU-Net's ``evaluate_folder`` is: every metric of ``metrics.METRICS`` that was asked for, one tidy row
per (case, label, metric), in the image's spacing. Voxels of nnU-Net's ``ignore`` label are left out of both masks
for every metric, as nnU-Net's Dice leaves them out.

Conventions for empty masks (stated in every report, ``metrics.empty_conventions``): reference and prediction both
empty: Dice, NSD and HD95 NaN (nnU-Net's own convention; the case does not count for that label); exactly one of
them empty is a failure (``failures``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from nnunet_archs.errors import UserError
from nnunet_archs.evaluation.failures import diagonal_mm, failure_kind
from nnunet_archs.evaluation.metrics import METRIC_NAMES, OBJECTS, OVERLAP, SURFACE, check_metrics, metric
from nnunet_archs.evaluation.objects import check_threshold, detect, object_rows
from nnunet_archs.evaluation.surface import surface_metrics
from nnunet_archs.evaluation.tables import COLUMNS, OBJECT_COLUMNS, objects_path, write_rows


def label_regions(dataset_json: dict) -> Dict[str, object]:
    """Label name -> the label value or region nnU-Net evaluates (foreground only), from dataset.json."""
    from nnunetv2.utilities.label_handling.label_handling import LabelManager
    manager = LabelManager(dataset_json["labels"], regions_class_order=dataset_json.get("regions_class_order"))
    names = {(tuple(v) if isinstance(v, list) else v): k for k, v in dataset_json["labels"].items()}
    regions = manager.foreground_regions if manager.has_regions else manager.foreground_labels
    return {str(names.get(tuple(r) if isinstance(r, list) else r, r)): r for r in regions}


def check_object_labels(object_labels: Optional[Sequence[str]], labels: Sequence[str]) -> List[str]:
    """The labels whose objects are counted: ``object_labels``, or every foreground label when None."""
    if object_labels is None:
        return list(labels)
    unknown = [label for label in object_labels if label not in labels]
    if unknown or not object_labels:
        raise UserError(f"--object-labels {list(object_labels)}: the dataset's labels are {list(labels)}")
    return list(object_labels)


@dataclass
class Evaluation:
    """A folder's per-case rows (``tables.COLUMNS``) and, with object metrics, its objects
    (``tables.OBJECT_COLUMNS``)."""

    rows: List[dict] = field(default_factory=list)
    objects: List[dict] = field(default_factory=list)


def evaluate_folder(reference_folder: Path, prediction_folder: Path, dataset_json: dict, architecture: str, fold: str,
                    metrics: Sequence[str] = METRIC_NAMES, tolerance_mm: float = 2.0, seed: int = 0,
                    object_labels: Optional[Sequence[str]] = None, match_iou: float = 0.0) -> Evaluation:
    """Every prediction in ``prediction_folder`` (each must have its reference) against its reference; ``seed`` is
    the training seed of the models that predicted them; the object metrics are computed for ``object_labels``
    (default: every foreground label), objects matching at IoU > ``match_iou``."""
    check_metrics(metrics, tolerance_mm)
    check_threshold(match_iou)
    for folder in (reference_folder, prediction_folder):
        if not Path(folder).is_dir():
            raise UserError(f"{folder} is not a folder")
    from nnunetv2.evaluation.evaluate_predictions import compute_metrics, region_or_label_to_mask
    from nnunetv2.imageio.reader_writer_registry import determine_reader_writer_from_dataset_json
    ending = dataset_json["file_ending"]
    predictions = sorted(p for p in Path(prediction_folder).iterdir() if p.name.endswith(ending))
    if not predictions:
        raise UserError(f"no predictions ending in {ending} in {prediction_folder}")
    missing = [p.name for p in predictions if not (Path(reference_folder) / p.name).exists()]
    if missing:
        raise UserError(f"no reference in {reference_folder} for {missing}")
    reader = determine_reader_writer_from_dataset_json(dataset_json, str(predictions[0]))()
    regions = label_regions(dataset_json)
    object_labels = check_object_labels(object_labels, list(regions))
    ignore = dataset_json["labels"].get("ignore")
    families = {metric(m).family for m in metrics}
    evaluation = Evaluation()
    for prediction in predictions:
        reference = Path(reference_folder) / prediction.name
        case = prediction.name[:-len(ending)]
        overlap = compute_metrics(str(reference), str(prediction), reader, list(regions.values()), ignore)["metrics"]
        reference_seg, properties = reader.read_seg(str(reference))
        prediction_seg, _ = reader.read_seg(str(prediction))
        spacing = [1.0] * (reference_seg.ndim - 1 - len(properties["spacing"])) + list(properties["spacing"])
        ignored = reference_seg[0] == ignore if ignore is not None else None
        worst = diagonal_mm(reference_seg.shape[1:], spacing)
        for name, region in regions.items():
            truth = region_or_label_to_mask(reference_seg[0], region)
            guess = region_or_label_to_mask(prediction_seg[0], region)
            if ignored is not None:  # as nnU-Net's Dice: the ignore region is in neither mask
                truth, guess = truth & ~ignored, guess & ~ignored
            failure = failure_kind(bool(truth.any()), bool(guess.any()))
            results = {OVERLAP: overlap[region]}
            if SURFACE in families:
                results[SURFACE] = surface_metrics(truth, guess, spacing, tolerance_mm)
            identity = {"architecture": architecture, "seed": seed, "fold": fold, "case": case, "label": name}
            if OBJECTS in families and name in object_labels:
                results[OBJECTS] = detect(truth, guess, spacing, match_iou)
                evaluation.objects += object_rows(results[OBJECTS], identity)
            for record in (metric(m) for m in metrics if metric(m).family in results):
                value = record.value(results[record.family])
                # on every row, not only a failure's: the statistics keep intervals below it (Metric.study_range)
                evaluation.rows.append({**identity, "metric": record.name, "value": value, "failure": failure,
                                        "worst_case": worst if record.worst_case_on_failure else math.nan})
    return evaluation


def write_evaluation(evaluation: Evaluation, path: Path) -> None:
    """The per-case rows to ``path``; the objects, when there are object metrics, beside it (``objects_path``)."""
    write_rows(evaluation.rows, path)
    if evaluation.objects or any(metric(r["metric"]).family == OBJECTS for r in evaluation.rows):
        write_rows(evaluation.objects, objects_path(path), OBJECT_COLUMNS)
