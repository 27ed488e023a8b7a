"""``nnunet-archs profile``: every column, ratios that agree with the raw figures, a real PNG, the bf16-autocast
step (``--amp``, the CPU stand-in for nnU-Net's fp16 training), and bad input."""
from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from nnunet_archs.cli import main

BUILTIN_2D = "katieliuu/cs231n:nnUNetPlans.json#2d"
COMMAND = [str(Path(sys.executable).parent / "nnunet-archs"), "profile", "--builtin", BUILTIN_2D]


SMALL = ["-a", "PlainConvUNet", "KiUNet", "--patch", "64", "64", "--batch-size", "1", "--repeats", "1"]


def run_profile(output: Path, *arguments: str) -> dict:
    """The command in this process (its start-up, importing torch and nnU-Net, is what costs most)."""
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main(COMMAND[1:] + SMALL + list(arguments) + ["-o", str(output)]) == 0
    assert "| KiUNet |" in stdout.getvalue()
    return json.loads((output / "profile.json").read_text())


@pytest.fixture(scope="module")
def fp32_profile(tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("profile")
    run_profile(output, "--inference", "--sweep", "2", "3")
    return output


def test_profile_writes_table_json_and_plot(fp32_profile):
    tmp_path = fp32_profile
    profile = json.loads((tmp_path / "profile.json").read_text())
    assert profile["patch"] == [64, 64] and profile["batch_size"] == 1
    assert profile["step"] == "fp32, SGD (Nesterov), eager"  # nnU-Net's CPU step
    assert "training step: fp32, SGD (Nesterov), eager" in (tmp_path / "profile.md").read_text()
    for name in ("PlainConvUNet", "KiUNet"):
        row = profile["rows"][name]
        assert set(row) == {"params", "gflops", "estimate", "saved_bytes", "state_bytes", "step_s", "inference_s",
                            "step_gflops", "gflop_per_s"}
        assert row["step_gflops"] > 2 * row["gflops"]  # backward costs about twice the forward
        assert row["gflop_per_s"] == pytest.approx(row["step_gflops"] / row["step_s"])
        assert all(value > 0 for value in row.values())
        assert row["state_bytes"] == 2 * 4 * row["params"]  # fp32 parameters and SGD's momentum buffers
        for column, ratio in profile["ratios"][name].items():
            assert ratio == pytest.approx(row[column] / profile["rows"]["PlainConvUNet"][column])
        assert [point["patch"] for point in profile["sweep"][name]] == [[64, 64], [96, 96]]
    # the overcomplete branch: KiU-Net holds more activations than the U-Net at the same patch
    assert profile["ratios"]["KiUNet"]["saved_bytes"] > 1.2
    png = (tmp_path / "profile.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


def test_amp_profiles_a_bf16_autocast_step(fp32_profile, tmp_path):
    """``--amp`` on CPU: bf16 autocast, so the saved float maps halve while parameters and optimizer state stay
    fp32, as under nnU-Net's fp16 autocast on a GPU."""
    profile = run_profile(tmp_path, "--amp", "--sweep")
    assert profile["step"] == "bfloat16 autocast, SGD (Nesterov), eager"
    fp32 = json.loads((fp32_profile / "profile.json").read_text())
    for name, row in profile["rows"].items():
        assert row["state_bytes"] == fp32["rows"][name]["state_bytes"]
        assert 0.4 < row["saved_bytes"] / fp32["rows"][name]["saved_bytes"] < 0.75, name


@pytest.mark.parametrize("arguments, message", [
    (["--patch", "60", "64"], "must have 2 axes, each divisible by the product of the strides [32, 32]"),
    (["-a", "PlainConvUNet", "TransUNet"], "unknown architecture 'TransUNet'"),
    (["--batch-size", "0"], "--batch-size must be >= 1"),
    (["--builtin", "nope"], "unknown built-in configuration 'nope'"),
    (["--device", "mps", "--amp"], "--amp measures autocast on cuda or cpu, not 'mps'"),
])
def test_profile_bad_input(tmp_path, capsys, arguments, message):
    """In this process (the console script's exit status: the test below); argparse's own refusals exit."""
    command = COMMAND[1:2] + (["--builtin", BUILTIN_2D] if "--builtin" not in arguments else []) + arguments
    try:
        status = main(command + ["-o", str(tmp_path)])
    except SystemExit as exit_:
        status = exit_.code
    assert status == 2 and message in capsys.readouterr().err


def test_the_console_script_exits_with_status_2_and_no_traceback(tmp_path):
    result = subprocess.run(COMMAND + ["--batch-size", "0", "-o", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 2 and "--batch-size must be >= 1" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
