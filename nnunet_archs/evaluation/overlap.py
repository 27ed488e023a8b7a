"""Overlap: nnU-Net's Dice (``nnunetv2.evaluation.evaluate_predictions.compute_metrics``), 2 TP / (2 TP + FP + FN)
with the voxels of the ignore label in neither mask, NaN when neither mask holds the label. The counts are taken in
the box that holds both masks (``masks.LabelMasks``), outside of which there is no TP, FP or FN; the value equals
nnU-Net's bit for bit (tests/evaluation/test_equivalence.py compares them). Not nnU-Net's ``compute_tp_fp_fn_tn``: it
builds an all-true mask when there is no ignore label and counts TN too, four passes more over every label's box."""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np


class Overlap(NamedTuple):
    dice: float


def overlap(reference: np.ndarray, prediction: np.ndarray) -> Overlap:
    """Dice of two boolean masks of one shape."""
    tp = int(np.count_nonzero(reference & prediction))
    fp = int(np.count_nonzero(prediction)) - tp
    fn = int(np.count_nonzero(reference)) - tp
    if tp + fp + fn == 0:
        return Overlap(math.nan)
    return Overlap(2 * tp / (2 * tp + fp + fn))
