"""End to end through the real programs on the 3D dataset: the README's quick start as written (example dataset,
nnunet-archs plan_and_preprocess with our KiU-Net planner, stock nnUNetv2_train with our seeded trainer,
nnUNetv2_predict, nnunet-archs evaluate) on the CPU; nnU-Net's ResEnc plans beside ours, and a hand-added
configuration that inherits ours with a bigger batch; the trainer names of the fork aymuos15/nnUNet on stock nnU-Net
plans of the same data. (The other end-to-end runs have their own modules, so that make test's workers can run
them side by side.)"""
from __future__ import annotations

import csv
import json
import os
import subprocess
from pathlib import Path

import pytest
import torch

from tests.integration.conftest import BIN, DATASET_3D, SHORT_TRAINING, TINY_GPU_TARGET

pytestmark = pytest.mark.slow(150)


def readme_quick_start() -> str:
    """The README's quick-start block, as a user copies it."""
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    start = text.index("```bash", text.index("<!-- quick-start"))
    return text[start + len("```bash"):text.index("```", start + len("```bash"))]


def test_the_readme_quick_start_runs_as_written_and_its_seeded_training_repeats(nnunet):
    """The README's quick start in fresh nnU-Net folders (the block as written: it sets them itself), then the
    training again: on a CPU with nnU-Net's single-process data loading the seeded trainer repeats it to the last
    weight. The study's timed prediction (nnunet-archs predict) gives nnUNetv2_predict's predictions, to the voxel."""
    folder = nnunet.root / "quick_start"
    folder.mkdir()
    env = {**nnunet.env, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    run = subprocess.run(["bash", "-c", "set -euo pipefail\n" + readme_quick_start()], cwd=folder, env=env,
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    rows = list(csv.DictReader(open(folder / "predictions" / "per_case.csv")))
    dice = [float(r["value"]) for r in rows if r["metric"] == "Dice" and r["label"] == "large"]
    assert len(dice) == 2 and all(0 <= d <= 1 for d in dice)
    assert {r["metric"] for r in rows} >= {"Dice", "NSD", "HD95", "DetectionRecall"}

    fold = folder / "nnUNet_results" / "Dataset501_Synthetic" / \
        "nnUNetTrainerBudget_seed0__nnUNetKiUNetMPlans__3d_fullres" / "fold_0"
    first = torch.load(fold / "checkpoint_final.pth", map_location="cpu", weights_only=False)["network_weights"]
    assert "nnunet-archs: training seed 0" in next(fold.glob("training_log_*")).read_text()
    folders = {name: str(folder / name) for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}
    again = nnunet.run("nnUNetv2_train", "501", "3d_fullres", "0", "-p", "nnUNetKiUNetMPlans", "-tr",
                       "nnUNetTrainerBudget_seed0", "-device", "cpu", extra_env={**SHORT_TRAINING, **folders})
    assert again.returncode == 0
    second = torch.load(fold / "checkpoint_final.pth", map_location="cpu", weights_only=False)["network_weights"]
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)

    timed = folder / "predictions_timed"
    nnunet.run("nnunet-archs", "predict", "-i", str(folder / "nnUNet_raw" / "Dataset501_Synthetic" / "imagesTs"),
               "-o", str(timed), "-d", "501", "-c", "3d_fullres", "-p", "nnUNetKiUNetMPlans", "-tr",
               "nnUNetTrainerBudget_seed0", "-f", "0", "-npp", "0", "-nps", "0", "-device", "cpu",
               "--disable_tta", "--disable_progress_bar", extra_env=folders)
    import SimpleITK as sitk
    stock = sorted((folder / "predictions").glob("*.nii.gz"))
    assert len(stock) == 2
    for case in stock:
        assert (sitk.GetArrayFromImage(sitk.ReadImage(str(case))) ==
                sitk.GetArrayFromImage(sitk.ReadImage(str(timed / case.name)))).all(), case.name
    timing = json.loads((timed / "nnunet_archs_inference.json").read_text())
    assert timing["cases"] == 2 and timing["models"] == 1 and not timing["mirroring"]


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
    """The multi-GPU recipe's hand-added configuration: nnU-Net resolves ``inherits_from`` to our network at batch 4,
    which takes a training step (stock nnUNetv2_train on our plans: the quick-start test)."""
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
