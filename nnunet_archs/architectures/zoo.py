"""What the networks users compare against (MONAI's MedNeXt, SegResNetDS and SwinUNETR, ``mednext.py``,
``segresnet.py``, ``swinunetr.py``) share as nnU-Net architectures.

- **The MONAI release.** MONAI's MedNeXt blocks and a SwinUNETR without ``img_size`` arrived in MONAI 1.5.0, which
  needs torch >= 2.4.1; nnU-Net (and our requirement, monai >= 1.3.2) accepts torch 2.1.2. So the zoo networks are
  optional: with an older MONAI they refuse to build, naming the release they need (``require_monai``).
- **Their topology.** nnU-Net's planner picks strides, stage count and widths for its U-Net; a zoo network
  down-samples as it was designed to. ``plans_topology(arch_kwargs)`` (a classmethod of each) turns nnU-Net's
  keywords into the network's own (the same keyword set, so the plans file describes the network that is built),
  and ``fit_patch`` rounds a patch to what that topology accepts. The planners, the contract suite, ``calibrate``
  and ``profile`` all go through ``network_topology``/``fit_patch``; the constructors refuse plans whose
  strides the network cannot follow.
- **Their memory estimate.** ``compute_conv_feature_map_size`` counts, on the meta device (no memory, no
  compute), the elements of the tensors autograd keeps in one training forward of one sample, halved: nnU-Net's
  unit is one conv block output, behind which PlainConvUNet keeps two maps (``blocks.single_map``). Counting
  rather than summing by hand follows attention windows, expansion layers and MONAI's own releases exactly.
"""
from __future__ import annotations

import re
from importlib import metadata
from typing import List, Sequence

import numpy as np
import torch
from dynamic_network_architectures.architectures.abstract_arch import AbstractDynamicNetworkArchitectures
from torch import nn
from torch.overrides import TorchFunctionMode

from nnunet_archs.architectures.config import resolve_class
from nnunet_archs.errors import UserError
from nnunet_archs.profiling import saved_activation_bytes

MONAI_MINIMUM = (1, 5)  # MedNeXt's blocks and SwinUNETR without img_size (MONAI 1.5.0, torch >= 2.4.1)


def monai_version() -> str:
    try:
        return metadata.version("monai")
    except metadata.PackageNotFoundError:
        return "not installed"


def require_monai(network: str) -> None:
    """Refuse to build ``network`` with a MONAI older than it needs, naming the release and the install line."""
    installed = monai_version()
    release = tuple(int(part) for part in re.findall(r"\d+", installed)[:2])
    if release < MONAI_MINIMUM:
        needed = ".".join(map(str, MONAI_MINIMUM))
        raise UserError(f"{network} needs monai>={needed} (MONAI's MedNeXt blocks and SwinUNETR without img_size "
                        f"arrived in {needed}.0, which needs torch>=2.4.1); installed: monai {installed}. Install "
                        f"with: pip install 'monai>={needed}' (or nnunet-archs[zoo])")


class LinspaceInNumpy(TorchFunctionMode):
    """``torch.linspace`` answered by numpy while a network is built: MONAI's SwinTransformer reads its drop-path
    rates with ``.item()`` from it, which neither the meta device nor FakeTensors (on which planning, the checks
    and the calibration build networks) can answer; numpy's values answer ``.item()`` alike."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is torch.linspace:
            bounds = {**dict(zip(("start", "end", "steps"), args)), **(kwargs or {})}
            return np.linspace(float(bounds["start"]), float(bounds["end"]), int(bounds["steps"]))
        return func(*args, **(kwargs or {}))


def halvings(n_stages: int, dim: int) -> List[List[int]]:
    """Strides of a network that halves every axis at every stage after the first."""
    return [[1] * dim] + [[2] * dim for _ in range(n_stages - 1)]


def doubling(first: int, n_stages: int) -> List[int]:
    """Widths that double at every stage, without nnU-Net's cap (320 in 3D, 512 in 2D)."""
    return [int(first) * 2 ** s for s in range(n_stages)]


