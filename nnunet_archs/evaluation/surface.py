"""Surface metrics of two masks in the image's spacing, as MONAI defines them: the normalised surface Dice (NSD) at
a tolerance in mm (``monai.metrics.compute_surface_dice``) and the 95th-percentile Hausdorff distance (HD95) in mm
(``monai.metrics.compute_hausdorff_distance``), equal to those two calls bit for bit
(tests/evaluation/test_equivalence.py compares them on random masks).

Both metrics are read from one extraction of the two surfaces and one pair of distance sets per (case, label), where
the two MONAI calls extract and search everything twice. The steps are MONAI's (1.5-1.6, on a CPU): a mask's surface
is its voxels with a face neighbour outside the mask (MONAI: scipy's binary erosion, XOR), in the frame of MONAI's
crop (the bounding box of both masks widened by one voxel, which fixes the coordinates and so every rounding); each
surface voxel's distance to the other surface is its nearest-neighbour distance over that surface's voxel centres in
mm (MONAI: ``scipy.spatial.KDTree``, leaves of 32); NSD and HD95 are MONAI's torch reductions of those distances.
The surfaces are found inside the box only, and MONAI is not imported: importing it takes longer than evaluating a
CT case. Not MONAI's own ``get_edge_surface_distance`` (one call per pair, both directions, also bit for bit): on the
boxed masks of three 13.3 Mvox CT cases (benchmarks/evaluation_speed.py's) it took 2.14 s against 0.51 s here, which
alone would put evaluation past the 1.5x of nnU-Net's that BENCHMARKS.md section 11 holds it to."""
from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import numpy as np

from nnunet_archs.evaluation.masks import bounding_box, squeezed

HD_PERCENTILE = 95


class SurfaceDistances(NamedTuple):
    nsd: float
    hd95: float


def surface_metrics(reference: np.ndarray, prediction: np.ndarray, spacing: Sequence[float],
                    tolerance_mm: float) -> SurfaceDistances:
    """(NSD at ``tolerance_mm``, HD95 in mm) of two boolean masks of an image, of the same shape: both NaN when
    both masks are empty, NSD 0 and HD95 NaN for a failure (``failures``). Axes of length 1 are dropped first:
    nnU-Net stores a 2D image as one slice, whose faces are not surfaces."""
    shape, spacing = squeezed(reference.shape, spacing)
    reference, prediction = reference.reshape(shape), prediction.reshape(shape)
    box = bounding_box(reference | prediction)
    if box is None:
        return SurfaceDistances(math.nan, math.nan)
    return boxed_surface_metrics(reference[box], prediction[box], spacing, tolerance_mm)


def boxed_surface_metrics(reference: np.ndarray, prediction: np.ndarray, spacing: Sequence[float],
                          tolerance_mm: float) -> SurfaceDistances:
    """``surface_metrics`` of masks already cut to the bounding box of their union (``masks.LabelMasks``), in the
    image's axes longer than one voxel, ``spacing`` theirs."""
    has_reference, has_prediction = bool(reference.any()), bool(prediction.any())
    if not has_reference and not has_prediction:
        return SurfaceDistances(math.nan, math.nan)
    if has_reference != has_prediction:
        return SurfaceDistances(0.0, math.nan)
    import torch
    frame = tuple(length + 2 for length in reference.shape)
    reference_surface, predicted_surface = surface(reference), surface(prediction)
    # MONAI's get_surface_distance, both ways: each surface voxel's distance to the nearest voxel of the other
    # surface, as float32
    predicted_to_reference = _distances(predicted_surface, reference_surface, frame, spacing)
    reference_to_predicted = _distances(reference_surface, predicted_surface, frame, spacing)
    # compute_surface_dice (without subvoxels): the surface voxels within tolerance over all surface voxels
    correct = torch.sum(predicted_to_reference <= tolerance_mm) + torch.sum(reference_to_predicted <= tolerance_mm)
    nsd = correct / (len(predicted_to_reference) + len(reference_to_predicted))
    # compute_hausdorff_distance (percentile 95, symmetric): the larger of the two directed percentiles
    hd95 = torch.max(torch.stack([torch.quantile(d, HD_PERCENTILE / 100)
                                  for d in (predicted_to_reference, reference_to_predicted)]))
    return SurfaceDistances(float(nsd.to(torch.float32).item()), float(hd95.item()))


def surface(mask: np.ndarray) -> np.ndarray:
    """The voxels of ``mask`` (cut to its box) with a face neighbour outside it, MONAI's edges (``binary_erosion(mask)
    ^ mask``, nothing in the mask beyond the box: MONAI pads its crop with zeros), as ascending flat indices into
    MONAI's frame, the box widened by one voxel."""
    frame = tuple(length + 2 for length in mask.shape)
    if np.count_nonzero(mask) * 8 * mask.ndim < mask.size:  # a few small objects in a large box: look at their
        voxels = _framed(np.flatnonzero(mask), mask.shape)  # voxels' neighbours only
        interior = np.ones(len(voxels), bool)
        for stride in (int(np.prod(frame[axis + 1:])) for axis in range(mask.ndim)):
            for neighbours in (voxels - stride, voxels + stride):
                interior &= np.isin(neighbours, voxels, assume_unique=True)
        return voxels[~interior]
    inside = np.pad(mask, 1)
    core = (slice(1, -1),) * mask.ndim
    interior = inside[core].copy()
    for axis in range(mask.ndim):
        for neighbour in (slice(0, -2), slice(2, None)):
            interior &= inside[core[:axis] + (neighbour,) + core[axis + 1:]]
    return _framed(np.flatnonzero(mask & ~interior), mask.shape)


def _framed(flat: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Flat indices into an array of ``shape`` as flat indices into it widened by one voxel on every side."""
    return np.ravel_multi_index(tuple(i + 1 for i in np.unravel_index(flat, shape)), tuple(n + 2 for n in shape))


def _points(voxels: np.ndarray, frame: Sequence[int], spacing: Sequence[float]) -> np.ndarray:
    """The centres of ``voxels`` (flat indices into ``frame``) in mm: MONAI's coordinates, in its frame (and so
    every rounding) and its order (C order, as ``numpy.argwhere``)."""
    return np.stack(np.unravel_index(voxels, frame), axis=1).astype(np.float64) * np.asarray(spacing, np.float64)


def _distances(source: np.ndarray, target: np.ndarray, frame: Sequence[int], spacing: Sequence[float]):
    """The distance from each voxel of the surface ``source`` to the nearest voxel of the surface ``target``:
    MONAI's k-d tree over ``target``, asked only for the voxels not on ``target`` itself (their distance is 0
    exactly, as the query returns it)."""
    import torch
    from scipy.spatial import KDTree
    elsewhere = source[~np.isin(source, target, assume_unique=True)]
    found = KDTree(_points(target, frame, spacing), leafsize=32).query(_points(elsewhere, frame, spacing), k=1)[0]
    return torch.as_tensor(np.concatenate([np.zeros(len(source) - len(elsewhere)), found]), dtype=torch.float32)
