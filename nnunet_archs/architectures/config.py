"""Validation and normalisation of the PlainConvUNet keyword set shared by every nnunet-archs network.

nnU-Net builds a network as ``cls(input_channels=..., num_classes=..., **arch_kwargs)`` from a plans file
(``nnunetv2/utilities/get_network_from_plans.py``). Our networks accept exactly the keywords of DNA's
``PlainConvUNet`` so that a plans file only needs ``network_class_name`` changed. This module turns those
keywords into one checked, fully expanded :class:`UNetConfig` and raises ``UserError`` (a ValueError) naming the
parameter and the allowed values for anything invalid -- before a single layer is built.
"""
from __future__ import annotations

import pydoc
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Type, Union

import numpy as np
import torch
from torch import nn

from nnunet_archs.errors import UserError

IntOrSeq = Union[int, Sequence[int]]

_CONV_DIMS = {nn.Conv2d: 2, nn.Conv3d: 3}


def resolve_class(name: str, value: Any) -> Any:
    """Accept a class or, as plans files store them, its dotted import path."""
    if isinstance(value, str):
        located = pydoc.locate(value)
        if located is None:
            raise UserError(f"{name}={value!r} could not be imported; give a class or an importable dotted path")
        return located
    return value


def _as_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise UserError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def per_stage(name: str, value: Any, length: int, minimum: int = 1) -> List[int]:
    """An int (repeated) or a list of ``length`` ints, each >= ``minimum``."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = [value] * length
    if not isinstance(value, (list, tuple, np.ndarray)) or len(value) != length:
        raise UserError(f"{name} must be an int or a list of {length} ints, got {value!r}")
    return [_as_int(f"{name}[{i}]", v, minimum) for i, v in enumerate(value)]


def per_axis(name: str, value: Any, dim: int, minimum: int = 1) -> List[int]:
    """An int (repeated over the ``dim`` spatial axes) or a list of ``dim`` ints."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = [value] * dim
    if not isinstance(value, (list, tuple, np.ndarray)) or len(value) != dim:
        raise UserError(f"{name} must be an int or a list of {dim} ints (one per spatial axis), got {value!r}")
    return [_as_int(f"{name}[{i}]", v, minimum) for i, v in enumerate(value)]


def per_stage_per_axis(name: str, value: Any, length: int, dim: int) -> List[List[int]]:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = [value] * length
    if not isinstance(value, (list, tuple, np.ndarray)) or len(value) != length:
        raise UserError(f"{name} must have one entry per stage ({length}), got {value!r}")
    return [per_axis(f"{name}[{i}]", v, dim) for i, v in enumerate(value)]


def check_choice(name: str, value: Any, allowed: Sequence[Any]) -> Any:
    if value not in allowed:
        raise UserError(f"{name} must be one of {list(allowed)}, got {value!r}")
    return value


@dataclass
class UNetConfig:
    """The PlainConvUNet keywords, checked and expanded to one entry per stage and per axis."""

    input_channels: int
    num_classes: int
    n_stages: int
    features_per_stage: List[int]
    conv_op: Type[nn.Module]
    kernel_sizes: List[List[int]]
    strides: List[List[int]]
    n_conv_per_stage: List[int]
    n_conv_per_stage_decoder: List[int]
    conv_bias: bool
    norm_op: Optional[Type[nn.Module]]
    norm_op_kwargs: Optional[dict]
    dropout_op: Optional[Type[nn.Module]]
    dropout_op_kwargs: Optional[dict]
    nonlin: Optional[Type[nn.Module]]
    nonlin_kwargs: Optional[dict]
    deep_supervision: bool
    nonlin_first: bool

    @property
    def dim(self) -> int:
        return _CONV_DIMS[self.conv_op]

    def __post_init__(self):
        # Per stage, how much smaller than the input that stage's feature maps are along each axis. Plain ints,
        # computed once: forward() reads them, and dynamo would trace numpy here as data-dependent tensors.
        self.cumulative_strides: List[List[int]] = []
        running = [1] * self.dim
        for stride in self.strides:
            running = [r * s for r, s in zip(running, stride)]
            self.cumulative_strides.append(running)

    @property
    def block_kwargs(self) -> dict:
        """Keyword arguments shared by every DNA conv block (``ConvDropoutNormReLU``/``StackedConvBlocks``)."""
        return dict(conv_bias=self.conv_bias, norm_op=self.norm_op, norm_op_kwargs=self.norm_op_kwargs,
                    dropout_op=self.dropout_op, dropout_op_kwargs=self.dropout_op_kwargs, nonlin=self.nonlin,
                    nonlin_kwargs=self.nonlin_kwargs, nonlin_first=self.nonlin_first)

    def check_input(self, x: torch.Tensor) -> None:
        """Fail with a readable message instead of a shape error deep inside ``forward``."""
        if x.dim() != self.dim + 2 or x.shape[1] != self.input_channels:
            raise UserError(f"input must have shape (batch, {self.input_channels}, *{self.dim} spatial axes), "
                             f"got {tuple(x.shape)}")
        divisor = self.cumulative_strides[-1]
        if any(size % d != 0 for size, d in zip(x.shape[2:], divisor)):
            raise UserError(f"input spatial size {tuple(x.shape[2:])} must be divisible by the product of the "
                             f"strides {tuple(divisor)} along each axis (nnU-Net plans guarantee this for the "
                             f"patch size)")


