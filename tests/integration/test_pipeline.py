"""End to end through the real programs: nnunet-archs plan_and_preprocess with our planners, then stock
nnUNetv2_train, nnUNetv2_predict and nnUNetv2_evaluate_folder, on tiny synthetic datasets on the CPU, including
nnU-Net's default test-time mirroring and the 3d_lowres -> 3d_cascade_fullres pair."""
from __future__ import annotations

import json

import pytest
import torch

from nnunet_archs.datasets import write_synthetic_dataset
from nnunet_archs.training.trainers import EPOCH_LOG
from tests.integration.conftest import DATASET_2D, DATASET_3D, DATASET_CASCADE, TINY_GPU_TARGET, assert_finite_dice

pytestmark = pytest.mark.slow

# the smallest synthetic volume for which our planner, at this target, adds a 3d_lowres configuration (nnU-Net
# does once the 3d_fullres patch covers less than a quarter of the median image): patch 16x24x24, lowres image
# about 25x38x38 (measured)
CASCADE_SHAPE, CASCADE_GPU_TARGET = (32, 48, 48), "0.05"


def fold_folder(nnunet, dataset_id: int, trainer: str, plans: str, configuration: str, fold: str = "0"):
    return next(nnunet.results.glob(f"Dataset{dataset_id:03d}_*/{trainer}__{plans}__{configuration}/fold_{fold}"))


def test_kiunet_plans_train_predict_evaluate_3d(nnunet, kiunet_plans):
    plans = json.loads(nnunet.plans_path(DATASET_3D, kiunet_plans).read_text())
    architecture = plans["configurations"]["3d_fullres"]["architecture"]
    assert architecture["network_class_name"] == "nnunet_archs.architectures.kiunet.DynamicKiUNet"
    assert "strides" in architecture["arch_kwargs"]
    assert plans["configurations"]["3d_fullres"]["data_identifier"] == "nnUNetPlans_3d_fullres"  # shared data
    # nnU-Net's defaults: mirroring augmentation, and the mirror axes stored for test-time mirroring at prediction
    nnunet.train(DATASET_3D, "3d_fullres", kiunet_plans, "nnUNetTrainerBudget", mirroring=True)
    checkpoint = torch.load(fold_folder(nnunet, DATASET_3D, "nnUNetTrainerBudget", kiunet_plans, "3d_fullres")
                            / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    assert tuple(checkpoint["inference_allowed_mirroring_axes"]) == (0, 1, 2)
    assert_finite_dice(nnunet.predict_and_evaluate(DATASET_3D, "3d_fullres", kiunet_plans, "nnUNetTrainerBudget",
                                                   mirroring=True))


def test_uiunet_plans_train_predict_evaluate_2d(nnunet):
    nnunet.run("nnunet-archs", "plan_and_preprocess", "-d", str(DATASET_2D), "-pl", "nnUNetPlannerUIUNetM",
               "-gpu_memory_target", TINY_GPU_TARGET, "-c", "2d", "-np", "1", "--no_pbar")
    plans = json.loads(nnunet.plans_path(DATASET_2D, "nnUNetUIUNetMPlans").read_text())
    assert plans["configurations"]["2d"]["architecture"]["network_class_name"] == \
        "nnunet_archs.architectures.uiunet.DynamicUIUNet3D"
    # nnU-Net's defaults: mirroring augmentation, and the mirror axes stored for test-time mirroring at prediction
    nnunet.train(DATASET_2D, "2d", "nnUNetUIUNetMPlans", "nnUNetTrainerBudget", mirroring=True)
    fold = fold_folder(nnunet, DATASET_2D, "nnUNetTrainerBudget", "nnUNetUIUNetMPlans", "2d")
    checkpoint = torch.load(fold / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    assert tuple(checkpoint["inference_allowed_mirroring_axes"]) == (0, 1)
    assert [json.loads(line)["max_memory_allocated_bytes"] for line in (fold / EPOCH_LOG).read_text().splitlines()] \
        == [None]  # one epoch on a CPU: no allocator peak to report
    assert_finite_dice(nnunet.predict_and_evaluate(DATASET_2D, "2d", "nnUNetUIUNetMPlans", "nnUNetTrainerBudget",
                                                   mirroring=True))


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
    next_stage = fold_folder(nnunet, DATASET_CASCADE, "nnUNetTrainerBudget", plans_name, "3d_lowres", "all").parent \
        / "predicted_next_stage" / "3d_cascade_fullres"
    assert [path.stem for path in next_stage.iterdir()] == ["cascade_tr000"]  # every training case
    nnunet.train(DATASET_CASCADE, "3d_cascade_fullres", plans_name, "nnUNetTrainerBudget", fold="all")
    fold = fold_folder(nnunet, DATASET_CASCADE, "nnUNetTrainerBudget", plans_name, "3d_cascade_fullres", "all")
    weights = torch.load(fold / "checkpoint_final.pth", map_location="cpu", weights_only=False)["network_weights"]
    assert weights["encoder.stages.0.0.convs.0.conv.weight"].shape[1] == 3  # the image and two foreground labels
    lowres, fullres = nnunet.root / "cascade_lowres", nnunet.root / "cascade_fullres"
    nnunet.predict(DATASET_CASCADE, "3d_lowres", plans_name, "nnUNetTrainerBudget", lowres, fold="all")
    nnunet.predict(DATASET_CASCADE, "3d_cascade_fullres", plans_name, "nnUNetTrainerBudget", fullres, fold="all",
                   extra=["-prev_stage_predictions", str(lowres)])
    assert_finite_dice(nnunet.evaluate(DATASET_CASCADE, fullres))
