"""``nnunet-archs compare`` end to end on a tiny dataset: two architectures, a few iterations each, a report
with finite Dice, and a rerun that resumes without retraining. Plus the bad input it must reject early."""
from __future__ import annotations

import csv
import json
import math

import pytest

from tests.integration.conftest import DATASET_2D

BUDGET = ["--epochs", "1", "--iterations", "2", "--val-iterations", "1"]


def compare(nnunet, report, *extra, check=True):
    return nnunet.run("nnunet-archs", "compare", "-d", str(DATASET_2D), "-a", "PlainConvUNet", "KiUNet", "-c", "2d",
                      "-gpu_memory_target", "0.1", "-o", str(report), *BUDGET, *extra, check=check)


def test_compare_reports_and_resumes(nnunet):
    report = nnunet.root / "compare_report"
    first = compare(nnunet, report)
    rows = list(csv.DictReader(open(report / "results.csv")))
    assert [r["architecture"] for r in rows] == ["PlainConvUNet", "KiUNet"]
    for row in rows:
        assert all(math.isfinite(float(row[f"dice_{label}"])) for label in ("large", "small", ))
        assert math.isfinite(float(row["mean_dice"])) and float(row["cost_params"]) > 0
        assert row["evaluated_on"] == "test set"
    assert "| KiUNet |" in (report / "results.md").read_text() and "| KiUNet |" in first.stdout
    assert (report / "dice.png").stat().st_size > 5_000 and (report / "profile.png").stat().st_size > 5_000
    commands = (report / "commands.sh").read_text()
    assert "nnUNetv2_train 502 2d 0 -p nnUNetCompare_KiUNet -tr nnUNetTrainerBudget -device cpu" in commands
    state = json.loads((report / "state.json").read_text())

    again = compare(nnunet, report, "--resume")
    assert "train KiUNet: done earlier, skipped" in again.stdout
    assert json.loads((report / "state.json").read_text())["done"]["train:KiUNet"] == state["done"]["train:KiUNet"]
    assert (report / "commands.sh").read_text() == commands  # nothing was run again

    refused = compare(nnunet, report, check=False)
    assert refused.returncode == 2 and "pass --resume" in refused.stderr


def _broken_dataset(nnunet, dataset_id: int, drop: str):
    import shutil
    folder = nnunet.raw / f"Dataset{dataset_id}_Broken{drop.replace('.', '')}"
    shutil.copytree(nnunet.raw_dataset(DATASET_2D), folder)
    target = folder / drop
    if target.is_dir():
        next(target.iterdir()).unlink()
    else:
        target.unlink()
    return dataset_id


@pytest.mark.parametrize("arguments, message", [
    (["-a", "PlainConvUNet", "SwinUNETR"], "unknown architecture(s) ['SwinUNETR']"),
    (["--epochs", "0"], "--epochs must be > 0"),
    (["--minutes", "-1"], "--minutes must be > 0"),
    (["--fold", "7"], "--fold must be one of 0, 1, 2, 3, 4, all"),
])
def test_compare_bad_arguments(nnunet, arguments, message):
    result = nnunet.run("nnunet-archs", "compare", "-d", str(DATASET_2D), *arguments, "-o",
                        str(nnunet.root / "never_written"), check=False)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert not (nnunet.root / "never_written").exists()


@pytest.mark.parametrize("dataset_id, drop, message", [
    (511, "dataset.json", "dataset.json"),
    (512, "labelsTr", "labelsTr"),
])
def test_compare_checks_dataset_integrity_before_training(nnunet, dataset_id, drop, message):
    _broken_dataset(nnunet, dataset_id, drop)
    result = nnunet.run("nnunet-archs", "compare", "-d", str(dataset_id), "-o", str(nnunet.root / f"r{dataset_id}"),
                        *BUDGET, check=False)
    assert result.returncode == 2 and "integrity check" in result.stderr and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
