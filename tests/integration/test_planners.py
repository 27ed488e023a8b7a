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
        entry = configuration["architecture"]
        with torch.device("meta"):  # the estimate reads the structure only
            net = get_network_from_plans(entry["network_class_name"], entry["arch_kwargs"],
                                         entry["_kw_requires_import"], 1, 3, allow_init=False)
        estimate = float(net.compute_conv_feature_map_size(patch))
        reference = planner.reference_3d * planner.estimate_per_byte * target / planner.preset_gb
        # nnU-Net's rule: batch = round(reference / estimate * 2), so within rounding of the target
        assert estimate * batch / 2 <= reference * (1 + 0.5 / batch), (target, patch, batch)
        sizes.append(int(np.prod(patch)) * batch)
    assert sizes == sorted(sizes), sizes
    assert sizes[-1] > sizes[0]
