"""UIU-Net end to end on the 2D dataset: nnunet-archs plan_and_preprocess with our planner, stock
nnUNetv2_train, nnUNetv2_predict with nnU-Net's default test-time mirroring, nnUNetv2_evaluate_folder."""
from __future__ import annotations

import json

import pytest
import torch

from nnunet_archs.training.trainers import EPOCH_LOG
from tests.integration.conftest import DATASET_2D, TINY_GPU_TARGET, assert_finite_dice

pytestmark = pytest.mark.slow(65)


def test_uiunet_plans_train_predict_evaluate_2d(nnunet):
    nnunet.run("nnunet-archs", "plan_and_preprocess", "-d", str(DATASET_2D), "-pl", "nnUNetPlannerUIUNetM",
               "-gpu_memory_target", TINY_GPU_TARGET, "-c", "2d", "-np", "1", "--no_pbar")
    plans = json.loads(nnunet.plans_path(DATASET_2D, "nnUNetUIUNetMPlans").read_text())
    assert plans["configurations"]["2d"]["architecture"]["network_class_name"] == \
        "nnunet_archs.architectures.uiunet.DynamicUIUNet3D"
    # nnU-Net's defaults: mirroring augmentation, and the mirror axes stored for test-time mirroring at prediction
    nnunet.train(DATASET_2D, "2d", "nnUNetUIUNetMPlans", "nnUNetTrainerBudget", mirroring=True)
    fold = nnunet.fold_folder(DATASET_2D, "nnUNetTrainerBudget", "nnUNetUIUNetMPlans", "2d")
    checkpoint = torch.load(fold / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    assert tuple(checkpoint["inference_allowed_mirroring_axes"]) == (0, 1)
    assert [json.loads(line)["max_memory_allocated_bytes"] for line in (fold / EPOCH_LOG).read_text().splitlines()] \
        == [None]  # one epoch on a CPU: no allocator peak to report
    assert_finite_dice(nnunet.predict_and_evaluate(DATASET_2D, "2d", "nnUNetUIUNetMPlans", "nnUNetTrainerBudget",
                                                   mirroring=True))
