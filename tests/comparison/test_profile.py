"""``nnunet-archs profile``: every column, ratios that agree with the raw figures, a real PNG, and bad input."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BUILTIN_2D = "katieliuu/cs231n:nnUNetPlans.json#2d"
COMMAND = [str(Path(sys.executable).parent / "nnunet-archs"), "profile", "--builtin", BUILTIN_2D]


def test_profile_writes_table_json_and_plot(tmp_path):
    result = subprocess.run(COMMAND + ["-a", "PlainConvUNet", "KiUNet", "--patch", "64", "64", "--batch-size", "1",
                                       "--repeats", "1", "--inference", "--sweep", "2", "3", "-o", str(tmp_path)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| KiUNet |" in result.stdout
    profile = json.loads((tmp_path / "profile.json").read_text())
    assert profile["patch"] == [64, 64] and profile["batch_size"] == 1
    for name in ("PlainConvUNet", "KiUNet"):
        row = profile["rows"][name]
        assert set(row) == {"params", "gflops", "estimate", "saved_bytes", "step_s", "inference_s", "step_gflops",
                            "gflop_per_s"}
        assert row["step_gflops"] > 2 * row["gflops"]  # backward costs about twice the forward
        assert row["gflop_per_s"] == pytest.approx(row["step_gflops"] / row["step_s"])
        assert all(value > 0 for value in row.values())
        for column, ratio in profile["ratios"][name].items():
            assert ratio == pytest.approx(row[column] / profile["rows"]["PlainConvUNet"][column])
        assert [point["patch"] for point in profile["sweep"][name]] == [[64, 64], [96, 96]]
    # the overcomplete branch: KiU-Net holds more activations than the U-Net at the same patch
    assert profile["ratios"]["KiUNet"]["saved_bytes"] > 1.2
    png = (tmp_path / "profile.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


@pytest.mark.parametrize("arguments, message", [
    (["--patch", "60", "64"], "must have 2 axes, each divisible by the product of the strides [32, 32]"),
    (["-a", "PlainConvUNet", "TransUNet"], "unknown architecture 'TransUNet'"),
    (["--batch-size", "0"], "--batch-size must be >= 1"),
    (["--builtin", "nope"], "unknown built-in configuration 'nope'"),
])
def test_profile_bad_input(tmp_path, arguments, message):
    command = COMMAND[:2] + (["--builtin", BUILTIN_2D] if "--builtin" not in arguments else []) + arguments
    result = subprocess.run(command + ["-o", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr, result.stderr
