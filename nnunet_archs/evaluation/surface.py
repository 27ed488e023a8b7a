"""Surface metrics of two masks in the image's spacing, from MONAI: the normalised surface Dice (NSD) at a
tolerance in mm and the 95th-percentile Hausdorff distance (HD95) in mm."""
from __future__ import annotations

import math
import warnings
from typing import NamedTuple, Sequence

import numpy as np


class SurfaceDistances(NamedTuple):
    nsd: float
    hd95: float


def surface_metrics(reference: np.ndarray, prediction: np.ndarray, spacing: Sequence[float],
                    tolerance_mm: float) -> SurfaceDistances:
    """(NSD at ``tolerance_mm``, HD95 in mm) of two boolean masks of the same shape: both NaN when both masks are
    empty, NSD 0 and HD95 NaN for a failure (``failures``). Axes of length 1 are dropped first: nnU-Net stores a 2D
    image as one slice, whose faces are not surfaces."""
    import torch
    from monai.metrics import compute_hausdorff_distance, compute_surface_dice
    keep = [axis for axis, length in enumerate(reference.shape) if length > 1]
    reference, prediction = reference.squeeze(), prediction.squeeze()
    spacing = [float(spacing[axis]) for axis in keep]
    has_reference, has_prediction = bool(reference.any()), bool(prediction.any())
    if not has_reference and not has_prediction:
        return SurfaceDistances(math.nan, math.nan)
    if has_reference != has_prediction:
        return SurfaceDistances(0.0, math.nan)

    def as_tensor(mask: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(mask))[None, None].float()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # MONAI 1.6 warns about its own internal call
        nsd = compute_surface_dice(as_tensor(prediction), as_tensor(reference), class_thresholds=[tolerance_mm],
                                   include_background=True, spacing=spacing)
        hd95 = compute_hausdorff_distance(as_tensor(prediction), as_tensor(reference), include_background=True,
                                          percentile=95, spacing=spacing)
    return SurfaceDistances(float(nsd.item()), float(hd95.item()))
