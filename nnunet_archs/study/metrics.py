"""Per-case metrics of a folder of predictions: Dice as nnU-Net's evaluation computes it, normalised surface Dice
(NSD) at a tolerance in mm and the 95th-percentile Hausdorff distance (HD95) in mm, both from MONAI and both in the
image's spacing, and object-level detection (``objects``: recall, precision, F1 and false positives per case,
and every object's size and match). One tidy row per (case, label, metric). Voxels of nnU-Net's ``ignore`` label
are left out of both masks for every metric, as nnU-Net's Dice leaves them out.

Conventions for empty masks (stated in every report):
- reference and prediction both empty: Dice NaN (nnU-Net's own convention), NSD NaN, HD95 NaN; the case does not
  count for that label ("not applicable"; Metrics Reloaded would give 0 distance there);
- exactly one of them empty is a *failure*: the structure was missed (``missed``) or invented (``spurious``).
  Dice and NSD are 0; HD95 has no distance between a surface and nothing, so its row keeps the raw value NaN,
  the kind of failure and the case's worst-case value (the image's diagonal in mm, Metrics Reloaded's "set to the
  worst case in aggregation"). The statistics fill it in (``FAILURE_CONVENTIONS``), so a miss never ranks above
  a hit, and ``report`` can switch the convention without evaluating again.
"""
from __future__ import annotations

import csv
import io
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from nnunet_archs.errors import UserError
from nnunet_archs.files import write_text_atomically
from nnunet_archs.study.objects import OBJECT_COLUMNS, OBJECT_METRICS, check_threshold, detect, object_rows

METRICS = ("Dice", "NSD", "HD95", *OBJECT_METRICS)
# higher is better for every metric but these
LOWER_IS_BETTER = {"HD95", "FalsePositiveObjects"}
# what a failure scores in aggregation: the worst case (default), or left out as before (the HD95 mean then
# rewards a network that misses what it cannot find)
FAILURE_CONVENTIONS = ("worst", "exclude")
MISSED, SPURIOUS = "missed", "spurious"
# the label of a case's mean over its labels
MEAN_LABEL = "mean"
# a per-case table needs these; older tables lack the later columns, read as one training seed 0 and no failures
REQUIRED_COLUMNS = ["architecture", "fold", "case", "label", "metric", "value"]
COLUMNS = ["architecture", "seed", "fold", "case", "label", "metric", "value", "failure", "worst_case"]
EMPTY_CONVENTIONS = ("Empty masks: both empty -> Dice, NSD and HD95 are not applicable (NaN; the case does not count "
                     "for that label: nnU-Net's Dice convention, where Metrics Reloaded gives 0 distance); a structure "
                     "missed or invented (one mask empty) is a failure: Dice 0, NSD 0, and HD95 {hd95}.")
FAILURE_TEXT = {"worst": "the image's diagonal in mm (the worst case)",
                "exclude": "left out of the HD95 mean and tests (and counted)"}


def check_metrics(metrics: Sequence[str], tolerance_mm: float) -> None:
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise UserError(f"unknown metric(s) {unknown}; choose from {list(METRICS)}")
    if not tolerance_mm > 0:
        raise UserError(f"--nsd-tolerance must be > 0 (mm), got {tolerance_mm:g}")


def check_failure_convention(convention: str) -> None:
    if convention not in FAILURE_CONVENTIONS:
        raise UserError(f"--failures must be one of {list(FAILURE_CONVENTIONS)}, got {convention!r}")


def failure_kind(has_reference: bool, has_prediction: bool) -> str:
    """``missed``, ``spurious``, or "" when both or neither mask holds the structure."""
    if has_reference == has_prediction:
        return ""
    return MISSED if has_reference else SPURIOUS


def diagonal_mm(shape: Sequence[int], spacing: Sequence[float]) -> float:
    """The image's diagonal in mm over its axes longer than one voxel: no two surface points lie farther apart."""
    return float(math.sqrt(sum((n * s) ** 2 for n, s in zip(shape, spacing) if n > 1)))


