"""Failures: a structure the reference has and the prediction misses, or the reverse. Dice and NSD score them 0;
HD95 has no distance between a surface and nothing, so its row keeps the raw value NaN with the kind of failure and
the case's worst case (the image's diagonal in mm, Metrics Reloaded's "set to the worst case in aggregation"); the
statistics fill it in under a convention, so that ``report`` can switch it without evaluating again."""
from __future__ import annotations

import math
from typing import Sequence

from nnunet_archs.errors import UserError

MISSED, SPURIOUS = "missed", "spurious"
# what a failure scores in aggregation: the worst case (default), or left out as before (the HD95 mean then
# rewards a network that misses what it cannot find)
FAILURE_CONVENTIONS = ("worst", "exclude")
FAILURE_TEXT = {"worst": "the image's diagonal in mm (the worst case)",
                "exclude": "left out of the HD95 mean and tests (and counted)"}


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
