"""Building blocks shared by the nnunet-archs networks (what DNA's blocks cannot express)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

_LINEAR_MODES = {1: "linear", 2: "bilinear", 3: "trilinear"}


def upsample_to(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """(Bi/tri)linear resize to a target *size*: exact for any anisotropic stride pattern, unlike a scalar factor."""
    return F.interpolate(x, size=tuple(size), mode=_LINEAR_MODES[x.dim() - 2], align_corners=False)


def downsample_to(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Area (adaptive average) resize: anti-aliased, where linear interpolation would just subsample."""
    return F.interpolate(x, size=tuple(size), mode="area")


def scaled_size(size: Sequence[int], factor: Sequence[int]) -> list:
    return [s * f for s, f in zip(size, factor)]


def n_elements(channels: int, size: Sequence[float]) -> np.int64:
    """Feature-map element count, the unit of nnU-Net's ``compute_conv_feature_map_size``."""
    return np.prod([channels, *[int(s) for s in size]], dtype=np.int64)


def single_map(channels: int, size: Sequence[float]) -> np.int64:
    """Estimate for a map autograd keeps once (a resampled map, a sum, pooling indices count double).

    nnU-Net's unit is one conv block output, behind which autograd keeps two maps of that size (the conv
    output for the norm, the normalised map for the nonlinearity and the next conv), so a map kept once
    counts half. Measured, not assumed: see tests/architectures/test_estimate.py.
    """
    return n_elements(channels, size) // 2
