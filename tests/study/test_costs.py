"""The footing columns of a study (study.costs): every registry network is built and its FLOPs counted on the
meta device, from plans as nnU-Net stores them."""
from __future__ import annotations

import pytest

from nnunet_archs.real_plans import find_record
from nnunet_archs.registry import VARIANTS
from nnunet_archs.study.costs import closest_preset, plan_costs

RECORD = find_record("katieliuu/cs231n:nnUNetPlans.json#3d_fullres")


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_every_variant_is_costed_on_the_meta_device(name: str):
    variant = VARIANTS[name]
    patch = RECORD.reduced_patch(2)
    plans = {"configurations": {"3d_fullres": {"patch_size": patch, "batch_size": 2, "architecture": {
        "network_class_name": variant.class_path,
        "arch_kwargs": variant.arch_kwargs(RECORD.network_class_name, RECORD.arch_kwargs),
        "_kw_requires_import": RECORD.kw_requires_import}}}}
    costs = plan_costs(plans, "3d_fullres", RECORD.num_input_channels, RECORD.num_classes)
    assert costs["class"] == variant.class_path and costs["patch"] == patch and costs["batch"] == 2
    assert costs["params"] > 0 and costs["gflops_per_patch"] > 0 and costs["estimated_gb"] > 0
    assert costs["closest_preset"] == closest_preset(costs["estimated_gb"])
