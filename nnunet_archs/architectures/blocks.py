"""Building blocks shared by the nnunet-archs networks (what DNA's blocks cannot express)."""
from __future__ import annotations

from typing import List, Sequence, Type

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

_LINEAR_MODES = {1: "linear", 2: "bilinear", 3: "trilinear"}


def upsample_to(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """(Bi/tri)linear resize to a target *size*: exact for any anisotropic stride pattern, unlike a scalar factor."""
    return F.interpolate(x, size=tuple(size), mode=_LINEAR_MODES[x.dim() - 2], align_corners=False)


def downsample_to(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Area (adaptive average) resize: anti-aliased, where linear interpolation would just subsample."""
    return F.interpolate(x, size=tuple(size), mode="area")


def scaled_size(size: Sequence[int], factor: Sequence[int]) -> list:
    return [s * f for s, f in zip(size, factor)]


def shrunk(size: Sequence[int], factor: Sequence[int]) -> List[int]:
    return [s // f for s, f in zip(size, factor)]


def is_identity(factor: Sequence[int]) -> bool:
    return all(f == 1 for f in factor)


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


class DilatedConvDropoutNormReLU(nn.Module):
    """DNA's ``ConvDropoutNormReLU`` with a dilation, which DNA's block hard-codes to 1.

    The dilation applies only along axes whose kernel is larger than 1, so a ``[1, 3, 3]`` kernel stays
    in-plane; padding keeps the spatial size ('same').
    """

    def __init__(self, conv_op: Type[nn.Module], in_channels: int, out_channels: int, kernel_size: List[int],
                 dilation: int, conv_bias: bool = False, norm_op=None, norm_op_kwargs=None, dropout_op=None,
                 dropout_op_kwargs=None, nonlin=None, nonlin_kwargs=None, nonlin_first: bool = False):
        super().__init__()
        dilations = [dilation if k > 1 else 1 for k in kernel_size]
        self.conv = conv_op(in_channels, out_channels, kernel_size, 1,
                            padding=[d * (k - 1) // 2 for d, k in zip(dilations, kernel_size)],
                            dilation=dilations, bias=conv_bias)
        ops = [self.conv]
        if dropout_op is not None:
            ops.append(dropout_op(**(dropout_op_kwargs or {})))
        after = []
        if norm_op is not None:
            after.append(norm_op(out_channels, **(norm_op_kwargs or {})))
        if nonlin is not None:
            after.append(nonlin(**(nonlin_kwargs or {})))
        self.all_modules = nn.Sequential(*ops, *(after[::-1] if nonlin_first else after))
        self.output_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.all_modules(x)

    def compute_conv_feature_map_size(self, input_size: Sequence[int]) -> np.int64:
        return n_elements(self.output_channels, input_size)
