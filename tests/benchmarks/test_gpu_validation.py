"""benchmarks/gpu_validation.py, the one command a GPU machine runs: its CPU path (tiny plans, eager fp32 steps
with nnU-Net's loss and optimizer) end to end, and its checks on a case with a known answer. The script's
nnUNetv2_train part is left out here: plan_and_preprocess with our planners followed by nnUNetv2_train -tr
nnUNetTrainerBudget is what tests/integration/test_pipeline.py runs already."""
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
    result = subprocess.run([sys.executable, str(SCRIPT), "--cpu-smoke", "--parts", "steps", "--repeats", "1",
                             "--output", str(output), "--work-dir", str(work)], capture_output=True, text=True,
                            timeout=900)
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
