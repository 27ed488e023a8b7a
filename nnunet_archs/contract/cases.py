"""The configurations a network is checked on: real ones from public nnU-Net plans files (2D, isotropic and
anisotropic 3D) and random valid ones, drawn by hypothesis from the same generator the test suite's property
tests use (``unet_kwargs``)."""
from __future__ import annotations

import dataclasses
import pydoc
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st
from torch import nn

from nnunet_archs.architectures.zoo import divisor, fit_patch
from nnunet_archs.real_plans import PlansRecord, showcase_records
from nnunet_archs.registry import PLAIN_UNET, ArchitectureVariant

# Bound on input voxels times the Ki branch's upsampling, so that 200 random nets run in about a minute.
MAX_WORK_VOXELS = 2 ** 17
# the keywords whose plans values are import paths (nnU-Net's _kw_requires_import)
CLASS_KEYWORDS = ("conv_op", "norm_op", "dropout_op", "nonlin")


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


def expected_output_sizes(kwargs: dict, input_size: Sequence[int]) -> List[List[int]]:
    """nnU-Net's deep-supervision targets: entry i at input / prod(strides[:i + 1])."""
    cumulative = np.cumprod(np.array(kwargs["strides"]), axis=0)[:-1]
    return [[int(s) // int(p) for s, p in zip(input_size, stage)] for stage in cumulative]


def as_list(output) -> List[torch.Tensor]:
    return list(output) if isinstance(output, (list, tuple)) else [output]


@dataclass(frozen=True)
class NetworkCase:
    """One configuration to check a network on: a plans entry (as nnU-Net stores it) and an input patch."""

    name: str
    record: PlansRecord
    patch: Tuple[int, ...]

    @property
    def dim(self) -> int:
        return len(self.patch)

    def build(self, variant: ArchitectureVariant, deep_supervision: bool, input_channels: Optional[int] = None,
              num_classes: Optional[int] = None, initialize: bool = True) -> nn.Module:
        """The network nnU-Net's ``get_network_from_plans`` builds for ``variant`` from this entry."""
        record = dataclasses.replace(self.record, num_input_channels=input_channels or self.record.num_input_channels,
                                     num_classes=num_classes or self.record.num_classes)
        return record.build_variant(variant, deep_supervision, initialize)

    def input(self, batch: int = 2, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        return torch.randn(batch, self.record.num_input_channels, *self.patch, generator=generator)

    def expected_output_sizes(self) -> List[List[int]]:
        return expected_output_sizes(self.record.arch_kwargs, self.patch)

    def for_variant(self, variant: ArchitectureVariant) -> "NetworkCase":
        """This configuration as our planners plan it for ``variant``: a network with a down-sampling of its own
        (MedNeXt, SegResNetDS, Swin UNETR; ``zoo.network_topology``) gets its topology and a patch it accepts."""
        if not hasattr(pydoc.locate(variant.class_path), "plans_topology"):
            return self
        record = self.record.for_variant(variant)
        return NetworkCase(self.name, record, tuple(fit_patch(divisor(record.arch_kwargs), self.patch, up=True)))


def plans_cases(records: Optional[Sequence[PlansRecord]] = None) -> List[NetworkCase]:
    """Real configurations (by default 2D, isotropic and anisotropic 3D) at the smallest patch their topology
    trains on: one bottleneck voxel per axis, two along the last (norm layers need more than one voxel)."""
    cases = []
    for record in records or showcase_records():
        patch = record.reduced_patch(bottleneck=1)
        patch[-1] *= 2
        cases.append(NetworkCase(record.id, record, tuple(patch)))
    return cases


def case_from_kwargs(name: str, kwargs: dict, input_size: Sequence[int]) -> NetworkCase:
    """A ``unet_kwargs`` example as the plans entry nnU-Net would store (classes as import paths, only the
    keywords nnU-Net's planner writes)."""
    arch_kwargs = {k: v for k, v in kwargs.items()
                   if k not in ("input_channels", "num_classes", "deep_supervision", "nonlin_first")}
    for key in CLASS_KEYWORDS:
        if arch_kwargs[key] is not None:
            arch_kwargs[key] = f"{arch_kwargs[key].__module__}.{arch_kwargs[key].__qualname__}"
    record = PlansRecord(id=name, configuration=f"{len(input_size)}d", patch_size=list(input_size), batch_size=2,
                         num_input_channels=kwargs["input_channels"], num_classes=kwargs["num_classes"],
                         network_class_name=PLAIN_UNET, arch_kwargs=arch_kwargs,
                         kw_requires_import=list(CLASS_KEYWORDS))
    return NetworkCase(name, record, tuple(input_size))


def random_cases(count: int) -> List[NetworkCase]:
    """``count`` random valid configurations, the same ones on every run (hypothesis, derandomized)."""
    examples = []

    @settings(max_examples=count, derandomize=True, database=None, phases=[Phase.generate], deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(unet_kwargs().filter(lambda example: example[0]["norm_op"] is not None))  # nnU-Net always plans one
    def collect(example):
        examples.append(example)

    if count > 0:
        collect()
    return [case_from_kwargs(f"random #{i + 1}", kwargs, size) for i, (kwargs, size) in enumerate(examples[:count])]