def surface_metrics(reference: np.ndarray, prediction: np.ndarray, spacing: Sequence[float],
                    tolerance_mm: float) -> Tuple[float, float]:
    """(NSD at ``tolerance_mm``, HD95 in mm) of two boolean masks of the same shape, with the conventions above
    (a failure's HD95 is NaN here). Axes of length 1 are dropped first: nnU-Net stores a 2D image as one slice,
    whose faces are not surfaces."""
    import torch
    from monai.metrics import compute_hausdorff_distance, compute_surface_dice
    keep = [axis for axis, length in enumerate(reference.shape) if length > 1]
    reference, prediction = reference.squeeze(), prediction.squeeze()
    spacing = [float(spacing[axis]) for axis in keep]
    has_reference, has_prediction = bool(reference.any()), bool(prediction.any())
    if not has_reference and not has_prediction:
        return math.nan, math.nan
    if has_reference != has_prediction:
        return 0.0, math.nan

    def as_tensor(mask: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(mask))[None, None].float()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # MONAI 1.6 warns about its own internal call
        nsd = compute_surface_dice(as_tensor(prediction), as_tensor(reference), class_thresholds=[tolerance_mm],
                                   include_background=True, spacing=spacing)
        hd95 = compute_hausdorff_distance(as_tensor(prediction), as_tensor(reference), include_background=True,
                                          percentile=95, spacing=spacing)
    return float(nsd.item()), float(hd95.item())


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
    """A folder's per-case rows (``COLUMNS``) and, with object metrics, its objects (``OBJECT_COLUMNS``)."""

    rows: List[dict] = field(default_factory=list)
    objects: List[dict] = field(default_factory=list)


def evaluate_folder(reference_folder: Path, prediction_folder: Path, dataset_json: dict, architecture: str, fold: str,
                    metrics: Sequence[str] = METRICS, tolerance_mm: float = 2.0, seed: int = 0,
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
    evaluation = Evaluation()
    for prediction in predictions:
        reference = Path(reference_folder) / prediction.name
        case = prediction.name[:-len(ending)]
        dice = compute_metrics(str(reference), str(prediction), reader, list(regions.values()), ignore)["metrics"]
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
            values = {"Dice": float(dice[region]["Dice"])}
            if "NSD" in metrics or "HD95" in metrics:
                values["NSD"], values["HD95"] = surface_metrics(truth, guess, spacing, tolerance_mm)
            identity = {"architecture": architecture, "seed": seed, "fold": fold, "case": case, "label": name}
            measured = [m for m in metrics if m not in OBJECT_METRICS]
            if name in object_labels and any(m in OBJECT_METRICS for m in metrics):
                detection = detect(truth, guess, spacing, match_iou)
                values.update(detection.metrics())
                evaluation.objects += object_rows(detection, identity)
                measured = list(metrics)
            evaluation.rows += [{**identity, "metric": metric, "value": values[metric], "failure": failure,
                                 "worst_case": worst if failure and metric == "HD95" else math.nan}
                                for metric in measured]
    return evaluation


def write_rows(rows: List[dict], path: Path, columns: Sequence[str] = COLUMNS) -> None:
    """Write a tidy CSV whole or not at all: a killed job never leaves half a table."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, list(columns))
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomically(path, text.getvalue())


def write_evaluation(evaluation: Evaluation, path: Path) -> None:
    """The per-case rows to ``path``; the objects, when there are object metrics, beside it (``objects_path``)."""
    write_rows(evaluation.rows, path)
    if evaluation.objects or any(r["metric"] in OBJECT_METRICS for r in evaluation.rows):
        write_rows(evaluation.objects, objects_path(path), OBJECT_COLUMNS)


def objects_path(path: Path) -> Path:
    """Where the objects of the per-case table ``path`` are: ``NAME_objects.csv`` beside ``NAME.csv``."""
    return Path(path).with_name(Path(path).stem + "_objects.csv")
