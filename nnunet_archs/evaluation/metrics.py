"""The metrics a study can measure, one record each: its name, which way is better, its unit, range and digits,
what a failure (a structure missed or invented) scores, the words the report's method section uses for it, and how
its value is read from the computation of its family. Statistics, figures, the report and the command line's
choices read these records, so adding a metric touches this module (and, for a new family, the module computing
it) plus its test. Metrics Reloaded (Maier-Hein et al., Nat Methods 2024) attaches the same facts to a metric.

A *family* is one computation per (case, label) that gives several metrics at once: ``overlap`` (``overlap``:
nnU-Net's own Dice, as ``nnunetv2.evaluation.evaluate_predictions.compute_metrics`` computes it), ``surface``
(``surface``: NSD and HD95 as MONAI computes them) and ``objects`` (``objects``: connected components matched one to
one).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from operator import attrgetter
from typing import Callable, Dict, Iterable, List, Sequence, Tuple

from nnunet_archs.errors import UserError

OVERLAP, SURFACE, OBJECTS = "overlap", "surface", "objects"
# the distribution that computes each family (its version is part of a study's pre-registered analysis)
FAMILY_PACKAGES = {OVERLAP: "nnunetv2", SURFACE: "monai", OBJECTS: "connected-components-3d"}


@dataclass(frozen=True)
class Metric:
    """One metric. ``value`` reads it from its family's result for one case and label; ``bounds`` is the range
    of a per-case value (HD95's upper end is each image's diagonal, known per case: ``study_range``);
    ``worst_case_on_failure``: a failure keeps the raw value NaN and is scored at the case's worst case by the
    statistics (``failures.FAILURE_CONVENTIONS``), where the other metrics score a failure as ``failure`` says."""

    name: str
    family: str
    higher_is_better: bool
    value: Callable[[object], float]
    failure: str
    method: str = ""
    unit: str = ""
    digits: int = 3
    bounds: Tuple[float, float] = (0.0, 1.0)
    worst_case_on_failure: bool = False

    @property
    def lower_is_better(self) -> bool:
        return not self.higher_is_better

    def study_range(self, worst_cases: Iterable[float]) -> Tuple[float, float]:
        """The range of a per-case value in a study whose cases have the worst cases ``worst_cases`` (the per-case
        table's column; NaN where not recorded): a metric scored at the worst case on failure can exceed no case's
        worst case, so the largest recorded one bounds it; otherwise, and with none recorded, ``bounds``."""
        known = [w for w in worst_cases if not math.isnan(w)]
        if self.worst_case_on_failure and known:
            return self.bounds[0], min(self.bounds[1], max(known))
        return self.bounds


_REGISTERED = (
    Metric("Dice", OVERLAP, True, attrgetter("dice"), "Dice 0"),
    Metric("NSD", SURFACE, True, attrgetter("nsd"), "NSD 0", method="NSD at {tolerance:g} mm"),
    Metric("HD95", SURFACE, False, attrgetter("hd95"), "HD95 {hd95}", method="HD95 in mm", unit=" mm", digits=1,
           bounds=(0.0, math.inf), worst_case_on_failure=True),
    Metric("DetectionRecall", OBJECTS, True, attrgetter("recall"), "recall 0 (a missed structure)",
           method="DetectionRecall = matched / reference objects"),
    Metric("DetectionPrecision", OBJECTS, True, attrgetter("precision"), "precision 0 (an invented structure)",
           method="DetectionPrecision = matched / predicted objects"),
    Metric("DetectionF1", OBJECTS, True, attrgetter("f1"), "F1 0",
           method="DetectionF1 = 2 matched / (reference + predicted objects)"),
    Metric("FalsePositiveObjects", OBJECTS, False, attrgetter("false_positives"), "the invented objects counted",
           method="FalsePositiveObjects = unmatched predicted objects per case", bounds=(0.0, math.inf)),
)
METRICS: Dict[str, Metric] = {metric.name: metric for metric in _REGISTERED}
METRIC_NAMES = tuple(METRICS)
DEFAULT_PRIMARY = _REGISTERED[0].name  # Dice, nnU-Net's own metric
# the first families' failure scores, stated in every report (the object metrics state theirs in their sentence)
_STATED_FAILURES = (OVERLAP, SURFACE)
EMPTY_CONVENTIONS = ("Empty masks: both empty -> {names} are not applicable (NaN; the case does not count for that "
                     "label: nnU-Net's Dice convention, where Metrics Reloaded gives 0 distance); a structure "
                     "missed or invented (one mask empty) is a failure: {scores}.")


def metric(name: str) -> Metric:
    return METRICS[name]


def family_names(family: str) -> List[str]:
    return [m.name for m in _REGISTERED if m.family == family]


def check_metrics(metrics: Sequence[str], tolerance_mm: float) -> None:
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise UserError(f"unknown metric(s) {unknown}; choose from {list(METRICS)}")
    if not tolerance_mm > 0:
        raise UserError(f"--nsd-tolerance must be > 0 (mm), got {tolerance_mm:g}")


def method_sentences(tolerance_mm: float, match_iou: float) -> str:
    """What the method section says of the surface and object metrics (their tolerance, spacing, matching)."""
    surface = " and ".join(m.method.format(tolerance=tolerance_mm) for m in _REGISTERED if m.family == SURFACE)
    objects = ", ".join(m.method for m in _REGISTERED if m.family == OBJECTS)
    return (f"{surface} use the image spacing (MONAI); voxels of the ignore label are left out of both masks. "
            f"Objects: the connected components of a label (26-connected in 3D, 8 in 2D), matched one to one by "
            f"optimal assignment at IoU > {match_iou:g}; {objects} (no object on either side: not applicable).")


def empty_conventions(hd95_failure: str) -> str:
    """The conventions for empty masks; ``hd95_failure`` says what a failure's worst-case-scored value becomes."""
    stated = [m for m in _REGISTERED if m.family in _STATED_FAILURES]
    names = ", ".join(m.name for m in stated[:-1]) + f" and {stated[-1].name}"
    scores = [m.failure.format(hd95=hd95_failure) for m in stated]
    return EMPTY_CONVENTIONS.format(names=names, scores=", ".join(scores[:-1]) + f", and {scores[-1]}")
