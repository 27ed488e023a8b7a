"""The seed fork's trainer names on stock nnU-Net plans, through the real programs."""
from __future__ import annotations

import json

import pytest
import torch

from tests.integration.conftest import DATASET_3D, assert_finite_dice

pytestmark = pytest.mark.slow(60)


def test_seed_trainer_on_default_plans_through_ext_trainer(nnunet):
    """`-tr kiunet_minimal` on stock nnU-Net plans: found by nnUNetv2_train and nnUNetv2_predict through
    nnUNet_extTrainer, KiU-Net swapped into the plans, batch size 1."""
    nnunet.run("nnunet-archs", "plan_and_preprocess", "-d", str(DATASET_3D), "-pl", "ExperimentPlanner",
               "-c", "3d_fullres", "-np", "1", "--no_pbar")
    nnunet.train(DATASET_3D, "3d_fullres", "nnUNetPlans", "kiunet_minimal")
    fold = nnunet.fold_folder(DATASET_3D, "kiunet_minimal", "nnUNetPlans", "3d_fullres")
    assert "nnunet_archs.architectures.kiunet.DynamicKiUNet" in next(fold.glob("training_log_*")).read_text()
    weights = torch.load(fold / "checkpoint_final.pth", map_location="cpu", weights_only=False)["network_weights"]
    assert any(key.startswith("ki_encoder.") for key in weights)
    assert weights["encoder.stages.0.0.convs.0.conv.weight"].shape[0] == 16  # 50 % of the plans' 32 features
    assert str(json.loads((fold / "debug.json").read_text())["batch_size"]) == "1"
    assert_finite_dice(nnunet.predict_and_evaluate(DATASET_3D, "3d_fullres", "nnUNetPlans", "kiunet_minimal"))
