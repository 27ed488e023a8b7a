"""Our planners size patch and batch like nnU-Net's presets: more GPU memory never buys a smaller
patch x batch, and the chosen configuration's estimate stays within the target. All plannings run in the test
process (tests/integration/plan_in_process.py)."""
from __future__ import annotations


import numpy as np
import pytest
import torch
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

from nnunet_archs.planning.planners import PLANNERS
from tests.integration.conftest import DATASET_3D, DATASET_LARGE, claim_large_images
from tests.integration.plan_in_process import plan_all

pytestmark = pytest.mark.slow(35)

TARGETS_GB = [2, 6, 16]
ARCHITECTURES = ["KiUNet", "UIUNet"]


def estimate_of(configuration: dict) -> float:
    """The planner's estimate for one planned configuration's patch (one sample)."""
    entry = configuration["architecture"]
    with torch.device("meta"):  # the estimate reads the structure only
        net = get_network_from_plans(entry["network_class_name"], entry["arch_kwargs"],
                                     entry["_kw_requires_import"], 1, 3, allow_init=False)
    return float(net.compute_conv_feature_map_size(configuration["patch_size"]))


@pytest.fixture(scope="module")
def planned(nnunet, fingerprint_3d) -> dict:
    """(architecture, target) -> the 3d_fullres configuration planned for the 3D dataset claiming large
    anisotropic images."""
    dataset = claim_large_images(nnunet, DATASET_3D, DATASET_LARGE, [96, 320, 320], [2.5, 0.8, 0.8])
    keys = [(architecture, target) for architecture in ARCHITECTURES for target in TARGETS_GB]
    specs = [{"d": dataset, "pl": f"nnUNetPlanner{architecture}M", "gpu_memory_target": target}
             for architecture, target in keys]
    plans = plan_all(nnunet, specs)
    return {key: plan["3d_fullres"] for key, plan in zip(keys, plans)}


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_more_memory_never_shrinks_the_configuration(planned, architecture):
    planner = PLANNERS[f"nnUNetPlanner{architecture}M"]
    sizes = []
    for target in TARGETS_GB:
        configuration = planned[architecture, target]
        patch, batch = configuration["patch_size"], configuration["batch_size"]
        estimate = estimate_of(configuration)
        reference = planner.reference_3d * planner.estimate_per_byte * target / planner.preset_gb
        # the batch is rounded down (nnU-Net rounds to nearest), so the estimate stays within the target
        assert estimate * batch / 2 <= reference, (target, patch, batch)
        sizes.append(int(np.prod(patch)) * batch)
    assert sizes == sorted(sizes), sizes
    assert sizes[-1] > sizes[0]


def test_a_whole_image_patch_gets_no_sample_the_target_cannot_hold(nnunet, planned):  # planned: the dataset
    """Once the patch is the whole image, nnU-Net's ``round(reference / estimate * 2)`` can add a sample beyond
    the target (3 samples where 2.7 fit); our planners round down."""
    planner = PLANNERS["nnUNetPlannerKiUNetM"]
    whole = plan_all(nnunet, [{"d": DATASET_LARGE, "pl": planner.__name__, "gpu_memory_target": 1000}])[0]
    estimate = estimate_of(whole["3d_fullres"])
    target = planner.preset_gb * 1.35 * estimate / (planner.reference_3d * planner.estimate_per_byte)
    configuration = plan_all(nnunet, [{"d": DATASET_LARGE, "pl": planner.__name__,
                                       "gpu_memory_target": target}])[0]["3d_fullres"]
    assert configuration["patch_size"] == whole["3d_fullres"]["patch_size"]
    assert configuration["batch_size"] == 2
