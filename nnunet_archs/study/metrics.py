"""Per-case metrics of a folder of predictions: Dice as nnU-Net's evaluation computes it, normalised surface Dice
(NSD) at a tolerance in mm and the 95th-percentile Hausdorff distance (HD95) in mm, both from MONAI and both in the
image's spacing. One tidy row per (case, label, metric).

Conventions for empty masks (stated in every report):
- reference and prediction both empty: Dice NaN (nnU-Net's own convention), NSD NaN, HD95 NaN; the case does not
  count for that label;
- exactly one of them empty: Dice 0, NSD 0, HD95 NaN (no distance between a surface and nothing); the report
  counts these NaNs, which the HD95 mean and its tests leave out.
"""
from __future__ import annotations

import csv
import io
import math
import warnings
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np

from nnunet_archs.errors import UserError
from nnunet_archs.files import write_text_atomically

METRICS = ("Dice", "NSD", "HD95")
# higher is better for every metric but HD95
LOWER_IS_BETTER = {"HD95"}
COLUMNS = ["architecture", "fold", "case", "label", "metric", "value"]
EMPTY_CONVENTIONS = ("Empty masks: both empty -> Dice, NSD and HD95 are NaN (the case does not count for that label, "
                     "nnU-Net's Dice convention); one empty -> Dice 0, NSD 0, HD95 NaN (left out of the HD95 mean and "
                     "tests, and counted).")


def check_metrics(metrics: Sequence[str], tolerance_mm: float) -> None:
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise UserError(f"unknown metric(s) {unknown}; choose from {list(METRICS)}")
    if not tolerance_mm > 0:
        raise UserError(f"--nsd-tolerance must be > 0 (mm), got {tolerance_mm:g}")


def surface_metrics(reference: np.ndarray, prediction: np.ndarray, spacing: Sequence[float],
                    tolerance_mm: float) -> Tuple[float, float]:
    """(NSD at ``tolerance_mm``, HD95 in mm) of two boolean masks of the same shape, with the conventions above.
    Axes of length 1 are dropped first: nnU-Net stores a 2D image as one slice, whose faces are not surfaces."""
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


def evaluate_folder(reference_folder: Path, prediction_folder: Path, dataset_json: dict, architecture: str, fold: str,
                    metrics: Sequence[str] = METRICS, tolerance_mm: float = 2.0) -> List[dict]:
    """Tidy rows for every prediction in ``prediction_folder`` (each must have its reference)."""
    check_metrics(metrics, tolerance_mm)
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
    ignore = dataset_json["labels"].get("ignore")
    rows = []
    for prediction in predictions:
        reference = Path(reference_folder) / prediction.name
        case = prediction.name[:-len(ending)]
        dice = compute_metrics(str(reference), str(prediction), reader, list(regions.values()), ignore)["metrics"]
        reference_seg, properties = reader.read_seg(str(reference))
        prediction_seg, _ = reader.read_seg(str(prediction))
        spacing = [1.0] * (reference_seg.ndim - 1 - len(properties["spacing"])) + list(properties["spacing"])
        for name, region in regions.items():
            values = {"Dice": float(dice[region]["Dice"])}
            if "NSD" in metrics or "HD95" in metrics:
                values["NSD"], values["HD95"] = surface_metrics(
                    region_or_label_to_mask(reference_seg[0], region), region_or_label_to_mask(prediction_seg[0], region),
                    spacing, tolerance_mm)
            rows += [{"architecture": architecture, "fold": fold, "case": case, "label": name, "metric": metric,
                      "value": values[metric]} for metric in metrics]
    return rows


def write_rows(rows: List[dict], path: Path) -> None:
    """Write the tidy CSV whole or not at all: a killed job never leaves half a table."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomically(path, text.getvalue())
