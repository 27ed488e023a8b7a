"""Our planners size patch and batch like nnU-Net's presets: more GPU memory never buys a smaller
patch x batch, and the chosen configuration's estimate stays within the target."""
from __future__ import annotations

import json

import numpy as np
import pytest
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

from nnunet_archs.planning.planners import PLANNERS
from tests.integration.conftest import DATASET_3D, DATASET_LARGE, claim_large_images

TARGETS_GB = [2, 6, 16]


@pytest.fixture(scope="module")
def large_dataset(nnunet, kiunet_plans) -> int:
    """Dataset 503: the 3D dataset claiming large anisotropic images."""
    return claim_large_images(nnunet, DATASET_3D, DATASET_LARGE, [96, 320, 320], [2.5, 0.8, 0.8])


@pytest.mark.parametrize("architecture", ["KiUNet", "UIUNet"])
def test_more_memory_never_shrinks_the_configuration(nnunet, large_dataset, architecture):
    planner = PLANNERS[f"nnUNetPlanner{architecture}M"]
    sizes = []
    for target in TARGETS_GB:
        plans_name = f"{architecture}_{target}GB"
        nnunet.run("nnunet-archs", "plan_experiment", "-d", str(large_dataset), "-pl", planner.__name__,
                   "-gpu_memory_target", str(target), "-overwrite_plans_name", plans_name)
        configuration = json.loads(nnunet.plans_path(large_dataset, plans_name).read_text())["configurations"][
            "3d_fullres"]
        patch, batch = configuration["patch_size"], configuration["batch_size"]
        architecture_entry = configuration["architecture"]
        net = get_network_from_plans(architecture_entry["network_class_name"], architecture_entry["arch_kwargs"],
                                     architecture_entry["_kw_requires_import"], 1, 3, allow_init=False)
        estimate = float(net.compute_conv_feature_map_size(patch))
        reference = planner.reference_3d * target / planner.preset_gb
        # nnU-Net's rule: batch = round(reference / estimate * 2), so within rounding of the target
        assert estimate * batch / 2 <= reference * (1 + 0.5 / batch), (target, patch, batch)
        sizes.append(int(np.prod(patch)) * batch)
    assert sizes == sorted(sizes), sizes
    assert sizes[-1] > sizes[0]
