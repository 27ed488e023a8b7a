"""Network configurations copied from real nnU-Net plans files (bundled as ``data/real_plans.json``), and the
means to build any network class from them exactly as nnU-Net does (``get_network_from_plans``)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import List, Optional

import numpy as np
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
from torch import nn

from nnunet_archs.registry import ArchitectureVariant



@dataclass
class PlansRecord:
    id: str
    configuration: str
    patch_size: List[int]
    batch_size: int
    num_input_channels: int
    num_classes: int
    network_class_name: str
    arch_kwargs: dict
    kw_requires_import: List[str]

    @property
    def strides(self) -> List[List[int]]:
        return self.arch_kwargs["strides"]

    def reduced_patch(self, bottleneck: int = 2) -> List[int]:
        """The smallest patch this topology accepts whose bottleneck is ``bottleneck`` voxels along each axis."""
        return [int(p) * bottleneck for p in np.prod(np.array(self.strides), axis=0)]

    def build(self, network_class_name: Optional[str] = None, deep_supervision: bool = False) -> nn.Module:
        """The network nnU-Net would build from this plans entry, optionally with another class swapped in
        (Residual-Encoder kwargs are converted for classes that take PlainConvUNet's keywords)."""
        class_name = network_class_name or self.network_class_name
        return self.build_variant(ArchitectureVariant(class_name, class_name, ""), deep_supervision)

    def build_variant(self, variant: ArchitectureVariant, deep_supervision: bool = False) -> nn.Module:
        return get_network_from_plans(variant.class_path,
                                      variant.arch_kwargs(self.network_class_name, self.arch_kwargs),
                                      self.kw_requires_import, self.num_input_channels, self.num_classes,
                                      allow_init=True, deep_supervision=deep_supervision)


def load_records() -> List[PlansRecord]:
    text = resources.files("nnunet_archs").joinpath("data/real_plans.json").read_text()
    return [PlansRecord(id=r["id"], configuration=r["configuration"], patch_size=r["patch_size"],
                        batch_size=r["batch_size"], num_input_channels=r["num_input_channels"],
                        num_classes=r["num_classes_hint"] or 3, network_class_name=r["network_class_name"],
                        arch_kwargs=r["arch_kwargs"], kw_requires_import=r["_kw_requires_import"])
            for r in json.loads(text)["records"]]


def showcase_records() -> List[PlansRecord]:
    """One 2D, one isotropic 3D and one anisotropic 3D configuration (the benchmark and showcase set)."""
    by_id = {r.id: r for r in load_records()}
    return [by_id[i] for i in ("katieliuu/cs231n:nnUNetPlans.json#2d",
                               "katieliuu/cs231n:nnUNetPlans.json#3d_fullres",
                               "ismaseptem/comp0251:config/nnUNetPlans.json#3d_fullres")]
