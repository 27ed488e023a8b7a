"""The device a study and our predict use when none is given: CUDA when torch sees a GPU (a stand-in for
torch.cuda.is_available here), else the CPU; on SLURM what the jobs ask for; on --resume the study's. Checked on the
job commands ``compare`` builds, without training anything."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nnunet_archs.cli import main
from nnunet_archs.cli.parser import build_parser
from nnunet_archs.errors import UserError
from nnunet_archs.study.device import study_device
from nnunet_archs.study.driver import StudyOutcome
from nnunet_archs.study.folder import StudyFolder
from nnunet_archs.study.jobs import build_jobs
from tests.study.test_jobs import PLANNERS, layout, spec


@pytest.fixture(params=[True, False], ids=["gpu", "no_gpu"])
def gpu_visible(request, monkeypatch) -> bool:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: request.param)
    return request.param


def started_study(tmp_path, monkeypatch, *arguments):
    """``compare`` through the command line up to the point where it would start the study: the spec and the
    keywords it hands to ``run_study``."""
    started = {}

    def record(spec, report, options, calibrations, resume, overwrite, **keywords):
        started.update(spec=spec, **keywords)
        return StudyOutcome(None, None, [])

    monkeypatch.setattr("nnunet_archs.study.driver.run_study", record)
    assert main(["compare", "-d", "501", "-a", "PlainConvUNet", "KiUNet", "-o", str(tmp_path / "report"),
                 *arguments]) == 0
    return started


def test_compare_trains_and_predicts_on_cuda_when_a_gpu_is_visible(tmp_path, monkeypatch, gpu_visible):
    started = started_study(tmp_path, monkeypatch, "--epochs", "2")
    expected = "cuda" if gpu_visible else "cpu"
    assert started["spec"].device == expected
    assert ("GPU is visible" if gpu_visible else "no CUDA GPU") in started["device_reason"]
    jobs = [j for j in build_jobs(started["spec"], layout(tmp_path, True), PLANNERS) if j.kind in ("train", "predict")]
    assert {j.kind for j in jobs} == {"train", "predict"}
    for job in jobs:
        assert job.command[job.command.index("-device") + 1] == expected, job.name
    assert all(job.gpus == (1 if gpu_visible else 0) for job in jobs)


def test_a_given_device_wins_and_profile_and_calibrate_stay_on_the_cpu(tmp_path, monkeypatch, gpu_visible):
    assert started_study(tmp_path, monkeypatch, "--device", "cpu", "--epochs", "2")["spec"].device == "cpu"
    parser = build_parser()
    for command in (["profile"], ["calibrate", "KiUNet"]):
        assert parser.parse_args(command).device == "cpu"
    assert parser.parse_args(["predict", "-i", "x", "-o", "y", "-d", "1", "-c", "2d", "-device", "cpu"]).device == "cpu"


def test_on_slurm_the_jobs_gpus_decide_and_without_them_the_device_must_be_given(tmp_path, gpu_visible):
    choice = study_device(None, "slurm", 2, tmp_path / "report", resume=False)
    assert choice.device == "cuda" and "ask for 2 GPU(s)" in choice.reason
    with pytest.raises(UserError, match="give -device cuda .* or -device cpu"):
        study_device(None, "slurm", None, tmp_path / "report", resume=False)
    assert study_device("cpu", "slurm", None, tmp_path / "report", resume=False).device == "cpu"


def test_a_resumed_study_keeps_its_device(tmp_path, gpu_visible):
    report = tmp_path / "report"
    report.mkdir()
    StudyFolder(report).write_spec(spec(device="cuda"))
    choice = study_device(None, "local", None, report, resume=True)
    assert choice.device == "cuda" and str(Path(report) / "study.json") in choice.reason
    assert study_device(None, "local", None, report, resume=False).device == ("cuda" if gpu_visible else "cpu")
