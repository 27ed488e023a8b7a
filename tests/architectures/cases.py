"""The architectures under the shared contract suite, each with a strategy for its own options.

Adding an architecture to the suite means adding one row here; every contract test runs over this table.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Tuple

import numpy as np
import torch
from hypothesis import assume
from hypothesis import strategies as st
from torch import nn

from nnunet_archs.architectures import kiunet, uiunet
from nnunet_archs.architectures.kiunet import DynamicKiUNet
from nnunet_archs.architectures.uiunet import DynamicUIUNet3D

# Bound on input voxels times the Ki branch's upsampling, so that 200 random nets run in about a minute.
MAX_WORK_VOXELS = 2 ** 17


@dataclass
class ArchCase:
    name: str
    cls: type
    class_path: str
    options: Callable[[st.DrawFn, dict, List[int]], dict]  # (draw, base kwargs, input size) -> extra kwargs
    checkpoint_modes: Tuple[str, ...]  # the ``checkpoint`` values other than 'none'


def _kiunet_options(draw: st.DrawFn, base: dict, input_size: List[int]) -> dict:
    n_stages = base["n_stages"]
    options = dict(
        pool_type=draw(st.sampled_from(["conv", "max", "avg"])),
        ki_num_stages=draw(st.integers(1, n_stages)),
        ki_max_scale=draw(st.sampled_from([1, 2, 4, None])),
        ki_features_per_stage=draw(st.sampled_from([2, 4, None, "unet"])),
        crfb_kernel_size=draw(st.sampled_from([1, 3])),
        crfb_resolution=draw(st.sampled_from(["lower", "source"])),
        skip_placement=draw(st.sampled_from(["after", "before"])),
        fusion=draw(st.sampled_from(["mean_logits", "feature_add"])),
        checkpoint=draw(st.sampled_from(kiunet.CHECKPOINT_MODES)),
    )
    cumulative = np.cumprod(np.array(base["strides"]), axis=0)[options["ki_num_stages"] - 1]
    cap = np.inf if options["ki_max_scale"] is None else options["ki_max_scale"]
    work = np.prod(input_size) * np.prod(np.minimum(cumulative, cap))
    if options["ki_features_per_stage"] == "unet":  # as wide as the U-Net (up to 32 channels, not 2 to 8)
        work *= max(base["features_per_stage"][:options["ki_num_stages"]]) / 8
    assume(work <= MAX_WORK_VOXELS)
    return options


def _uiunet_options(draw: st.DrawFn, base: dict, input_size: List[int]) -> dict:
    n_stages = base["n_stages"]
    num_dilated = draw(st.integers(0, n_stages))
    options = dict(num_dilated_stages=num_dilated, use_ica=draw(st.booleans()),
                   ica_reduction=draw(st.sampled_from([1, 2, 4])),
                   mid_ratio=draw(st.sampled_from([0.25, 0.5, 1.0, "original"])),
                   side_kernel=draw(st.sampled_from(["stage", 1, 3])),
                   pool_type=draw(st.sampled_from(["max", "conv", "avg"])),
                   checkpoint=draw(st.sampled_from(uiunet.CHECKPOINT_MODES)))
    if draw(st.booleans()):  # an explicit heights list, each as tall as the remaining strides allow
        options["rsu_heights"] = [draw(st.integers(2, 5 if s >= n_stages - num_dilated else n_stages - s + 1))
                                  for s in range(n_stages)]
    else:
        options["rsu_max_height"], options["rsu_min_height"] = draw(st.sampled_from([(7, 4), (5, 3), (4, 2)]))
    return options


ARCHITECTURES = [
    ArchCase("kiunet", DynamicKiUNet, "nnunet_archs.architectures.kiunet.DynamicKiUNet", _kiunet_options,
             kiunet.CHECKPOINT_MODES[1:]),
    ArchCase("uiunet", DynamicUIUNet3D, "nnunet_archs.architectures.uiunet.DynamicUIUNet3D", _uiunet_options,
             uiunet.CHECKPOINT_MODES[1:]),
]


@st.composite
def unet_kwargs(draw: st.DrawFn):
    """A random valid nnU-Net network configuration (PlainConvUNet keywords) and its smallest trainable input.

    Strides are 1 or 2 per axis with at least one 2 per stage after the first (anisotropic ones included), kernels
    1 or 3 per axis ([1, 3, 3] included). The input is the product of the strides along each axis, doubled on the
    last axis because instance/batch norm cannot train on a single-voxel bottleneck.
    """
    dim = draw(st.sampled_from([2, 3]))
    n_stages = draw(st.integers(2, 7))
    stride_choice = st.lists(st.sampled_from([1, 2]), min_size=dim, max_size=dim).filter(lambda s: 2 in s)
    strides = [[1] * dim] + [draw(stride_choice) for _ in range(n_stages - 1)]
    kernels = [draw(st.lists(st.sampled_from([1, 3]), min_size=dim, max_size=dim)) for _ in range(n_stages)]
    input_size = [int(p) for p in np.prod(np.array(strides), axis=0)]
    input_size[-1] *= 2
    assume(np.prod(input_size) <= MAX_WORK_VOXELS // 8)
    base_features = draw(st.sampled_from([2, 4, 8]))
    conv = nn.Conv2d if dim == 2 else nn.Conv3d
    norm = draw(st.sampled_from(["instance", "batch", None]))
    norm_op = {"instance": nn.InstanceNorm2d if dim == 2 else nn.InstanceNorm3d,
               "batch": nn.BatchNorm2d if dim == 2 else nn.BatchNorm3d, None: None}[norm]
    kwargs = dict(
        input_channels=draw(st.integers(1, 2)),
        n_stages=n_stages,
        features_per_stage=[min(base_features * 2 ** s, 32) for s in range(n_stages)],
        conv_op=conv,
        kernel_sizes=kernels,
        strides=strides,
        n_conv_per_stage=draw(st.lists(st.integers(1, 2), min_size=n_stages, max_size=n_stages)),
        num_classes=draw(st.integers(1, 3)),
        n_conv_per_stage_decoder=draw(st.lists(st.integers(1, 2), min_size=n_stages - 1, max_size=n_stages - 1)),
        conv_bias=draw(st.booleans()),
        norm_op=norm_op,
        norm_op_kwargs={"eps": 1e-5, "affine": True} if norm_op else None,
        dropout_op=None,
        dropout_op_kwargs=None,
        nonlin=draw(st.sampled_from([nn.LeakyReLU, nn.ReLU])),
        nonlin_kwargs={"inplace": True},
        deep_supervision=draw(st.booleans()),
        nonlin_first=draw(st.booleans()),
    )
    return kwargs, input_size


def expected_output_sizes(kwargs: dict, input_size: List[int]) -> List[List[int]]:
    """nnU-Net's deep-supervision targets: entry i at input / prod(strides[:i + 1])."""
    cumulative = np.cumprod(np.array(kwargs["strides"]), axis=0)[:-1]
    return [[s // p for s, p in zip(input_size, stage)] for stage in cumulative]


def as_list(output) -> List[torch.Tensor]:
    return list(output) if isinstance(output, (list, tuple)) else [output]
