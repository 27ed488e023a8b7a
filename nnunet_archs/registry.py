"""Every network nnunet-archs can build, by name: variants are data (class path + keyword overrides), declared
once here and used by the showcase, the benchmarks and the command line."""
from __future__ import annotations

import pydoc
from dataclasses import dataclass, field
from typing import Dict

from nnunet_archs.architectures.config import (plain_kwargs_from_plans, resenc_kwargs_from_plans,
                                               takes_residual_blocks)
from nnunet_archs.architectures.zoo import has_deep_supervision, network_topology
from nnunet_archs.errors import UserError
from nnunet_archs.training.environment import seeded_trainer_name


@dataclass(frozen=True)
class ArchitectureVariant:
    """A named network: a class, keyword overrides and a width factor applied to a plans configuration."""

    name: str
    class_path: str
    description: str
    kwargs: dict = field(default_factory=dict)
    feature_scale: float = 1.0

    def arch_kwargs(self, plans_class_path: str, plans_arch_kwargs: dict) -> dict:
        """The ``arch_kwargs`` for this variant, derived from a plans entry made for ``plans_class_path`` (for a
        network with a topology of its own, MedNeXt's, SegResNetDS's or SwinUNETR's, in that topology)."""
        kwargs = dict(plans_arch_kwargs)
        network_class = pydoc.locate(self.class_path)
        if takes_residual_blocks(network_class):
            kwargs = resenc_kwargs_from_plans(kwargs)
        elif self.class_path != plans_class_path:
            kwargs = plain_kwargs_from_plans(kwargs)
        if self.feature_scale != 1.0:
            kwargs["features_per_stage"] = [max(1, round(f * self.feature_scale))
                                            for f in kwargs["features_per_stage"]]
        kwargs.update(self.kwargs)
        return network_topology(network_class, kwargs)


PLAIN_UNET = "dynamic_network_architectures.architectures.unet.PlainConvUNet"
RESENC_UNET = "dynamic_network_architectures.architectures.unet.ResidualEncoderUNet"
KIUNET = "nnunet_archs.architectures.kiunet.DynamicKiUNet"
UIUNET = "nnunet_archs.architectures.uiunet.DynamicUIUNet3D"
MEDNEXT = "nnunet_archs.architectures.mednext.DynamicMedNeXt"
SEGRESNET = "nnunet_archs.architectures.segresnet.DynamicSegResNetDS"
SWINUNETR = "nnunet_archs.architectures.swinunetr.DynamicSwinUNETR"