def conv_dimension(conv_op) -> int:
    """2 or 3, from a plans ``conv_op`` (a class or its import path)."""
    conv_op = resolve_class("conv_op", conv_op)
    if conv_op not in (nn.Conv2d, nn.Conv3d):
        raise UserError(f"conv_op must be torch.nn.Conv2d or torch.nn.Conv3d, got {conv_op!r}")
    return 2 if conv_op is nn.Conv2d else 3


def with_stages(arch_kwargs: dict, n_stages: int) -> dict:
    """nnU-Net's keywords for ``n_stages`` stages: its first ones, or its last one repeated (for a network that is
    shallower or deeper than the U-Net nnU-Net planned)."""
    kwargs = dict(arch_kwargs, n_stages=n_stages)
    for key, length in (("features_per_stage", n_stages), ("kernel_sizes", n_stages), ("strides", n_stages),
                        ("n_conv_per_stage", n_stages), ("n_conv_per_stage_decoder", n_stages - 1)):
        value = kwargs.get(key)
        if isinstance(value, (list, tuple)):  # nnU-Net's default of 2 convs where it planned no decoder stage
            kwargs[key] = [value[min(i, len(value) - 1)] if value else 2 for i in range(length)]
    return kwargs


def network_topology(network_class: type, arch_kwargs: dict) -> dict:
    """``arch_kwargs`` as ``network_class`` down-samples (its ``plans_topology``); unchanged for other classes."""
    adapt = getattr(network_class, "plans_topology", None)
    return adapt(arch_kwargs) if adapt is not None else dict(arch_kwargs)


def divisor(arch_kwargs: dict) -> List[int]:
    """What every patch axis must be a multiple of: the product of the strides along it."""
    return [int(d) for d in np.prod(np.array(arch_kwargs["strides"]), axis=0)]


