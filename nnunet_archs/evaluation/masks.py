"""One label's two masks, cut to the region that holds them. Every metric of a (case, label) is decided inside the
bounding box of the union of its reference and prediction masks: Dice's counts, MONAI's surfaces (MONAI crops to the
same box, widened by one voxel) and the connected components (none extends past it). So the work per label follows
the size of the structure, not of the image, and only one label's masks exist at a time."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np

Box = Tuple[slice, ...]


def bounding_box(mask: np.ndarray) -> Optional[Box]:
    """The smallest box holding every True voxel of ``mask`` (None when it holds none)."""
    box = []
    for axis in range(mask.ndim):
        present = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        if not present.size:
            return None
        box.append(slice(int(present[0]), int(present[-1]) + 1))
    return tuple(box)


def region_mask(labels: np.ndarray, region) -> np.ndarray:
    """The voxels of a label value or of a region (a tuple of label values), as nnU-Net's
    ``region_or_label_to_mask``."""
    if np.isscalar(region):
        return labels == region
    return np.isin(labels, np.asarray(region, dtype=labels.dtype))


@dataclass(frozen=True)
class LabelMasks:
    """The reference (``truth``) and prediction (``guess``) masks of one label, voxels of the ignore label left out
    of both, cut to the bounding box of their union (empty arrays when neither holds the label)."""

    truth: np.ndarray
    guess: np.ndarray

    @classmethod
    def of(cls, reference: np.ndarray, prediction: np.ndarray, region, kept: Optional[np.ndarray]) -> "LabelMasks":
        """``reference`` and ``prediction`` are label images of one shape; ``kept`` is False on the ignore label."""
        truth, guess = region_mask(reference, region), region_mask(prediction, region)
        if kept is not None:  # as nnU-Net's Dice: the ignore region is in neither mask
            truth &= kept
            guess &= kept
        box = bounding_box(truth | guess)
        if box is None:
            empty = np.zeros((0,) * reference.ndim, bool)
            return cls(empty, empty)
        return cls(truth[box], guess[box])

    @property
    def has_reference(self) -> bool:
        return bool(self.truth.any())

    @property
    def has_prediction(self) -> bool:
        return bool(self.guess.any())


def squeezed(shape: Sequence[int], spacing: Sequence[float]) -> Tuple[Tuple[int, ...], list]:
    """The image's axes longer than one voxel and their spacing: nnU-Net stores a 2D image as one slice, whose
    faces are neither surfaces nor object boundaries."""
    keep = [axis for axis, length in enumerate(shape) if length > 1]
    return tuple(shape[axis] for axis in keep), [float(spacing[axis]) for axis in keep]
