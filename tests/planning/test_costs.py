"""The footing columns of a study (planning.costs): every registry network is built and its FLOPs counted on the
meta device, from plans as nnU-Net stores them."""
from __future__ import annotations

import pytest

from nnunet_archs.real_plans import find_record
from nnunet_archs.registry import VARIANTS
from nnunet_archs.planning.costs import plan_costs
from nnunet_archs.planning.memory import nearest_preset

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
    assert costs["closest_preset"] == nearest_preset(costs["estimated_gb"])


@pytest.mark.parametrize("record_id, reference_batch, reference", [
    ("katieliuu/cs231n:nnUNetPlans.json#2d", 12, 135_000_000), ("katieliuu/cs231n:nnUNetPlans.json#3d_fullres", 2,
                                                                680_000_000)])
def test_estimated_memory_is_on_the_reference_of_its_dimensionality(record_id, reference_batch, reference):
    """nnU-Net's reference values hold for batch 12 in 2D and 2 in 3D: a plan whose estimate at its batch equals
    the M reference uses the M preset's 8 GB."""
    record = find_record(record_id)
    patch = record.reduced_patch(2)
    plans = {"configurations": {"c": {"patch_size": patch, "batch_size": reference_batch, "architecture": {
        "network_class_name": record.network_class_name, "arch_kwargs": record.arch_kwargs,
        "_kw_requires_import": record.kw_requires_import}}}}
    costs = plan_costs(plans, "c", record.num_input_channels, record.num_classes)
    assert costs["estimated_gb"] == pytest.approx(8 * costs["estimate_per_sample"] / reference)