def fit_patch(step: Sequence[int], patch: Sequence[int], up: bool = False) -> List[int]:
    """``patch`` rounded to multiples of ``step`` along each axis (down, or with ``up`` up), at least one multiple
    per axis, and two along the largest axis where every axis would have a single bottleneck voxel (instance and
    group norm cannot train on one voxel)."""
    multiples = [max(1, -(-int(p) // d) if up else int(p) // d) for p, d in zip(patch, step)]
    if all(m == 1 for m in multiples):
        multiples[int(np.argmax(np.array(patch, dtype=float) / np.array(step)))] = 2
    return [m * int(d) for m, d in zip(multiples, step)]


def smallest_patch(arch_kwargs: dict) -> List[int]:
    """The smallest patch a topology trains on (``fit_patch`` of one stride product per axis)."""
    step = divisor(arch_kwargs)
    return fit_patch(step, step)


def common_step(*arch_kwargs: dict) -> List[int]:
    """The smallest step that every topology's patch divisor divides (one patch for several networks)."""
    return [int(np.lcm.reduce(axis)) for axis in zip(*(divisor(k) for k in arch_kwargs))]


class ZooDecoder(nn.Module):
    """The decoder's place in nnU-Net's contract: ``deep_supervision`` (nnU-Net's trainer sets
    ``network.decoder.deep_supervision``; forward reads it, whatever the training mode, since nnU-Net validates
    in eval mode with it on) and ``seg_layers`` (every layer whose shape depends on the classes, which
    ``-pretrained_weights`` skips). A network its authors trained without deep supervision is refused it when
    built; its decoder keeps the flag nnU-Net's trainer sets (nnUNetTrainer sets it back on after the final
    validation, nnUNetTrainerNoDeepSupervision too) and returns its one output whatever it says."""

    def __init__(self, deep_supervision: bool):
        super().__init__()
        self.deep_supervision = bool(deep_supervision)


class AddedSkipDecoder(ZooDecoder):
    """Decoder levels, deepest first, each up-sampling, adding the encoder's skip (not concatenating it, as MedNeXt
    and SegResNet do), running its blocks and, with deep supervision or at full resolution, its head. Subclasses
    build ``ups``, ``stages`` and ``seg_layers`` in that order."""

    ups: nn.ModuleList
    stages: nn.ModuleList
    seg_layers: nn.ModuleList

    def forward(self, skips: List[torch.Tensor]):
        x, outputs = skips[-1], []
        for i, (up, stage) in enumerate(zip(self.ups, self.stages)):
            x = stage(up(x) + skips[-(i + 2)])
            if self.deep_supervision or i == len(self.stages) - 1:
                outputs.append(self.seg_layers[i](x))
        return outputs[::-1] if self.deep_supervision else outputs[0]


def no_deep_supervision_message(network: str) -> str:
    return (f"{network} has no deep supervision (its authors trained it without; nnU-Net's DS loss would need "
            f"invented side outputs): train it with -tr nnUNetTrainerNoDeepSupervision, or "
            f"nnUNetTrainerBudgetNoDeepSupervision (nnunet-archs compare picks it by itself)")


def has_deep_supervision(network_class: type) -> bool:
    """Whether nnU-Net's deep-supervision loss applies to ``network_class`` (every class but those whose
    ``supports_deep_supervision`` is False)."""
    return bool(getattr(network_class, "supports_deep_supervision", True))


class ZooNetwork(AbstractDynamicNetworkArchitectures):
    """Base of the zoo adapters: remembers its keywords (to rebuild itself on the meta device for the estimate)
    and counts its activation memory."""

    supports_deep_supervision = True

    def __init__(self, init_kwargs: dict):
        super().__init__()
        self.init_kwargs = dict(init_kwargs)
        self._meta: dict = {}  # the meta-device twin the estimate runs, once built

    def compute_conv_feature_map_size(self, input_size: Sequence[int]) -> np.int64:
        """Half the elements autograd keeps in one training forward of one sample at ``input_size`` (float32, with
        deep supervision where the network trains with it), counted on the meta device: PlainConvUNet's unit."""
        net = self if next(self.parameters()).is_meta else self._meta_twin()
        training, deep_supervision = net.training, net.decoder.deep_supervision
        net.decoder.deep_supervision = self.supports_deep_supervision
        x = torch.empty(1, self.init_kwargs["input_channels"], *[int(s) for s in input_size], device="meta")
        try:
            saved = saved_activation_bytes(net, x)  # in training mode
        finally:
            net.train(training)
            net.decoder.deep_supervision = deep_supervision
        return np.int64(saved // 8)  # 4 bytes per float32 element, 2 elements per unit

    def _meta_twin(self) -> nn.Module:
        """This network built again on the meta device (once; kept outside the module tree, so that it is in no
        state dict)."""
        if "twin" not in self._meta:
            with torch.device("meta"):
                self._meta["twin"] = type(self)(**self.init_kwargs)
        return self._meta["twin"]


def check_input(x: torch.Tensor, dim: int, input_channels: int, step: Sequence[int], network: str) -> None:
    """A readable refusal of an input the network cannot take, before any layer runs (plain ints: no graph
    break under torch.compile)."""
    if x.dim() != dim + 2 or x.shape[1] != input_channels:
        raise UserError(f"{network} input must have shape (batch, {input_channels}, *{dim} spatial axes), got "
                        f"{tuple(x.shape)}")
    if any(int(size) % d for size, d in zip(x.shape[2:], step)):
        raise UserError(f"{network} input spatial size {tuple(x.shape[2:])} must be a multiple of {tuple(step)} "
                        f"along each axis (its down-sampling; nnU-Net's plans from our planners guarantee it)")


def refuse_topology(network: str, key: str, found, expected, why: str) -> None:
    """The plans' ``key`` must be the network's own (its down-sampling, widths or kernels)."""
    if found != expected:
        raise UserError(f"{network} cannot follow these plans: {key} is {found}, it needs {expected} ({why}); plan "
                        f"for it with nnunet-archs plan_experiment -pl nnUNetPlanner{network}M (or L/XL)")