VARIANTS: Dict[str, ArchitectureVariant] = {v.name: v for v in [
    ArchitectureVariant("PlainConvUNet", PLAIN_UNET, "nnU-Net's default U-Net (reference)"),
    ArchitectureVariant("ResEncUNet", RESENC_UNET, "nnU-Net's Residual-Encoder U-Net as the M/L/XL presets build "
                        "it (the presets differ in patch and batch, not in the network)"),
    ArchitectureVariant("KiUNet", KIUNET, "DynamicKiUNet, default Ki branch (3 stages, upsampling cap 2)"),
    ArchitectureVariant("KiUNet-maxpool", KIUNET, "DynamicKiUNet with max-pool downsampling (as the original, "
                        "though before each stage's convs)", {"pool_type": "max"}),
    ArchitectureVariant("KiUNet-minimal", KIUNET, "DynamicKiUNet, the fork aymuos15/nnUNet's minimal: 50% features, "
                        "strided conv",
                        feature_scale=0.5),
    ArchitectureVariant("KiUNet-uncapped", KIUNET, "DynamicKiUNet, its 3 Ki stages mirror every stride (1x, 2x, "
                        "4x; the original's 8x is KiUNet-original)", {"ki_max_scale": None}),
    ArchitectureVariant("KiUNet-original", KIUNET, "DynamicKiUNet closest to the published net: Ki branch at 2x, "
                        "4x, 8x over the first three downsamplings at the U-Net's widths, 3x3 CRFBs at the Ki "
                        "resolution, feature-add fusion, max-pool U-Net (README: departures)", {
                            "pool_type": "max", "ki_num_stages": 4, "ki_max_scale": None,
                            "ki_features_per_stage": "unet", "crfb_kernel_size": 3, "crfb_resolution": "source",
                            "skip_placement": "after", "fusion": "feature_add"}),
    ArchitectureVariant("KiUNet-checkpoint", KIUNET, "DynamicKiUNet recomputing every stage in backward "
                        "(activation checkpointing: less memory, larger planned patches, more step time)",
                        {"checkpoint": "stages"}),
    ArchitectureVariant("UIUNet", UIUNET, "DynamicUIUNet3D, full (RSU heights 7,6,5,4,..., IC-A)"),
    ArchitectureVariant("UIUNet-minimal", UIUNET, "DynamicUIUNet3D, the fork aymuos15/nnUNet's minimal: 50% "
                        "features, RSU heights 5,4,3,...", {"rsu_max_height": 5, "rsu_min_height": 3},
                        feature_scale=0.5),
    ArchitectureVariant("UIUNet-original", UIUNET, "DynamicUIUNet3D closest to the published net: RSU heights "
                        "7,6,5,4,4F,4F, dilations 1,2,4,8, the original's inner widths (1/2 or 1/4 of each "
                        "stage's) (README: departures)",
                        {"mid_ratio": "original"}),
    ArchitectureVariant("UIUNet-checkpoint", UIUNET, "DynamicUIUNet3D recomputing every stage in backward "
                        "(activation checkpointing: less memory, larger planned patches, more step time)",
                        {"checkpoint": "stages"}),
    # the networks nnU-Net Revisited (Isensee et al., MICCAI 2024) compared against, from MONAI (needs monai>=1.5)
    ArchitectureVariant("MedNeXt", MEDNEXT, "MedNeXt-L k3 (Roy et al. 2023; MONAI's blocks), as nnU-Net Revisited "
                        "benchmarked it: up to 5 stages, each halving every axis"),
    ArchitectureVariant("MedNeXt-S", MEDNEXT, "MedNeXt-S k3 (expansion 2, 2 blocks per stage)", {"size": "S"}),
    ArchitectureVariant("MedNeXt-B", MEDNEXT, "MedNeXt-B k3 (expansion 2-4, 2 blocks per stage)", {"size": "B"}),
    ArchitectureVariant("MedNeXt-M", MEDNEXT, "MedNeXt-M k3 (expansion 2-4, 3-4 blocks per stage)", {"size": "M"}),
    ArchitectureVariant("MedNeXt-k5", MEDNEXT, "MedNeXt-L k5, trained from scratch (the paper's UpKern "
                        "initialisation from k3 is not done)", {"kernel_size": 5}),
    ArchitectureVariant("SegResNet", SEGRESNET, "SegResNetDS (Myronenko 2018; MONAI Auto3DSeg's): residual "
                        "encoder 1,2,2,4,4 blocks, per-axis strides, a deep-supervision head per decoder level"),
    ArchitectureVariant("SwinUNETR", SWINUNETR, "Swin UNETR (Hatamizadeh et al. 2022; MONAI's), feature size 48: "
                        "5 fixed halvings, no deep supervision (trains with nnUNetTrainerNoDeepSupervision)"),
]}


def get_variant(name: str) -> ArchitectureVariant:
    if name not in VARIANTS:
        raise UserError(f"unknown architecture {name!r}; choose from {sorted(VARIANTS)}")
    return VARIANTS[name]


def study_trainer_name(architecture: str, seed: int) -> str:
    """The trainer a study trains ``architecture`` (a registry name or an import path) with for training seed
    ``seed``: ``nnUNetTrainerBudget_seed<S>``, or for a network trained without deep supervision (Swin UNETR)
    ``nnUNetTrainerBudgetNoDeepSupervision_seed<S>``, whose loss takes the single output it returns. A class that
    cannot be imported here (a finished study read elsewhere) is taken to train with it, as nnU-Net's default."""
    network_class = pydoc.locate(VARIANTS[architecture].class_path if architecture in VARIANTS else architecture)
    return seeded_trainer_name(seed, network_class is None or has_deep_supervision(network_class))
