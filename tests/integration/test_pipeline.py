"""End to end through the real programs: nnunet-archs plan_and_preprocess with our planners, then stock
nnUNetv2_train, nnUNetv2_predict and nnUNetv2_evaluate_folder, on tiny synthetic datasets on the CPU."""
from __future__ import annotations

import json

import torch

from tests.integration.conftest import DATASET_2D, DATASET_3D, TINY_GPU_TARGET, assert_finite_dice


def test_kiunet_plans_train_predict_evaluate_3d(nnunet, kiunet_plans):
    plans = json.loads(nnunet.plans_path(DATASET_3D, kiunet_plans).read_text())
    architecture = plans["configurations"]["3d_fullres"]["architecture"]
    assert architecture["network_class_name"] == "nnunet_archs.architectures.kiunet.DynamicKiUNet"
    assert "strides" in architecture["arch_kwargs"]
    assert plans["configurations"]["3d_fullres"]["data_identifier"] == "nnUNetPlans_3d_fullres"  # shared data
    nnunet.train(DATASET_3D, "3d_fullres", kiunet_plans, "nnUNetTrainerBudget")
    assert_finite_dice(nnunet.predict_and_evaluate(DATASET_3D, "3d_fullres", kiunet_plans, "nnUNetTrainerBudget"))


def test_uiunet_plans_train_predict_evaluate_2d(nnunet):
    nnunet.run("nnunet-archs", "plan_and_preprocess", "-d", str(DATASET_2D), "-pl", "nnUNetPlannerUIUNetM",
               "-gpu_memory_target", TINY_GPU_TARGET, "-c", "2d", "-np", "1", "--no_pbar")
    plans = json.loads(nnunet.plans_path(DATASET_2D, "nnUNetUIUNetMPlans").read_text())
    assert plans["configurations"]["2d"]["architecture"]["network_class_name"] == \
        "nnunet_archs.architectures.uiunet.DynamicUIUNet3D"
    nnunet.train(DATASET_2D, "2d", "nnUNetUIUNetMPlans", "nnUNetTrainerBudget")
    assert_finite_dice(nnunet.predict_and_evaluate(DATASET_2D, "2d", "nnUNetUIUNetMPlans", "nnUNetTrainerBudget"))


def test_seed_trainer_on_default_plans_through_ext_trainer(nnunet):
    """`-tr kiunet_minimal` on stock nnU-Net plans: found by nnUNetv2_train and nnUNetv2_predict through
    nnUNet_extTrainer, KiU-Net swapped into the plans, batch size 1."""
    nnunet.run("nnunet-archs", "plan_and_preprocess", "-d", str(DATASET_3D), "-pl", "ExperimentPlanner",
               "-c", "3d_fullres", "-np", "1", "--no_pbar")
    nnunet.train(DATASET_3D, "3d_fullres", "nnUNetPlans", "kiunet_minimal")
    fold = next(nnunet.results.glob("Dataset501_*/kiunet_minimal__nnUNetPlans__3d_fullres/fold_0"))
    assert "nnunet_archs.architectures.kiunet.DynamicKiUNet" in next(fold.glob("training_log_*")).read_text()
    weights = torch.load(fold / "checkpoint_final.pth", map_location="cpu", weights_only=False)["network_weights"]
    assert any(key.startswith("ki_encoder.") for key in weights)
    assert weights["encoder.stages.0.0.convs.0.conv.weight"].shape[0] == 16  # 50 % of the plans' 32 features
    assert str(json.loads((fold / "debug.json").read_text())["batch_size"]) == "1"
    assert_finite_dice(nnunet.predict_and_evaluate(DATASET_3D, "3d_fullres", "nnUNetPlans", "kiunet_minimal"))


def test_resenc_plans_coexist_with_ours(nnunet, kiunet_plans):
    ours = nnunet.plans_path(DATASET_3D, kiunet_plans)
    before = ours.read_text()
    nnunet.run("nnunet-archs", "plan_experiment", "-d", str(DATASET_3D), "-pl", "nnUNetPlannerResEncM",
               "-gpu_memory_target", TINY_GPU_TARGET)
    resenc = json.loads(nnunet.plans_path(DATASET_3D, "nnUNetResEncUNetMPlans").read_text())
    assert resenc["configurations"]["3d_fullres"]["architecture"]["network_class_name"].endswith("ResidualEncoderUNet")
    assert ours.read_text() == before
    assert resenc["configurations"]["3d_fullres"]["data_identifier"] == \
        json.loads(before)["configurations"]["3d_fullres"]["data_identifier"]


def test_inherited_bigger_batch_configuration_trains_with_our_plans(nnunet, kiunet_plans):
    path = nnunet.plans_path(DATASET_3D, kiunet_plans)
    plans = json.loads(path.read_text())
    plans["configurations"]["3d_fullres_bs4"] = {"inherits_from": "3d_fullres", "batch_size": 4}
    path.write_text(json.dumps(plans, indent=1))
    # re-planning with the same planner keeps the hand-added configuration, as nnU-Net does
    nnunet.run("nnunet-archs", "plan_experiment", "-d", str(DATASET_3D), "-pl", "nnUNetPlannerKiUNetM",
               "-gpu_memory_target", TINY_GPU_TARGET)
    assert "3d_fullres_bs4" in json.loads(path.read_text())["configurations"]
    nnunet.train(DATASET_3D, "3d_fullres_bs4", kiunet_plans, "nnUNetTrainerBudget")
    fold = next(nnunet.results.glob(f"Dataset501_*/nnUNetTrainerBudget__{kiunet_plans}__3d_fullres_bs4/fold_0"))
    assert (fold / "checkpoint_final.pth").exists()
    assert str(json.loads((fold / "debug.json").read_text())["batch_size"]) == "4"