def build_unet_config(input_channels: int, n_stages: int, features_per_stage: IntOrSeq, conv_op: Any,
                      kernel_sizes: Any, strides: Any, n_conv_per_stage: Optional[IntOrSeq],
                      num_classes: Optional[int], n_conv_per_stage_decoder: Optional[IntOrSeq],
                      conv_bias: bool, norm_op: Any, norm_op_kwargs: Optional[dict], dropout_op: Any,
                      dropout_op_kwargs: Optional[dict], nonlin: Any, nonlin_kwargs: Optional[dict],
                      deep_supervision: bool, nonlin_first: bool,
                      n_blocks_per_stage: Optional[IntOrSeq] = None) -> UNetConfig:
    """Check every PlainConvUNet keyword; ``n_blocks_per_stage`` is taken only to explain ResEnc plans."""
    if n_blocks_per_stage is not None:
        raise UserError(
            "n_blocks_per_stage is a ResidualEncoderUNet (ResEnc plans) keyword and is not used here; give "
            "n_conv_per_stage instead (nnU-Net's default is 2 per stage), e.g. via "
            "nnunet_archs.architectures.config.plain_kwargs_from_plans(arch_kwargs)")
    conv_op = resolve_class("conv_op", conv_op)
    if conv_op not in _CONV_DIMS:
        raise UserError(f"conv_op must be torch.nn.Conv2d or torch.nn.Conv3d, got {conv_op!r}")
    dim = _CONV_DIMS[conv_op]
    n_stages = _as_int("n_stages", n_stages, 1)
    for name, value in (("n_conv_per_stage", n_conv_per_stage), ("num_classes", num_classes),
                        ("n_conv_per_stage_decoder", n_conv_per_stage_decoder)):
        if value is None:
            raise UserError(f"{name} is required (it is part of every nnU-Net PlainConvUNet plans entry)")
    if n_stages < 2:
        raise UserError(f"n_stages must be >= 2 (an encoder-decoder needs a bottleneck), got {n_stages}")
    return UNetConfig(
        input_channels=_as_int("input_channels", input_channels, 1),
        num_classes=_as_int("num_classes", num_classes, 1),
        n_stages=n_stages,
        features_per_stage=per_stage("features_per_stage", features_per_stage, n_stages),
        conv_op=conv_op,
        kernel_sizes=_odd_kernels(per_stage_per_axis("kernel_sizes", kernel_sizes, n_stages, dim)),
        strides=per_stage_per_axis("strides", strides, n_stages, dim),
        n_conv_per_stage=per_stage("n_conv_per_stage", n_conv_per_stage, n_stages),
        n_conv_per_stage_decoder=per_stage("n_conv_per_stage_decoder", n_conv_per_stage_decoder, n_stages - 1),
        conv_bias=bool(conv_bias),
        norm_op=resolve_class("norm_op", norm_op),
        norm_op_kwargs=norm_op_kwargs,
        dropout_op=resolve_class("dropout_op", dropout_op),
        dropout_op_kwargs=dropout_op_kwargs,
        nonlin=resolve_class("nonlin", nonlin),
        nonlin_kwargs=nonlin_kwargs,
        deep_supervision=bool(deep_supervision),
        nonlin_first=bool(nonlin_first),
    )


def _odd_kernels(kernel_sizes: List[List[int]]) -> List[List[int]]:
    for s, kernel in enumerate(kernel_sizes):
        if any(k % 2 == 0 for k in kernel):
            raise UserError(f"kernel_sizes[{s}]={kernel} must be odd along every axis ('same' padding)")
    return kernel_sizes


def plain_kwargs_from_plans(arch_kwargs: dict, n_conv_per_stage: IntOrSeq = 2) -> dict:
    """Plans ``arch_kwargs`` for our networks: ResEnc's ``n_blocks_per_stage`` becomes ``n_conv_per_stage``.

    Residual-Encoder plans describe residual blocks per stage, which have no counterpart in KiU-Net or UIU-Net;
    the plain conv count per stage (nnU-Net's default 2) is used instead. Default plans pass through unchanged.
    """
    kwargs = dict(arch_kwargs)
    if "n_blocks_per_stage" in kwargs:
        kwargs.pop("n_blocks_per_stage")
        kwargs.setdefault("n_conv_per_stage", per_stage("n_conv_per_stage", n_conv_per_stage,
                                                        int(kwargs["n_stages"])))
    return kwargs


# nnU-Net's Residual-Encoder presets (nnunetv2 ResEncUNetPlanner): residual blocks per encoder stage
RESENC_BLOCKS_PER_STAGE = (1, 3, 4, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6)


def resenc_kwargs_from_plans(arch_kwargs: dict) -> dict:
    """Plans ``arch_kwargs`` for DNA's ResidualEncoderUNet as nnU-Net's ResEnc presets configure it (residual
    blocks 1, 3, 4, 6, 6, ... per stage, one conv per decoder stage). ResEnc plans pass through unchanged."""
    kwargs = dict(arch_kwargs)
    if "n_conv_per_stage" in kwargs:
        n_stages = int(kwargs["n_stages"])
        kwargs.pop("n_conv_per_stage")
        kwargs["n_blocks_per_stage"] = list(RESENC_BLOCKS_PER_STAGE[:n_stages])
        kwargs["n_conv_per_stage_decoder"] = [1] * (n_stages - 1)
    return kwargs


def takes_residual_blocks(network_class: type) -> bool:
    """Whether a network class is built like ResidualEncoderUNet (``n_blocks_per_stage``) rather than
    PlainConvUNet (``n_conv_per_stage``): its plans keywords, and which of nnU-Net's planners sizes it."""
    import inspect
    parameters = inspect.signature(network_class.__init__).parameters
    return "n_blocks_per_stage" in parameters and "n_conv_per_stage" not in parameters
