"""``nnunet-archs compare`` refuses bad input with one clear message before anything runs or is written (the
study itself is test_compare.py's; these tests have their own module so that make test runs them beside it)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from nnunet_archs.cli import main
from tests.integration.conftest import DATASET_2D


@pytest.mark.parametrize("arguments, message", [
    (["-a", "PlainConvUNet", "STUNet"], "unknown architecture(s) ['STUNet']"),
    (["-a", "PlainConvUNet", "no_such_module.Net"], "no_such_module"),
    (["-a", "PlainConvUNet", "tests.integration.custom_net.BottleneckResUNet"], "has no calibration: run "
                                                                               "nnunet-archs calibrate"),
    (["--metrics", "Dice", "Jaccard"], "unknown metric(s) ['Jaccard']; choose from ['Dice', 'NSD', 'HD95', "
                                       "'DetectionRecall', 'DetectionPrecision', 'DetectionF1', 'FalsePositiveObjects']"),
    (["--baseline", "UIUNet"], "--baseline 'UIUNet' is not among the architectures"),
    (["--folds", "0"], "--folds needs at least 2 folds"),
    (["--folds", "0", "7"], "--folds must be distinct values out of [0, 1, 2, 3, 4]"),
    (["--nsd-tolerance", "0"], "--nsd-tolerance must be > 0"),
    (["--epochs", "0"], "--epochs must be > 0"),
    (["--slurm-time", "soon"], "--slurm-time must be minutes or [D-]HH:MM:SS"),
    (["--slurm-option", "nodash"], "--slurm-option takes KEY=VALUE"),
])
def test_bad_arguments_are_one_clear_message_before_anything_runs(tmp_path, monkeypatch, capsys, arguments, message):
    for variable in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.setenv(variable, str(tmp_path))
    report = tmp_path / "never_written"
    assert main(["compare", "-d", "502", "-a", "PlainConvUNet", "KiUNet", "-o", str(report), *arguments]) == 2
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error, error
    assert not report.exists()


def test_splits_that_disagree_with_the_folds_are_refused(nnunet):
    dataset = nnunet.raw / "Dataset513_FewSplits"
    shutil.copytree(nnunet.raw_dataset(DATASET_2D), dataset)
    preprocessed = nnunet.preprocessed / dataset.name
    preprocessed.mkdir()
    cases = sorted(p.name[:-len(".nii.gz")] for p in (dataset / "labelsTr").iterdir())
    (preprocessed / "splits_final.json").write_text(json.dumps([{"train": cases[2:], "val": cases[:2]}] * 2))
    result = nnunet.run_in_process("compare", "-d", "513", "--folds", "0", "1", "2", "-o", str(nnunet.root / "r513"))
    assert result.returncode == 2 and "defines 2 fold(s) (0-1); the requested folds [2]" in result.stderr
    assert not (nnunet.root / "r513").exists()


def test_an_existing_report_folder_needs_resume_or_overwrite(nnunet):
    folder = nnunet.root / "occupied"
    folder.mkdir()
    (folder / "mine.txt").write_text("keep")
    result = nnunet.run_in_process("compare", "-d", str(DATASET_2D), "-c", "2d", "--folds", "0", "1", "-o",
                                   str(folder))
    assert result.returncode == 2 and "pass --resume" in result.stderr
    assert (folder / "mine.txt").read_text() == "keep"


@pytest.mark.parametrize("arguments, message", [
    (["--training-seeds", "1", "1"], "--training-seeds must be distinct integers >= 0, got [1, 1]"),
    (["--training-seeds", "-2"], "--training-seeds must be distinct integers >= 0, got [-2]"),
    (["--margin", "Jaccard=0.1"], "--margin Jaccard=0.1: 'Jaccard' is not one of the study's --metrics"),
    (["--margin", "Dice=0"], "--margin Dice=0: the margin must be > 0"),
    (["--margin", "Dice"], "--margin takes METRIC=DELTA"),
    (["--primary", "IoU"], "--primary 'IoU': the metric must be one of the study's --metrics"),
    (["--primary", "NSD", "--metrics", "Dice"], "--primary 'NSD': the metric must be one of the study's --metrics"),
    (["--match-iou", "1"], "--match-iou must be in [0, 1), got 1"),
    (["--match-iou", "-0.1"], "--match-iou must be in [0, 1), got -0.1"),
])
def test_bad_verdict_settings_are_one_clear_message(tmp_path, monkeypatch, capsys, arguments, message):
    test_bad_arguments_are_one_clear_message_before_anything_runs(tmp_path, monkeypatch, capsys, arguments, message)


@pytest.mark.parametrize("arguments, message", [
    (["--primary", "Dice:tumour"], "the dataset has no label 'tumour'; choose one of ['large', 'small']"),
    (["--object-labels", "small", "vessel"], "--object-labels ['small', 'vessel']: the dataset's labels are "
                                             "['large', 'small']"),
])
def test_labels_the_dataset_lacks_are_refused(nnunet, arguments, message):
    result = nnunet.run_in_process("compare", "-d", str(DATASET_2D), "-c", "2d", "--folds", "0", "1", *arguments,
                                   "-o", str(nnunet.root / "r_labels"))
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert not (nnunet.root / "r_labels").exists()


def test_a_dry_run_lists_the_jobs_and_plans_and_writes_nothing(nnunet):
    def snapshot():
        return sorted((str(p), p.stat().st_mtime_ns) for folder in (nnunet.raw, nnunet.preprocessed, nnunet.results)
                      for p in folder.rglob("*"))
    before = snapshot()
    report = nnunet.root / "r_dry"
    result = nnunet.run_in_process("compare", "-d", str(DATASET_2D), "-a", "PlainConvUNet", "KiUNet", "-c", "2d",
                                   "--folds", "0", "1", "--training-seeds", "0", "1", "-gpu_memory_target", "0.1",
                                   "-o", str(report), "--dry-run", "--hours-per-training", "1.5", "-device", "cpu")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Trainings: 2 network(s) x 2 folds x 2 training seed(s) = 8, each 1000 epoch(s) x 250 iterations " \
           "(nnU-Net's full schedule)" in out and "8 train" in out
    assert "4 predict" in out  # the 2D dataset has a labelled test set: one ensemble per network and seed
    assert "| KiUNet | nnUNetPlannerKiUNetM | 64x64 |" in out and "| PlainConvUNet | nnUNetPlannerPlainConvUNetM |" in out
    assert "Estimated cost: 8 trainings x 1.50 h (--hours-per-training) = 12.0 hours of CPU" in out
    assert "Warning: nnU-Net's full schedule on the CPU" in out and "--yes" in out
    # the summary and its table only: nnU-Net's planning output went to the log file the last line names
    prefixes = ("Study of ", "Trainings: ", "Device: cpu (given with -device)", "Jobs: ", "Estimated cost: ",
                "Warning: ", "|", "Dry run: ")
    assert all(line.startswith(prefixes) for line in out.splitlines() if line), out
    log = Path(out.split("planning output is in ")[1].strip().rstrip("."))
    assert "Dataset502" in log.read_text()
    log.unlink()
    assert snapshot() == before and not report.exists()
    refused = nnunet.run_in_process("compare", "-d", str(DATASET_2D), "-c", "2d", "--folds", "0", "1", "-o",
                                    str(report), "--dry-run", "--hours-per-training", "0")
    assert refused.returncode == 2 and "--hours-per-training must be > 0" in refused.stderr


def test_nnunets_full_schedule_on_a_cpu_is_refused_after_the_summary_naming_the_override(nnunet):
    report = nnunet.root / "r_full_schedule"
    result = nnunet.run_in_process("compare", "-d", str(DATASET_2D), "-a", "PlainConvUNet", "-c", "2d", "--folds",
                                   "0", "1", "-device", "cpu", "-o", str(report))
    assert result.returncode == 2, result.stderr
    assert result.stdout.startswith(f"Study of {nnunet.raw_dataset(DATASET_2D).name}, configuration 2d: 1 network")
    assert "compares it with nothing" in result.stdout and "= 2, each 1000 epoch(s) x 250 iterations" in result.stdout
    assert "not started: nnU-Net's full schedule on the CPU" in result.stderr and "pass --yes" in result.stderr
    assert not report.exists()
