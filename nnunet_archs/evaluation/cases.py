"""One case: its reference and prediction read whole (``images``), checked against each other, and measured label
by label into tidy rows (``masks``: one label's two masks at a time, cut to where they are). A case is what one
worker process of ``folder``'s pool evaluates; a refused case comes back as the sentence that refuses it."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, FrozenSet, List, Optional, Sequence, Tuple

import numpy as np

from nnunet_archs.errors import UserError
from nnunet_archs.evaluation.failures import diagonal_mm, failure_kind
from nnunet_archs.evaluation.images import TOLERANCE_TEXT, read_segmentation
from nnunet_archs.evaluation.masks import CaseMasks, squeezed
from nnunet_archs.evaluation.metrics import OBJECTS, OVERLAP, SURFACE, metric
from nnunet_archs.evaluation.objects import boxed_detect, object_rows
from nnunet_archs.evaluation.overlap import overlap
from nnunet_archs.evaluation.surface import boxed_surface_metrics


@dataclass(frozen=True)
class Settings:
    """What every case of a folder is measured with (sent to each worker process)."""

    reader: type  # nnU-Net's reader/writer class for the dataset's file ending
    regions: Dict[str, object]  # label name -> label value or region (``labels.label_regions``)
    defined: FrozenSet[int]  # every value dataset.json defines
    ignore: Optional[int]
    metrics: Tuple[str, ...]
    tolerance_mm: float
    object_labels: Tuple[str, ...]
    match_iou: float
    identity: Dict[str, object]  # architecture, seed, fold: the columns every row shares
    measure_undefined: bool = False  # measure a case holding label values dataset.json does not define


@dataclass(frozen=True)
class Case:
    name: str
    reference: Path
    prediction: Path


@dataclass
class CaseResult:
    """A case's rows (``tables.COLUMNS``) and objects (``tables.OBJECT_COLUMNS``); or why it was not measured
    (``refusal``); and the label values dataset.json does not define, per side (reference, prediction)."""

    rows: List[dict] = field(default_factory=list)
    objects: List[dict] = field(default_factory=list)
    refusal: str = ""
    undefined: Dict[str, Tuple[float, ...]] = field(default_factory=dict)


def evaluate_case(case: Case, settings: Settings, measure: bool = True) -> CaseResult:
    """Read and check ``case``; measure it unless ``measure`` is False or it holds undefined label values (and
    ``settings.measure_undefined`` is False)."""
    try:
        reference = read_segmentation(case.reference, settings.reader(), settings.defined)
        prediction = read_segmentation(case.prediction, settings.reader(), settings.defined)
    except UserError as refusal:
        return CaseResult(refusal=str(refusal))
    differences = reference.geometry.differences(prediction.geometry)
    if differences:
        what, in_reference, in_prediction = differences[0]
        tolerance = "" if what == "shape" else f"; tolerance {TOLERANCE_TEXT}"
        return CaseResult(refusal=f"case {case.name}: the prediction's {what} {in_prediction} differs from the "
                                  f"reference's {in_reference} ({case.prediction} against {case.reference}"
                                  f"{tolerance})")
    undefined = {side: image.undefined for side, image in (("reference", reference), ("prediction", prediction))
                 if image.undefined}
    if not measure or (undefined and not settings.measure_undefined):
        return CaseResult(undefined=undefined)
    rows, objects = measure_labels(reference.labels[0], prediction.labels[0], reference.geometry.spacing, settings,
                                   {**settings.identity, "case": case.name})
    return CaseResult(rows, objects, undefined=undefined)


def measure_labels(reference: np.ndarray, prediction: np.ndarray, spacing: Sequence[float], settings: Settings,
                   identity: Dict[str, object]) -> Tuple[List[dict], List[dict]]:
    """Every metric of ``settings`` for each label of two label images of one shape (``spacing`` in mm per
    axis)."""
    worst = diagonal_mm(reference.shape, spacing)
    shape, spacing = squeezed(reference.shape, spacing)
    images = CaseMasks(reference.reshape(shape), prediction.reshape(shape), settings.ignore)
    families = {metric(m).family for m in settings.metrics}
    rows: List[dict] = []
    objects: List[dict] = []
    for name, region in settings.regions.items():
        masks = images.label(region)
        failure = failure_kind(masks.has_reference, masks.has_prediction)
        results = {OVERLAP: overlap(masks.truth, masks.guess)}
        if SURFACE in families:
            results[SURFACE] = boxed_surface_metrics(masks.truth, masks.guess, spacing, settings.tolerance_mm)
        label = {**identity, "label": name}
        if OBJECTS in families and name in settings.object_labels:
            results[OBJECTS] = boxed_detect(masks.truth, masks.guess, spacing, settings.match_iou)
            objects += object_rows(results[OBJECTS], label)
        for record in (metric(m) for m in settings.metrics if metric(m).family in results):
            rows.append({**label, "metric": record.name, "value": record.value(results[record.family]),
                         # on every row, not only a failure's: the statistics keep intervals below it
                         # (Metric.study_range)
                         "failure": failure, "worst_case": worst if record.worst_case_on_failure else math.nan})
    return rows, objects


# a worker process's view of the pool's shared event, set once the folder will be refused for undefined labels
_stop_measuring = None


def start_worker(stop_measuring) -> None:
    """A pool worker: one thread for torch's few reductions, as the cases are what runs in parallel."""
    import torch
    torch.set_num_threads(1)
    global _stop_measuring
    _stop_measuring = stop_measuring


def pooled_case(job: Tuple[Case, Settings]) -> CaseResult:
    case, settings = job
    return evaluate_case(case, settings, measure=not _stop_measuring.is_set())
