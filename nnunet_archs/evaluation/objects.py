"""Object-level detection: which structures a network found, which it missed, which it invented.

The objects of a label are its connected components (``connected-components-3d``), voxels touching by a face, an
edge or a corner belonging to one object (26-connectivity in 3D, 8 in 2D). A reference object and a predicted
object can match when their intersection over union exceeds ``threshold`` (default 0: any overlap; at 0.5 a
2-voxel object shifted by one voxel is already a miss); the matching is one to one, the assignment that maximises
the summed IoU (``scipy.optimize.linear_sum_assignment``). So a reference object that the prediction splits in two
matches one part and the other is a false positive; two reference objects merged into one prediction give one
match and one miss.

Per case and label: ``DetectionRecall`` (matched reference objects / reference objects), ``DetectionPrecision``
(matched predicted objects / predicted objects), ``DetectionF1`` (2 matched / (reference + predicted objects)) and
``FalsePositiveObjects`` (unmatched predicted objects). No objects on either side is "not applicable" (NaN) for
the three ratios, as for Dice; reference objects and no prediction is recall 0 and F1 0 (precision not
applicable); predicted objects and no reference object is precision 0 and F1 0 (recall not applicable), with the
false positives counted. Object sizes are in mm³ from the spacing (mm² for a 2D image).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

from nnunet_archs.errors import UserError
from nnunet_archs.evaluation.masks import bounding_box, squeezed

# object-size bins in mm³ (mm² in 2D), half decades, fixed so that studies on several datasets line up
SIZE_EDGES_MM3 = (0, 3, 10, 30, 100, 300, 1_000, 3_000, 10_000, 30_000, 100_000, math.inf)


def check_threshold(threshold: float) -> None:
    if not 0 <= threshold < 1:
        raise UserError(f"--match-iou must be in [0, 1), got {threshold:g} (0: any overlap matches)")


@dataclass
class Detection:
    """One case and label: the counts, and per object its size and the IoU of its match (0: unmatched)."""

    reference_sizes: List[float]
    predicted_sizes: List[float]
    reference_iou: List[float]
    predicted_iou: List[float]

    @property
    def matched(self) -> int:
        return sum(iou > 0 for iou in self.reference_iou)

    @property
    def recall(self) -> float:
        k = len(self.reference_sizes)
        return self.matched / k if k else math.nan

    @property
    def precision(self) -> float:
        p = len(self.predicted_sizes)
        return self.matched / p if p else math.nan

    @property
    def f1(self) -> float:
        total = len(self.reference_sizes) + len(self.predicted_sizes)
        return 2 * self.matched / total if total else math.nan

    @property
    def false_positives(self) -> float:
        return float(len(self.predicted_sizes) - self.matched)


def detect(reference: np.ndarray, prediction: np.ndarray, spacing: Sequence[float],
           threshold: float = 0.0) -> Detection:
    """Match the objects of two boolean masks of an image, of one shape (``spacing`` per axis, in mm); axes of
    length 1 are dropped first (nnU-Net's 2D image is one slice: its objects are 8-connected areas)."""
    shape, spacing = squeezed(reference.shape, spacing)
    reference, prediction = reference.reshape(shape), prediction.reshape(shape)
    box = bounding_box(reference | prediction) or (slice(0, 0),) * len(shape)
    return boxed_detect(reference[box], prediction[box], spacing, threshold)


def boxed_detect(reference: np.ndarray, prediction: np.ndarray, spacing: Sequence[float],
                 threshold: float = 0.0) -> Detection:
    """``detect`` on masks cut to the bounding box of their union (``masks.LabelMasks``; no object reaches past
    it, and the components are numbered as in the whole image), in the image's axes longer than one voxel."""
    from scipy.optimize import linear_sum_assignment
    check_threshold(threshold)
    voxel = float(np.prod(spacing))
    overlap = np.flatnonzero(reference & prediction)
    reference_voxels, reference_components = _objects(reference)
    predicted_voxels, predicted_components = _objects(prediction)
    k, p = len(reference_voxels), len(predicted_voxels)
    iou = np.zeros((k, p))
    if k == 1 and p == 1:  # one object each (a large organ): all of the overlap is theirs (the pair 1, 1)
        pairs, voxels = np.array([p + 2], np.int64), np.array([len(overlap)], np.int64)
    else:
        pairs, voxels = np.unique(_at(reference_components, overlap).astype(np.int64) * (p + 1)
                                  + _at(predicted_components, overlap), return_counts=True)
    r, q = pairs // (p + 1) - 1, pairs % (p + 1) - 1
    iou[r, q] = voxels / (reference_voxels[r] + predicted_voxels[q] - voxels)
    reference_iou, predicted_iou = np.zeros(k), np.zeros(p)
    if k and p:
        rows, columns = linear_sum_assignment(np.where(iou > threshold, iou, 0.0), maximize=True)
        for r, q in zip(rows, columns):
            if iou[r, q] > threshold:
                reference_iou[r] = predicted_iou[q] = iou[r, q]
    return Detection(list(reference_voxels * voxel), list(predicted_voxels * voxel), list(reference_iou),
                     list(predicted_iou))


def _objects(mask: np.ndarray) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """The voxel count of each connected component of ``mask``, numbered as on the whole image, and the component of
    each voxel in C order (None for one component or none: every voxel of ``mask`` is the first)."""
    import cc3d
    mask = np.ascontiguousarray(mask)
    if not mask.any():
        return np.zeros(0, np.int64), None
    # numbered in C raster order as in the whole image, given uint8 in C order (cc3d numbers bool input otherwise)
    components, count = cc3d.connected_components(mask.view(np.uint8), connectivity=26 if mask.ndim == 3 else 8,
                                                  return_N=True)
    if count == 1:
        return np.array([np.count_nonzero(mask)], np.int64), None
    flat = components.reshape(-1)
    return np.bincount(flat[np.flatnonzero(mask)], minlength=count + 1)[1:], flat


def _at(components: Optional[np.ndarray], voxels: np.ndarray) -> np.ndarray:
    return np.ones(len(voxels), np.int64) if components is None else components[voxels]


def object_rows(detection: Detection, identity: dict) -> List[dict]:
    """``tables.OBJECT_COLUMNS`` rows, reference objects then predicted ones; ``identity``: architecture, seed, fold,
    case, label."""
    rows = []
    for side, sizes, ious in (("reference", detection.reference_sizes, detection.reference_iou),
                              ("predicted", detection.predicted_sizes, detection.predicted_iou)):
        rows += [{**identity, "side": side, "object": i + 1, "size_mm3": size, "matched": bool(iou > 0), "iou": iou}
                 for i, (size, iou) in enumerate(zip(sizes, ious))]
    return rows


def size_bin(size: float) -> str:
    for low, high in zip(SIZE_EDGES_MM3, SIZE_EDGES_MM3[1:]):
        if low <= size < high:
            return f">= {low:g}" if math.isinf(high) else f"{low:g}-{high:g}"
    raise ValueError(f"object size {size} is negative")
