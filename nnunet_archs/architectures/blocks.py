"""Building blocks shared by the nnunet-archs networks (what DNA's blocks cannot express)."""
from __future__ import annotations

import contextlib
from typing import Callable, List, Optional, Sequence, Tuple, Type

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

_LINEAR_MODES = {1: "linear", 2: "bilinear", 3: "trilinear"}
_MAX_POOLS = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
_CONVS = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CHANNELS_LAST = {2: torch.channels_last, 3: torch.channels_last_3d}
_AUTOCAST_DEVICES = ("cpu", "cuda", "xpu")


def in_input_precision(x: torch.Tensor):
    """Autocast off for a resampling op on ``x``: it then runs in ``x``'s precision, on every device as CUDA's
    autocast runs it. CPU autocast runs resampling in float32 and saves a float32 copy of its input, a cost
    nnU-Net's fp16 training on GPUs does not have; on CPU (the stand-in we can measure) it would hide it. Devices
    without autocast (the meta device on which compare counts FLOPs) have nothing to switch off."""
    if x.device.type not in _AUTOCAST_DEVICES:
        return contextlib.nullcontext()
    return torch.autocast(x.device.type, enabled=False)


def upsample_to(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """(Bi/tri)linear resize to a target *size*: exact for any anisotropic stride pattern, unlike a scalar factor."""
    with in_input_precision(x):
        return F.interpolate(x, size=tuple(size), mode=_LINEAR_MODES[x.dim() - 2], align_corners=False)


def downsample_to(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Area (adaptive average) resize: anti-aliased, where linear interpolation would just subsample. (Plain
    average pooling by the integer factor is the same arithmetic, but measured no faster on CPU and has no
    CPU bfloat16 kernel in 3D.)"""
    with in_input_precision(x):
        return F.interpolate(x, size=tuple(size), mode="area")


def convolve(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """A stride-1, unpadded convolution of ``x`` with an explicit weight (e.g. a slice of a layer's weight)."""
    return _CONVS[x.dim() - 2](x, weight, bias)


def max_pool(x: torch.Tensor, factor: Sequence[int], recompute_indices: bool = True) -> torch.Tensor:
    """Max-pooling by ``factor``, in ``x``'s precision.

    With ``recompute_indices``, the int64 argmax indices that autograd's max-pooling keeps (2x a float32 map,
    4x a half-precision map under nnU-Net's autocast) are recomputed in backward from the input instead: the
    same outputs and gradients, for no memory when the input is kept for backward anyway (the output of a
    conv block, which its nonlinearity keeps), and for more when it is not.
    """
    pool = _MAX_POOLS[x.dim() - 2]
    with in_input_precision(x):
        if recompute_indices and torch.is_grad_enabled():
            return checkpoint(pool, x, factor, factor, use_reentrant=False)
        return pool(x, factor, factor)


class MaxPool(nn.Module):
    """:func:`max_pool` keeping its indices, as a parameter-free module."""

    def __init__(self, factor: Sequence[int]):
        super().__init__()
        self.factor = list(factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return max_pool(x, self.factor, recompute_indices=False)


def channels_last_on_cpu(x: torch.Tensor) -> torch.Tensor:
    """The channels-last copy of ``x`` on CPU, ``x`` elsewhere: oneDNN's CPU kernels for narrow (4-16 channel)
    convolutions run 2-3x faster channels-last (backward above all; measured, BENCHMARKS.md). Not applied on
    GPUs, where it was not measured."""
    if x.device.type != "cpu":
        return x
    return x.contiguous(memory_format=_CHANNELS_LAST[x.dim() - 2])


def maybe_checkpoint(enabled: bool, function: Callable, *args) -> Tuple[torch.Tensor, ...]:
    """``function(*args)``, under non-reentrant ``torch.utils.checkpoint`` when ``enabled`` and training: the
    tensors it saves for backward are dropped and recomputed in backward from ``args``."""
    if enabled and torch.is_grad_enabled():
        return checkpoint(function, *args, use_reentrant=False)
    return function(*args)


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


class ActivationTally:
    """Activation estimate of a network made of consecutive parts, some of which may be checkpointed.

    ``add`` the parts in forward order. Backward visits them in reverse; while it is in part i, the parts before
    it still hold what they keep (a checkpointed part only its outputs, others everything they saved), part i
    holds all of its activations (recomputed, if checkpointed) and the gradient of its largest map, and the parts
    after it have left the gradients of the skips they read. The estimate is the largest such total; without
    checkpointing it is, up to one gradient map, the sum of all parts, as nnU-Net's estimate.

    The largest map's gradient matters where one map is most of a part (KiU-Net's narrow Ki maps at twice the
    input's resolution: without it, checkpointed KiU-Nets measured 0.81-0.84x PlainConvUNet's estimate per
    byte); parts made of many similar maps (UIU-Net's) leave it out, as nnU-Net's own estimate does."""

    def __init__(self):
        self.parts: List[Tuple[np.int64, np.int64, np.int64]] = []  # (held, at its backward, skip gradients)

    def add(self, full: np.int64, kept: np.int64 = np.int64(0), checkpointed: bool = False,
            skips: np.int64 = np.int64(0), largest: np.int64 = np.int64(0)) -> None:
        """A part with ``full`` activations, of which it keeps ``kept`` if ``checkpointed``; ``skips``: the skip
        maps it reads from earlier parts; ``largest``: its largest map (n_elements), whose gradient backward holds
        beside the part's activations."""
        self.parts.append((np.int64(kept if checkpointed else full), np.int64(full + largest), np.int64(skips)))

    @property
    def total(self) -> np.int64:
        held_before, peak = np.int64(0), np.int64(0)
        skips_after = np.int64(sum(skips for _, _, skips in self.parts))
        for held, in_backward, skips in self.parts:
            skips_after -= skips
            peak = max(peak, held_before + in_backward + skips_after)
            held_before += held
        return np.int64(peak)


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
        return self.all_modules[1:](self._convolve(x))

    def _convolve(self, x: torch.Tensor) -> torch.Tensor:
        """The convolution without the taps that read only zero padding.

        Along an axis whose dilation is at least the map's size, every tap but the centre one falls into the
        padding (UIU-Net's dilations 4 and 8 on nnU-Net's 4-voxel bottleneck): the centre tap alone gives the
        same output and the same gradients (the others' are zero), at a fraction of the FLOPs."""
        conv = self.conv
        reads_data = [k == 1 or d < size for k, d, size in zip(conv.kernel_size, conv.dilation, x.shape[2:])]
        if all(reads_data):
            return conv(x)
        keep = tuple(slice(None) if r else slice(k // 2, k // 2 + 1) for r, k in zip(reads_data, conv.kernel_size))
        return _CONVS[x.dim() - 2](x, conv.weight[(slice(None), slice(None)) + keep], conv.bias, 1,
                                   [p if r else 0 for p, r in zip(conv.padding, reads_data)],
                                   [d if r else 1 for d, r in zip(conv.dilation, reads_data)])

    def compute_conv_feature_map_size(self, input_size: Sequence[int]) -> np.int64:
        return n_elements(self.output_channels, input_size)
