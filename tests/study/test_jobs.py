"""The study's job graph is a pure function of the study and a few disk facts: test it without running anything."""
from __future__ import annotations

from pathlib import Path

import pytest

from nnunet_archs.study.folder import StudyLayout
from nnunet_archs.study.jobs import build_jobs
from nnunet_archs.study.spec import Budget, StudySpec


def layout(tmp_path: Path, test_set: bool) -> StudyLayout:
    """A dataset with one labelled test case, or with empty imagesTs/labelsTs folders (no test set)."""
    raw = tmp_path / "raw" / "Dataset501_X"
    for folder, name in (("imagesTs", "x_000_0000.nii.gz"), ("labelsTs", "x_000.nii.gz")):
        (raw / folder).mkdir(parents=True, exist_ok=True)
        if test_set:
            (raw / folder / name).touch()
    return StudyLayout(raw, tmp_path / "pre" / raw.name, tmp_path / "results", tmp_path / "report")


def spec(**overrides) -> StudySpec:
    arguments = dict(dataset_id=501, architectures=["PlainConvUNet", "KiUNet"], configuration="3d_fullres",
                     folds=[0, 1], budget=Budget(epochs=2), study_id="s")
    return StudySpec(**{**arguments, **overrides})


PLANNERS = {"PlainConvUNet": ["-pl", "nnUNetPlannerPlainConvUNetM"], "KiUNet": ["-pl", "nnUNetPlannerKiUNetM"],
            "UIUNet": ["-pl", "nnUNetPlannerUIUNetM"]}


def test_graph_of_a_cross_validated_study_with_a_test_set(tmp_path):
    jobs = build_jobs(spec(), layout(tmp_path, True), PLANNERS)
    names = [j.name for j in jobs]
    assert names.count("preprocess_nnUNetPlans_3d_fullres") == 1  # shared data, preprocessed once
    by_name = {j.name: j for j in jobs}
    assert set(n for n in names if n.startswith("train_")) == {f"train_{a}_fold{f}_seed0"
                                                               for a in ("PlainConvUNet", "KiUNet") for f in (0, 1)}
    train = by_name["train_KiUNet_fold1_seed0"]
    assert train.deps == ["preprocess_nnUNetPlans_3d_fullres", "splits"] and train.resumable
    assert train.command[1:] == ["501", "3d_fullres", "1", "-p", "nnUNetStudy_s_KiUNet", "-tr",
                                 "nnUNetTrainerBudget_seed0", "-device", "cpu"]
    assert train.env["NNUNET_ARCHS_EPOCHS"] == "2" and train.env["nnUNet_compile"] == "f"
    assert by_name["predict_test_KiUNet_seed0"].deps == ["train_KiUNet_fold0_seed0", "train_KiUNet_fold1_seed0"]
    assert "0" in by_name["predict_test_KiUNet_seed0"].command and "1" in by_name["predict_test_KiUNet_seed0"].command
    assert by_name["evaluate_KiUNet_fold0_seed0"].deps == ["train_KiUNet_fold0_seed0"]
    for job in jobs:  # every dependency comes earlier in the list
        assert all(names.index(d) < names.index(job.name) for d in job.deps), job.name


def test_existing_preprocessed_data_is_not_preprocessed_again_and_no_test_set_means_no_test_jobs(tmp_path):
    jobs = build_jobs(spec(), layout(tmp_path, False), PLANNERS, preprocessed_identifiers={"nnUNetPlans_3d_fullres"})
    names = [j.name for j in jobs]
    assert not any(n.startswith(("preprocess", "predict", "evaluate_test")) for n in names)
    assert {j.name: j for j in jobs}["train_KiUNet_fold0_seed0"].deps == ["plan_KiUNet", "splits"]


def test_lowres_data_is_per_plans_and_cuda_compiles_by_default(tmp_path):
    jobs = build_jobs(spec(configuration="3d_lowres", device="cuda"), layout(tmp_path, False), PLANNERS)
    names = [j.name for j in jobs]
    assert "preprocess_nnUNetStudy_s_KiUNet_3d_lowres" in names and "preprocess_nnUNetStudy_s_PlainConvUNet_3d_lowres" \
        in names
    train = {j.name: j for j in jobs}["train_KiUNet_fold0_seed0"]
    assert train.env["nnUNet_compile"] == "t" and train.gpus == 1 and "nnUNet_n_proc_DA" not in train.env
    no_compile = build_jobs(spec(device="cuda", compile=False), layout(tmp_path, False), PLANNERS)
    assert {j.name: j for j in no_compile}["train_KiUNet_fold0_seed0"].env["nnUNet_compile"] == "f"


def test_multi_gpu_trainings_with_seed_003s_batch_configuration(tmp_path):
    jobs = {j.name: j for j in build_jobs(spec(device="cuda", num_gpus=4, scale_batch=True), layout(tmp_path, True),
                                          PLANNERS)}
    configure = jobs["configure_KiUNet"]
    assert configure.command[1:] == ["add_configuration", "-d", "501", "-plans_name", "nnUNetStudy_s_KiUNet", "-c",
                                     "3d_fullres", "--name", "3d_fullres_4gpus", "--batch-multiplier", "4"]
    train = jobs["train_KiUNet_fold0_seed0"]
    assert train.command[2] == "3d_fullres_4gpus" and train.command[-2:] == ["-num_gpus", "4"] and train.gpus == 4
    assert "configure_KiUNet" in train.deps and jobs["predict_test_KiUNet_seed0"].gpus == 1


