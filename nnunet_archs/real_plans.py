"""Network configurations copied from real nnU-Net plans files (bundled as ``data/real_plans.json``), and the
means to build any network class from them exactly as nnU-Net does (``get_network_from_plans``)."""
from __future__ import annotations

import dataclasses
import json
import pydoc
from dataclasses import dataclass
from importlib import resources
from typing import List, Optional, Sequence

import numpy as np
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
from torch import nn

from nnunet_archs.architectures.zoo import common_step, divisor, fit_patch, has_deep_supervision
from nnunet_archs.errors import UserError
from nnunet_archs.registry import ArchitectureVariant

ANISOTROPIC_3D = "ismaseptem/comp0251:config/nnUNetPlans.json#3d_fullres"


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

    def check_patch(self, patch: List[int]) -> None:
        divisor = [int(p) for p in np.prod(np.array(self.strides), axis=0)]
        if len(patch) != len(divisor) or any(p % d for p, d in zip(patch, divisor)):
            raise UserError(f"patch {patch} must have {len(divisor)} axes, each divisible by the product of the "
                             f"strides {divisor}")

    @classmethod
    def from_plans_file(cls, plans: dict, plans_id: str, configuration: str, dataset_json: dict) -> "PlansRecord":
        """One configuration of an nnU-Net plans file (inheritance resolved as nnU-Net does)."""
        from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
        manager = PlansManager(plans)
        if configuration not in manager.available_configurations:
            raise UserError(f"configuration {configuration!r} is not in the plans; choose from "
                             f"{manager.available_configurations}")
        cm = manager.get_configuration(configuration)
        return cls(id=f"{plans_id}#{configuration}", configuration=configuration, patch_size=list(cm.patch_size),
                   batch_size=cm.batch_size, num_input_channels=len(dataset_json["channel_names"]),
                   num_classes=manager.get_label_manager(dataset_json).num_segmentation_heads,
                   network_class_name=cm.network_arch_class_name, arch_kwargs=cm.network_arch_init_kwargs,
                   kw_requires_import=list(cm.network_arch_init_kwargs_req_import))

    def reduced_patch(self, bottleneck: int = 2) -> List[int]:
        """The smallest patch this topology accepts whose bottleneck is ``bottleneck`` voxels along each axis."""
        return [int(p) * bottleneck for p in np.prod(np.array(self.strides), axis=0)]

    def shared_patch(self, variants: Sequence[ArchitectureVariant], patch: Sequence[int]) -> List[int]:
        """``patch`` rounded up to what this topology and every variant built from it accept (a network with a
        down-sampling of its own, such as Swin UNETR's 5 halvings, may need larger multiples)."""
        topologies = [v.arch_kwargs(self.network_class_name, self.arch_kwargs) for v in variants]
        return [-(-int(p) // d) * d for p, d in zip(patch, common_step(self.arch_kwargs, *topologies))]

    def for_variant(self, variant: ArchitectureVariant) -> "PlansRecord":
        """This configuration as ``variant`` is built from it: its class, and its topology where it has one of its
        own (``zoo.network_topology``), with the patch rounded up to fit it."""
        arch_kwargs = variant.arch_kwargs(self.network_class_name, self.arch_kwargs)
        return dataclasses.replace(self, id=self.id, network_class_name=variant.class_path, arch_kwargs=arch_kwargs,
                                   patch_size=fit_patch(divisor(arch_kwargs), self.patch_size, up=True))

    def build(self, network_class_name: Optional[str] = None, deep_supervision: bool = False) -> nn.Module:
        """The network nnU-Net would build from this plans entry, optionally with another class swapped in
        (Residual-Encoder kwargs are converted for classes that take PlainConvUNet's keywords)."""
        class_name = network_class_name or self.network_class_name
        return self.build_variant(ArchitectureVariant(class_name, class_name, ""), deep_supervision)

    def build_variant(self, variant: ArchitectureVariant, deep_supervision: bool = False,
                      initialize: bool = True) -> nn.Module:
        """``variant`` as ``get_network_from_plans`` builds it from this entry; ``deep_supervision`` as nnU-Net's
        trainer asks for it: a network trained without (Swin UNETR) is built without."""
        network_class = pydoc.locate(variant.class_path)
        return get_network_from_plans(variant.class_path,
                                      variant.arch_kwargs(self.network_class_name, self.arch_kwargs),
                                      self.kw_requires_import, self.num_input_channels, self.num_classes,
                                      allow_init=initialize,
                                      deep_supervision=deep_supervision and has_deep_supervision(network_class))


def load_records() -> List[PlansRecord]:
    text = resources.files("nnunet_archs").joinpath("data/real_plans.json").read_text()
    return [PlansRecord(id=r["id"], configuration=r["configuration"], patch_size=r["patch_size"],
                        batch_size=r["batch_size"], num_input_channels=r["num_input_channels"],
                        num_classes=r["num_classes_hint"] or 3, network_class_name=r["network_class_name"],
                        arch_kwargs=r["arch_kwargs"], kw_requires_import=r["_kw_requires_import"])
            for r in json.loads(text)["records"]]


def find_record(record_id: str) -> PlansRecord:
    records = {r.id: r for r in load_records()}
    if record_id not in records:
        raise UserError(f"unknown built-in configuration {record_id!r}; choose from {sorted(records)}")
    return records[record_id]


def showcase_records() -> List[PlansRecord]:
    """One 2D, one isotropic 3D and one anisotropic 3D configuration (the benchmark and showcase set)."""
    return [find_record(i) for i in ("katieliuu/cs231n:nnUNetPlans.json#2d",
                                     "katieliuu/cs231n:nnUNetPlans.json#3d_fullres",
                                     ANISOTROPIC_3D)]
