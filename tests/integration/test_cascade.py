"""Our planner's 3d_lowres -> 3d_cascade_fullres pair through the stock programs."""
from __future__ import annotations

import json

import pytest
import torch

from nnunet_archs.datasets import write_synthetic_dataset
from tests.integration.conftest import DATASET_CASCADE, assert_finite_dice

pytestmark = pytest.mark.slow(145)

# the smallest synthetic volume for which our planner, at this target, adds a 3d_lowres configuration (nnU-Net
# does once the 3d_fullres patch covers less than a quarter of the median image): patch 16x24x24, lowres image
# about 25x38x38 (measured)
CASCADE_SHAPE, CASCADE_GPU_TARGET = (32, 48, 48), "0.042"


def test_kiunet_cascade_lowres_then_fullres(nnunet):
    """Our planner's 3d_lowres -> 3d_cascade_fullres pair through the stock programs: the lowres stage, trained on
    every case (fold all), exports the next stage's inputs in its final validation; the cascade stage trains on the
    image plus the one-hot lowres segmentation; nnUNetv2_predict chains both stages."""
    write_synthetic_dataset(nnunet.raw, DATASET_CASCADE, "Cascade", shape=CASCADE_SHAPE, spacing=(1.0, 1.0, 1.0),
                            n_train=1, n_test=1)
    nnunet.run("nnunet-archs", "plan_and_preprocess", "-d", str(DATASET_CASCADE), "-pl", "nnUNetPlannerKiUNetM",
               "-gpu_memory_target", CASCADE_GPU_TARGET, "-c", "3d_lowres", "3d_fullres", "-np", "1", "--no_pbar")
    plans_name = "nnUNetKiUNetMPlans"
    configurations = json.loads(nnunet.plans_path(DATASET_CASCADE, plans_name).read_text())["configurations"]
    assert configurations["3d_lowres"]["next_stage"] == "3d_cascade_fullres"
    assert configurations["3d_cascade_fullres"] == {"inherits_from": "3d_fullres", "previous_stage": "3d_lowres"}
    for name in ("3d_lowres", "3d_fullres"):
        assert configurations[name]["architecture"]["network_class_name"] == \
            "nnunet_archs.architectures.kiunet.DynamicKiUNet"
    nnunet.train(DATASET_CASCADE, "3d_lowres", plans_name, "nnUNetTrainerBudget", fold="all")
    next_stage = nnunet.fold_folder(DATASET_CASCADE, "nnUNetTrainerBudget", plans_name, "3d_lowres", "all").parent \
        / "predicted_next_stage" / "3d_cascade_fullres"
    assert [path.stem for path in next_stage.iterdir()] == ["cascade_tr000"]  # every training case
    nnunet.train(DATASET_CASCADE, "3d_cascade_fullres", plans_name, "nnUNetTrainerBudget", fold="all")
    fold = nnunet.fold_folder(DATASET_CASCADE, "nnUNetTrainerBudget", plans_name, "3d_cascade_fullres", "all")
    weights = torch.load(fold / "checkpoint_final.pth", map_location="cpu", weights_only=False)["network_weights"]
    assert weights["encoder.stages.0.0.convs.0.conv.weight"].shape[1] == 3  # the image and two foreground labels
    lowres, fullres = nnunet.root / "cascade_lowres", nnunet.root / "cascade_fullres"
    nnunet.predict(DATASET_CASCADE, "3d_lowres", plans_name, "nnUNetTrainerBudget", lowres, fold="all")
    nnunet.predict(DATASET_CASCADE, "3d_cascade_fullres", plans_name, "nnUNetTrainerBudget", fullres, fold="all",
                   extra=["-prev_stage_predictions", str(lowres)])
    assert_finite_dice(nnunet.evaluate(DATASET_CASCADE, fullres))
