"""benchmarks/gpu_validation.py, the one command a GPU machine runs: its CPU path (tiny plans, eager fp32 steps
with nnU-Net's loss and optimizer at the M preset, Swin UNETR's beside ResEnc's in the zoo part, inference per case
through nnU-Net's predictor, the calibration at planning sizes) end to end, its time budget, and its checks on a case
with a known answer. Left out here: the large part (the L preset), the compiled part (inductor takes minutes per
network on a CPU; tests/architectures/test_compile.py compiles both nets) and nnUNetv2_train (what
tests/integration/test_pipeline.py runs already)."""
from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_validation.py"


def load_script():
    spec = importlib.util.spec_from_file_location("gpu_validation", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow(40)
def test_cpu_smoke_plans_and_measures_every_network(tmp_path):
    output, work = tmp_path / "validation.json", tmp_path / "work"
    # the zoo part with Swin UNETR alone: the one without deep supervision (MedNeXt and SegResNet take the path of
    # the steps part); the large part left out: the same step at the L plans, whose growth with the target is
    # tests/integration/test_planners.py's test_more_memory_never_shrinks_the_configuration (18 s saved)
    result = subprocess.run([sys.executable, str(SCRIPT), "--cpu-smoke", "--parts", "steps", "zoo", "inference",
                             "calibration", "--zoo", "SwinUNETR", "--repeats", "1", "--output", str(output),
                             "--work-dir", str(work)], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(output.read_text())
    names = ["PlainConvUNet", "ResEncUNet", "KiUNet", "UIUNet"]
    assert report["cpu_smoke"] and [row["network"] for row in report["steps"]] == names
    assert all(f"| {name} |" in result.stdout for name in names)
    for row in report["steps"]:
        planner = load_script().NETWORKS[row["network"]]
        plans = json.loads(next(work.glob(f"nnUNet_preprocessed/*/validation_{planner}.json")).read_text())
        planned = plans["configurations"]["3d_fullres"]
        assert (row["patch"], row["batch"]) == (planned["patch_size"], planned["batch_size"])
        assert math.isfinite(row["first_loss"]) and row["step_s"] > 0
        assert row["peak_bytes"] > row["state_bytes"] > 0 and row["peak_over_target"] > 0
    by_name = {row["network"]: row for row in report["steps"]}
    assert by_name["PlainConvUNet"]["step_x_PlainConvUNet"] == 1
    assert by_name["ResEncUNet"]["peak_over_target_vs_ResEncUNet"] == 1
    inference = {row["network"]: row for row in report["inference"]}
    assert list(inference) == names and all(row["seconds"] > 0 and row["mirroring"] for row in inference.values())
    assert all(row["max_memory_allocated_bytes"] is None for row in inference.values())  # nothing a CPU cannot measure
    calibration = {row["network"]: row for row in report["calibration"]}
    assert calibration["ResEncUNet"]["estimate_per_byte"] == 1  # the reference against itself
    assert all(len(row["points"]) == 2 and row["estimate_per_byte"] > 0 for row in calibration.values())
    zoo = {row["network"]: row for row in report["zoo"]}
    assert list(zoo) == ["ResEncUNet", "SwinUNETR"]  # ResEnc's row: the steps part's
    assert zoo["ResEncUNet"]["first_loss"] == by_name["ResEncUNet"]["first_loss"]
    assert zoo["SwinUNETR"]["patch"][0] % 32 == 0 and math.isfinite(zoo["SwinUNETR"]["first_loss"])
    assert zoo["SwinUNETR"]["peak_over_target_vs_ResEncUNet"] > 0 and zoo["SwinUNETR"]["reserved_bytes"] is None
    assert "| SwinUNETR |" in result.stdout
    assert report["skipped"] == [] and report["seconds"] > 0


def test_the_time_budget_skips_what_would_not_fit_and_says_so():
    budget = load_script().Budget(0)
    assert budget.run("steps KiUNet", lambda: 1) is None and budget.skipped == ["steps KiUNet"]
    assert load_script().Budget(None).run("anything", lambda: 7) == 7


def test_checks_flag_nonfinite_and_diverging_compiled_losses():
    rows = [{"network": "KiUNet", "compile": False, "step": "eager", "first_loss": 1.0, "peak_bytes": 2 ** 30,
             "step_s": 1.0},
            {"network": "KiUNet", "compile": True, "step": "compiled", "first_loss": 1.5, "peak_bytes": 2 ** 30,
             "step_s": 0.5},
            {"network": "UIUNet", "compile": False, "step": "eager", "first_loss": float("nan"), "peak_bytes": 2 ** 30,
             "step_s": 1.0}]
    failures = load_script().check_and_relate(rows, gb=8)
    assert len(failures) == 2 and "compiled first loss 1.5000 vs eager 1.0000" in failures[0]
    assert "UIUNet" in failures[1] and rows[0]["peak_over_target"] == 1 / 8