def test_every_training_seed_is_a_training_of_its_own_in_its_own_results_folder(tmp_path):
    study, where = spec(training_seeds=[0, 3]), layout(tmp_path, True)
    jobs = {j.name: j for j in build_jobs(study, where, PLANNERS)}
    trainings = [n for n in jobs if n.startswith("train_")]
    assert len(trainings) == 2 * 2 * 2  # architectures x folds x training seeds
    seeded = jobs["train_KiUNet_fold1_seed3"]
    assert seeded.command[seeded.command.index("-tr") + 1] == "nnUNetTrainerBudget_seed3"
    assert where.fold_folder(study, "KiUNet", 1, 3).parent.name == \
        "nnUNetTrainerBudget_seed3__nnUNetStudy_s_KiUNet__3d_fullres"
    evaluation = jobs["evaluate_KiUNet_fold1_seed3"].command
    assert evaluation[evaluation.index("--training-seed") + 1] == "3"
    assert str(where.fold_folder(study, "KiUNet", 1, 3) / "validation") in evaluation
    assert jobs["predict_test_KiUNet_seed3"].deps == ["train_KiUNet_fold0_seed3", "train_KiUNet_fold1_seed3"]


def test_a_network_trained_without_deep_supervision_gets_the_trainer_without_its_loss(tmp_path):
    """Swin UNETR returns one output: its trainings, predictions and results folders use
    nnUNetTrainerBudgetNoDeepSupervision_seed<S> (registry.study_trainer_name), the other networks keep theirs."""
    study, where = spec(architectures=["PlainConvUNet", "SwinUNETR"]), layout(tmp_path, True)
    jobs = {j.name: j for j in build_jobs(study, where, {**PLANNERS, "SwinUNETR": ["-pl", "nnUNetPlannerSwinUNETRM"]})}
    for job, command in (("train_SwinUNETR_fold0_seed0", "-tr"), ("predict_test_SwinUNETR_seed0", "-tr")):
        assert jobs[job].command[jobs[job].command.index(command) + 1] == "nnUNetTrainerBudgetNoDeepSupervision_seed0"
    assert where.fold_folder(study, "SwinUNETR", 0, 0).parent.name.startswith("nnUNetTrainerBudgetNoDeepSupervision_")
    train = jobs["train_PlainConvUNet_fold0_seed0"].command
    assert train[train.index("-tr") + 1] == "nnUNetTrainerBudget_seed0"


@pytest.mark.parametrize("overrides, message", [
    (dict(baseline="UIUNet"), "is not among the architectures"),
    (dict(metrics=["Dice", "IoU"]), "unknown metric(s) ['IoU']"),
    (dict(folds=[0, 0]), "--folds must be distinct"),
    (dict(num_gpus=2), "--num-gpus 2 needs -device cuda"),
    (dict(device="cuda", scale_batch=True), "--scale-batch multiplies the batch by --num-gpus"),
    (dict(training_seeds=[1, 1]), "--training-seeds must be distinct integers >= 0, got [1, 1]"),
    (dict(training_seeds=[-1]), "--training-seeds must be distinct integers >= 0"),
    (dict(training_seeds=[]), "--training-seeds must be distinct integers >= 0"),
    (dict(primary="Jaccard"), "--primary 'Jaccard': the metric must be one of the study's --metrics"),
    (dict(margins={"IoU": 0.1}), "--margin IoU=0.1: 'IoU' is not one of the study's --metrics"),
    (dict(margins={"Dice": 0}), "--margin Dice=0: the margin must be > 0"),
    (dict(failures="ignore"), "--failures must be one of ['worst', 'exclude']"),
])
def test_invalid_studies_are_rejected(overrides, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        spec(**overrides)


def test_every_job_of_ours_parses_with_the_command_line_it_calls(tmp_path):
    """The job graph writes the command lines of our own subcommands; the real parser reads each one back, so the
    flags cannot drift apart (argparse exits on an unknown or malformed flag)."""
    from nnunet_archs.cli.parser import build_parser
    study = spec(device="cuda", num_gpus=2, scale_batch=True, training_seeds=[0, 4], metrics=["Dice", "HD95"],
                 object_labels=["small"], match_iou=0.25, nsd_tolerance_mm=1.5)
    planners = {**PLANNERS, "KiUNet": ["-pl", "nnUNetPlannerCustom", "--network", "KiUNet", "--calibration", "c.json"]}
    jobs = [j for j in build_jobs(study, layout(tmp_path, True), planners, calibrations=["c.json"])
            if Path(j.command[0]).name == "nnunet-archs"]
    parsed = {job.name: build_parser().parse_args(job.command[1:]) for job in jobs}
    assert {args.command for args in parsed.values()} == {"splits", "plan_experiment", "costs", "add_configuration",
                                                          "evaluate", "predict"}
    evaluation = parsed["evaluate_KiUNet_fold1_seed4"]
    assert (evaluation.metrics, evaluation.object_labels, evaluation.match_iou, evaluation.nsd_tolerance,
            evaluation.training_seed, evaluation.fold) == (["Dice", "HD95"], ["small"], 0.25, 1.5, 4, "1")
    assert parsed["plan_KiUNet"].pl == "nnUNetPlannerCustom" and parsed["plan_KiUNet"].gpu_memory_target == 8
    predict = parsed["predict_test_KiUNet_seed4"]
    assert (predict.f, predict.device, predict.c) == ([0, 1], "cuda", "3d_fullres_2gpus")
    assert parsed["costs"].plans == [study.plans_name(a) for a in study.architectures]
