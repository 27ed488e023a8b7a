"""End to end through the real programs on the 3D dataset: nnunet-archs plan_and_preprocess with our KiU-Net
planner, then stock nnUNetv2_train, nnUNetv2_predict (with nnU-Net's default test-time mirroring) and
nnUNetv2_evaluate_folder on the CPU; nnU-Net's ResEnc plans beside ours, and a hand-added configuration that
inherits ours with a bigger batch; the seed fork's trainer names on stock nnU-Net plans of the same data. (The other
end-to-end runs have their own modules, so that make test's workers can run them side by side.)"""
from __future__ import annotations

import json

import pytest
import torch

from tests.integration.conftest import DATASET_3D, SHORT_TRAINING, TINY_GPU_TARGET, assert_finite_dice

pytestmark = pytest.mark.slow(150)


def test_kiunet_plans_train_predict_evaluate_3d(nnunet, kiunet_plans):
    """Trained with a training seed, twice: on a CPU with nnU-Net's single-process data loading the second run
    repeats the first to the last weight (augmentations included: nnU-Net's mirroring is on)."""
    plans = json.loads(nnunet.plans_path(DATASET_3D, kiunet_plans).read_text())
    architecture = plans["configurations"]["3d_fullres"]["architecture"]
    assert architecture["network_class_name"] == "nnunet_archs.architectures.kiunet.DynamicKiUNet"
    assert "strides" in architecture["arch_kwargs"]
    assert plans["configurations"]["3d_fullres"]["data_identifier"] == "nnUNetPlans_3d_fullres"  # shared data
    trainer = "nnUNetTrainerBudget_seed5"
    fold = nnunet.root / "results" / nnunet.raw_dataset(DATASET_3D).name / f"{trainer}__{kiunet_plans}__3d_fullres" / \
        "fold_0"

    def train() -> dict:
        # nnU-Net's defaults: mirroring augmentation, and the mirror axes stored for test-time mirroring
        nnunet.train(DATASET_3D, "3d_fullres", kiunet_plans, trainer, mirroring=True)
        return torch.load(fold / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    first, checkpoint = train(), train()
    assert tuple(checkpoint["inference_allowed_mirroring_axes"]) == (0, 1, 2)
    assert first["network_weights"].keys() == checkpoint["network_weights"].keys()
    assert all(torch.equal(first["network_weights"][k], v) for k, v in checkpoint["network_weights"].items())
    assert "nnunet-archs: training seed 5" in next(fold.glob("training_log_*")).read_text()
    assert_finite_dice(nnunet.predict_and_evaluate(DATASET_3D, "3d_fullres", kiunet_plans, trainer, mirroring=True))
    # the study's timed prediction is nnUNetv2_predict's, to the voxel
    stock = nnunet.root / f"prediction_{DATASET_3D}_3d_fullres_{kiunet_plans}_{trainer}"
    timed = nnunet.root / "prediction_timed"
    nnunet.run("nnunet-archs", "predict", "-i", str(nnunet.raw_dataset(DATASET_3D) / "imagesTs"), "-o", str(timed),
               "-d", str(DATASET_3D), "-c", "3d_fullres", "-p", kiunet_plans, "-tr", trainer, "-f", "0", "-npp", "0",
               "-nps", "0", "-device", "cpu", "--disable_progress_bar")
    import SimpleITK as sitk
    for case in sorted(stock.glob("*.nii.gz")):
        assert (sitk.GetArrayFromImage(sitk.ReadImage(str(case))) ==
                sitk.GetArrayFromImage(sitk.ReadImage(str(timed / case.name)))).all(), case.name
    timing = json.loads((timed / "nnunet_archs_inference.json").read_text())
    assert timing["cases"] == len(list(stock.glob("*.nii.gz"))) == 2 and timing["models"] == 1


def test_a_training_seed_fixes_the_initial_weights_and_the_batches(nnunet, kiunet_plans):
    """In this process, no training: two trainers with one training seed start from the same weights and draw
    the same batches; another seed gives other ones (nnU-Net alone does not seed: every start differs). The
    trainers are found by name as nnUNetv2_train finds them (through nnUNet_extTrainer)."""
    from nnunetv2.run.run_training import get_trainer_from_args

    def start(seed: int):
        trainer = get_trainer_from_args(str(DATASET_3D), "3d_fullres", 1, f"nnUNetTrainerBudget_seed{seed}",
                                        kiunet_plans, device=torch.device("cpu"))
        trainer.on_train_start()
        return trainer.network.state_dict(), next(trainer.dataloader_train)["data"]
    with nnunet.variables(SHORT_TRAINING):
        (weights, batch), (same_weights, same_batch), (other_weights, other_batch) = start(3), start(3), start(4)
    assert all(torch.equal(weights[k], same_weights[k]) for k in weights) and torch.equal(batch, same_batch)
    assert not all(torch.equal(weights[k], other_weights[k]) for k in weights)
    assert not torch.equal(batch, other_batch)


@pytest.mark.filterwarnings("ignore:.*non-standard gpu_memory_target_in_gb:UserWarning")  # nnU-Net's, as intended
def test_resenc_plans_coexist_with_ours(nnunet, kiunet_plans):
    ours = nnunet.plans_path(DATASET_3D, kiunet_plans)
    before = ours.read_text()
    assert nnunet.run_in_process("plan_experiment", "-d", str(DATASET_3D), "-pl", "nnUNetPlannerResEncM",
                                 "-gpu_memory_target", TINY_GPU_TARGET).returncode == 0
    resenc = json.loads(nnunet.plans_path(DATASET_3D, "nnUNetResEncUNetMPlans").read_text())
    assert resenc["configurations"]["3d_fullres"]["architecture"]["network_class_name"].endswith("ResidualEncoderUNet")
    assert ours.read_text() == before
    assert resenc["configurations"]["3d_fullres"]["data_identifier"] == \
        json.loads(before)["configurations"]["3d_fullres"]["data_identifier"]


def test_inherited_bigger_batch_configuration_builds_and_steps_with_our_plans(nnunet, kiunet_plans):
    """Seed 003's hand-added configuration: nnU-Net resolves ``inherits_from`` to our network at batch 4, which
    takes a training step (stock nnUNetv2_train on our plans: test_kiunet_plans_train_predict_evaluate_3d)."""
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
    path = nnunet.plans_path(DATASET_3D, kiunet_plans)
    plans = json.loads(path.read_text())
    plans["configurations"]["3d_fullres_bs4"] = {"inherits_from": "3d_fullres", "batch_size": 4}
    path.write_text(json.dumps(plans, indent=1))
    # re-planning with the same planner keeps the hand-added configuration, as nnU-Net does
    assert nnunet.run_in_process("plan_experiment", "-d", str(DATASET_3D), "-pl", "nnUNetPlannerKiUNetM",
                                 "-gpu_memory_target", TINY_GPU_TARGET).returncode == 0
    configuration = PlansManager(str(path)).get_configuration("3d_fullres_bs4")
    assert configuration.batch_size == 4
    assert configuration.network_arch_class_name == "nnunet_archs.architectures.kiunet.DynamicKiUNet"
    net = get_network_from_plans(configuration.network_arch_class_name, configuration.network_arch_init_kwargs,
                                 configuration.network_arch_init_kwargs_req_import, 1, 3, deep_supervision=True)
    outputs = net(torch.randn(4, 1, *configuration.patch_size))
    assert list(outputs[0].shape) == [4, 3, *configuration.patch_size]
    sum(o.mean() for o in outputs).backward()


def test_seed_trainer_on_default_plans_through_ext_trainer(nnunet, kiunet_plans):
    """`-tr kiunet_minimal` on stock nnU-Net plans (nnU-Net's default planner; the 3d_fullres data our planner's
    plans share, preprocessed for ``kiunet_plans``): found by nnUNetv2_train and nnUNetv2_predict through
    nnUNet_extTrainer, KiU-Net swapped into the plans, batch size 1."""
    planned = nnunet.run_in_process("plan_experiment", "-d", str(DATASET_3D), "-pl", "ExperimentPlanner")
    assert planned.returncode == 0, planned.stderr[-2000:]
    nnunet.train(DATASET_3D, "3d_fullres", "nnUNetPlans", "kiunet_minimal")
    fold = nnunet.fold_folder(DATASET_3D, "kiunet_minimal", "nnUNetPlans", "3d_fullres")
    assert "nnunet_archs.architectures.kiunet.DynamicKiUNet" in next(fold.glob("training_log_*")).read_text()
    weights = torch.load(fold / "checkpoint_final.pth", map_location="cpu", weights_only=False)["network_weights"]
    assert any(key.startswith("ki_encoder.") for key in weights)
    assert weights["encoder.stages.0.0.convs.0.conv.weight"].shape[0] == 16  # 50 % of the plans' 32 features
    assert str(json.loads((fold / "debug.json").read_text())["batch_size"]) == "1"
    output = nnunet.root / "prediction_seed_trainer"
    nnunet.predict(DATASET_3D, "3d_fullres", "nnUNetPlans", "kiunet_minimal", output)
    images = sorted(p.name.replace("_0000", "") for p in (nnunet.raw_dataset(DATASET_3D) / "imagesTs").iterdir())
    assert sorted(p.name for p in output.glob("*.nii.gz")) == images  # scored by nnU-Net: the test above
