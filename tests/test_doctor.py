"""``nnunet-archs doctor`` and ``example_dataset``: the mismatched-torchvision failure (simulated) with its fix,
folders unset or not writable, the exit status, ``compare`` stopping on a failed fast check, and the example
dataset refusing an id that is taken."""
from __future__ import annotations

import os

import pytest

from nnunet_archs import doctor
from nnunet_archs.cli import main


def broken_torchvision(name):
    raise RuntimeError("operator torchvision::nms does not exist")


def test_a_torchvision_built_for_another_torch_fails_with_the_install_line(monkeypatch):
    import torch
    monkeypatch.setattr(torch, "__version__", "2.13.0+cpu")
    finding = doctor.check_torchvision(broken_torchvision)
    assert finding.status is doctor.Status.FAIL and "torchvision is not built for this torch" in finding.message
    assert "operator torchvision::nms does not exist" in finding.message and "nnUNetv2_train" in finding.message
    assert finding.fix == ('install the matching pair from one index: pip install "torch==2.13.0" '
                           '"torchvision==0.28.*" --index-url https://download.pytorch.org/whl/cpu')
    assert doctor.first_failure(doctor.fast_checks(broken_torchvision)) is not None


def test_the_installed_pair_and_versions_pass():
    assert {f.status for f in doctor.fast_checks()} == {doctor.Status.PASS}
    assert doctor.torchvision_pair("2.14.1+cu130") == "0.29"


def test_folders_unset_warn_and_unwritable_fail(tmp_path, monkeypatch):
    monkeypatch.delenv("nnUNet_raw", raising=False)
    unset = doctor.check_folder("nnUNet_raw")
    assert unset.status is doctor.Status.NEEDED and "export nnUNet_raw=" in unset.fix
    (tmp_path / "a_file").write_text("not a folder")
    monkeypatch.setenv("nnUNet_raw", str(tmp_path / "a_file"))
    assert doctor.check_folder("nnUNet_raw").status is doctor.Status.FAIL
    monkeypatch.setenv("nnUNet_raw", str(tmp_path / "new"))  # its parent is writable: nnU-Net creates it
    assert doctor.check_folder("nnUNet_raw").status is doctor.Status.PASS and not (tmp_path / "new").exists()


def test_doctor_exits_1_only_on_a_failure_and_changes_nothing(tmp_path, monkeypatch, capsys):
    for name in doctor.NNUNET_FOLDERS:
        monkeypatch.setenv(name, str(tmp_path / name))
    monkeypatch.delenv("nnUNet_extTrainer", raising=False)
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    # the quick start trains with one of our trainer names: what it needs is marked so, with what needs it
    assert "NEEDED nnUNet_extTrainer" in out and "-tr nnUNetTrainerBudget_seed0 of the quick start" in out
    assert "PASS   torch and torchvision" in out and "NEEDED: the commands named need it" in out
    assert out.rstrip().endswith("set nnUNet_extTrainer before the commands named (the quick start needs them; "
                                 "nnunet-archs demo needs none).")
    assert sorted(os.listdir(tmp_path)) == []  # the folders were checked, not made
    monkeypatch.setenv("nnUNet_extTrainer", doctor.check_ext_trainer().fix.split("=", 1)[1])
    assert main(["doctor"]) == 0 and "NEEDED" not in capsys.readouterr().out.split("(FAIL:")[0]
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("nnUNet_results", str(tmp_path / "file"))
    assert main(["doctor"]) == 1 and "FAIL   nnUNet_results" in capsys.readouterr().out


def test_compare_stops_on_a_failed_fast_check_before_anything_runs(tmp_path, monkeypatch, capsys):
    for name in doctor.NNUNET_FOLDERS:
        monkeypatch.setenv(name, str(tmp_path))
    monkeypatch.setattr("nnunet_archs.study.preflight.fast_checks", lambda: doctor.fast_checks(broken_torchvision))
    assert main(["compare", "-d", "502", "-o", str(tmp_path / "report")]) == 2
    error = capsys.readouterr().err
    assert "torch and torchvision: torch" in error and "nnunet-archs doctor checks the rest" in error
    assert not (tmp_path / "report").exists()


def test_example_dataset_refuses_a_taken_id_and_needs_nnunet_raw(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("nnUNet_raw", raising=False)
    assert main(["example_dataset", "-d", "7"]) == 2 and "nnUNet_raw is not set" in capsys.readouterr().err
    monkeypatch.setenv("nnUNet_raw", str(tmp_path))
    (tmp_path / "Dataset007_Mine").mkdir()
    assert main(["example_dataset", "-d", "7", "--2d"]) == 2
    assert "-d 7 is taken in" in capsys.readouterr().err and sorted(os.listdir(tmp_path)) == ["Dataset007_Mine"]
    assert main(["example_dataset", "-d", "8", "--2d"]) == 0
    assert (tmp_path / "Dataset008_KiUDemo2D" / "dataset.json").exists()
    assert len(list((tmp_path / "Dataset008_KiUDemo2D" / "imagesTr").iterdir())) == 40


@pytest.mark.parametrize("value", ["0", "1000"])
def test_example_dataset_ids_are_nnunets(tmp_path, monkeypatch, capsys, value):
    monkeypatch.setenv("nnUNet_raw", str(tmp_path))
    assert main(["example_dataset", "-d", value]) == 2 and "between 1 and 999" in capsys.readouterr().err
