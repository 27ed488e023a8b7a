"""The memory arithmetic of planning, in one place: nnU-Net's ResEnc presets, each network class's estimate per
byte, and the conversions estimate <-> GB <-> batch that the planners, ``nnUNetPlannerCustom``, the study's cost
table and the trainers' memory warning all use.

nnU-Net's planner compares ``compute_conv_feature_map_size`` of one sample (the *estimate*, in elements) with a
reference value that one network took at a known GPU memory and batch (``ExperimentPlanner.UNet_reference_val_*``,
``UNet_reference_val_corresp_GB``, ``UNet_reference_val_corresp_bs_*``). The ResEnc presets' reference values
belong to ResidualEncoderUNet; another class counts its activations in the same unit but holds another number of
bytes per counted element, so the reference values are multiplied by its measured *estimate per byte* relative to
ResidualEncoderUNet's (``benchmarks/planners.py``, ``nnunet-archs calibrate``): the planned configuration then
holds the memory ResEnc's does at the same target.
"""
from __future__ import annotations

import json
import math
from importlib import resources
from typing import Dict, Optional, Sequence, Tuple

import torch

from nnunet_archs.errors import UserError
from nnunet_archs.registry import (KIUNET, MEDNEXT, PLAIN_UNET, RESENC_UNET, SEGRESNET, SWINUNETR, UIUNET,
                                   ArchitectureVariant)

# ResEnc presets (nnunetv2 2.8.1, residual_encoder_unet_planners.py): GPU memory in GB, 3D and 2D reference values
RESENC_PRESETS: Dict[str, Tuple[float, float, float]] = {
    "M": (8, 680_000_000, 135_000_000),
    "L": (24, 2_100_000_000, 380_000_000),
    "XL": (40, 3_600_000_000, 560_000_000),
}
# the batch the reference values are for, per dimensionality (ExperimentPlanner.UNet_reference_val_corresp_bs_2d/3d)
REFERENCE_BATCH = {2: 12, 3: 2}

# the networks from MONAI: the calibration file shipped for each (nnunet_archs/data/calibrations, written by
# nnunet-archs calibrate NAME --precision autocast, the precision nnU-Net trains in; BENCHMARKS.md section 10)
SHIPPED_CALIBRATIONS = {MEDNEXT: "MedNeXt", SEGRESNET: "SegResNet", SWINUNETR: "SwinUNETR"}


def shipped_estimate_per_byte(name: str) -> float:
    text = resources.files("nnunet_archs").joinpath(f"data/calibrations/{name}.json").read_text()
    return float(json.loads(text)["fit"]["estimate_per_byte"])


# network class -> its estimate per saved byte relative to ResidualEncoderUNet's (measured, benchmarks/planners.py;
# KiU-Net's under autocast at planned sizes: 1.15-1.22 at every preset, BENCHMARKS.md section 2; UIU-Net and
# PlainConvUNet in fp32; the MONAI networks' from their shipped calibrations). PlainConvUNet is planned on the same
# budgets as the baseline of a same-memory study. Any other class gets its value from a calibration file (nnunet-archs
# calibrate, planning/custom.py).
ESTIMATE_PER_BYTE: Dict[str, float] = {KIUNET: 1.19, UIUNET: 1.08, PLAIN_UNET: 1.00, RESENC_UNET: 1.00,
                                       **{c: shipped_estimate_per_byte(n) for c, n in SHIPPED_CALIBRATIONS.items()}}

# the trainers warn when the swapped-in net needs this much more activation memory than the net the plans were
# sized for
MEMORY_WARNING_FACTOR = 1.1


def check_memory_target(gigabytes: Optional[float]) -> None:
    if gigabytes is not None and not gigabytes > 0:
        raise UserError(f"-gpu_memory_target must be > 0 (GB), got {gigabytes:g}")


def check_preset(preset: str) -> str:
    if preset not in RESENC_PRESETS:
        raise UserError(f"-preset must be one of {list(RESENC_PRESETS)}, got {preset!r}")
    return preset


def nearest_preset(gigabytes: float) -> str:
    """The ResEnc preset whose memory is nearest ``gigabytes`` in ratio (8 -> M, 24 -> L, 40 -> XL)."""
    return min(RESENC_PRESETS, key=lambda p: abs(math.log(gigabytes / RESENC_PRESETS[p][0])))


def reference_value(preset: str, dim: int, estimate_per_byte: float = 1.0) -> float:
    """The preset's reference value for a network with ``estimate_per_byte``: the estimate of
    ``REFERENCE_BATCH[dim]`` samples that fills the preset's memory."""
    _, reference_3d, reference_2d = RESENC_PRESETS[preset]
    return (reference_2d if dim == 2 else reference_3d) * estimate_per_byte


def estimated_gigabytes(estimate: float, batch: int, dim: int, estimate_per_byte: float,
                        preset: str = "M") -> float:
    """The GPU memory ``batch`` samples of ``estimate`` take on the scale of ``preset``."""
    gigabytes = RESENC_PRESETS[preset][0]
    return estimate * batch / REFERENCE_BATCH[dim] / reference_value(preset, dim, estimate_per_byte) * gigabytes


def batch_within(estimate: float, dim: int, gigabytes: float, estimate_per_byte: float, preset: str) -> int:
    """The most samples of ``estimate`` that ``gigabytes`` hold on the scale of ``preset`` (rounded down; the
    inverse of :func:`estimated_gigabytes`)."""
    budget = reference_value(preset, dim, estimate_per_byte) * (gigabytes / RESENC_PRESETS[preset][0])
    return int(budget / float(estimate) * REFERENCE_BATCH[dim])


def activation_memory_factor(configuration_manager, planned_batch_size: int, variant: ArchitectureVariant,
                             num_input_channels: int, num_output_channels: int) -> float:
    """Estimated activation memory of ``variant`` at the configuration's patch and (possibly overridden) batch
    size, relative to the network and batch size the plans were sized for (the trainers' warning)."""
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
    cm = configuration_manager
    patch: Sequence[int] = list(cm.patch_size)
    with torch.device("meta"):  # the estimates read the structure only: no parameter memory, no initialization
        planned = get_network_from_plans(cm.network_arch_class_name, cm.network_arch_init_kwargs,
                                         cm.network_arch_init_kwargs_req_import, num_input_channels,
                                         num_output_channels, allow_init=False)
        ours = get_network_from_plans(variant.class_path,
                                      variant.arch_kwargs(cm.network_arch_class_name, cm.network_arch_init_kwargs),
                                      cm.network_arch_init_kwargs_req_import, num_input_channels, num_output_channels,
                                      allow_init=False)
    return (float(ours.compute_conv_feature_map_size(patch)) * cm.batch_size
            / (float(planned.compute_conv_feature_map_size(patch)) * planned_batch_size))
