"""One label's two masks, cut to the region that holds them. Every metric of a (case, label) is decided inside the
bounding box of the union of its reference and prediction masks: Dice's counts, MONAI's surfaces (MONAI crops to the
same box, widened by one voxel) and the connected components (none extends past it). So the work per label follows
the size of the structure, not of the image; and one label's masks exist at a time, in three image-sized buffers
every label of a case reuses (the memory of a case does not grow with its labels, and no page is faulted in
again)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np

Box = Tuple[slice, ...]


def bounding_box(mask: np.ndarray) -> Optional[Box]:
    """The smallest box holding every True voxel of ``mask`` (None when it holds none). Each axis's extent comes
    from reductions along contiguous memory, the later axes' within the first axis's extent only."""
    box = []
    for axis, length in enumerate(mask.shape):
        rows = mask.reshape(int(np.prod(mask.shape[:axis], dtype=np.int64)), length, -1)
        present = np.flatnonzero((rows.any(axis=2) if rows.shape[2] > 1 else rows[:, :, 0]).any(axis=0))
        if not present.size:
            return None
        box.append(slice(int(present[0]), int(present[-1]) + 1))
        if axis == 0:
            mask = mask[box[0]]
    return tuple(box)


@dataclass(frozen=True)
class LabelMasks:
    """The reference (``truth``) and prediction (``guess``) masks of one label, voxels of the ignore label left out
    of both, cut to the bounding box of their union (empty arrays when neither holds the label)."""

    truth: np.ndarray
    guess: np.ndarray

    @property
    def has_reference(self) -> bool:
        return bool(self.truth.any())

    @property
    def has_prediction(self) -> bool:
        return bool(self.guess.any())


class CaseMasks:
    """The label images of one case (of one shape), from which each label's masks are cut in turn."""

    def __init__(self, reference: np.ndarray, prediction: np.ndarray, ignore: Optional[int]):
        self.reference, self.prediction = reference, prediction
        self.kept = None if ignore is None else reference != ignore
        self._truth, self._guess, self._union = (np.empty(reference.shape, bool) for _ in range(3))

    def label(self, region) -> LabelMasks:
        """The masks of a label value or of a region (a tuple of values, as nnU-Net's ``region_or_label_to_mask``);
        they stay valid until the next label's are cut."""
        truth, guess = _region(self.reference, region, self._truth), _region(self.prediction, region, self._guess)
        if self.kept is not None:  # as nnU-Net's Dice: the ignore region is in neither mask
            truth &= self.kept
            guess &= self.kept
        box = bounding_box(np.logical_or(truth, guess, out=self._union))
        if box is None:
            empty = np.zeros((0,) * truth.ndim, bool)
            return LabelMasks(empty, empty)
        return LabelMasks(truth[box], guess[box])


def _region(labels: np.ndarray, region, out: np.ndarray) -> np.ndarray:
    values = [region] if np.isscalar(region) else list(region)
    np.equal(labels, values[0], out=out)
    for value in values[1:]:
        out |= labels == value
    return out


def squeezed(shape: Sequence[int], spacing: Sequence[float]) -> Tuple[Tuple[int, ...], list]:
    """The image's axes longer than one voxel and their spacing: nnU-Net stores a 2D image as one slice, whose
    faces are neither surfaces nor object boundaries."""
    keep = [axis for axis, length in enumerate(shape) if length > 1]
    return tuple(shape[axis] for axis in keep), [float(spacing[axis]) for axis in keep]
