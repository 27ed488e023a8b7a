"""Bad input to nnunet-archs ends with one clear message and exit status 2, never a traceback (through ``main`` in
the test process: ``NNUNetEnvironment.run_in_process``)."""
from __future__ import annotations

import json

import pytest

from tests.integration.conftest import DATASET_3D


def fails_with(result, *fragments: str) -> None:
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def test_unknown_planner_lists_the_valid_ones(nnunet):
    result = nnunet.run_in_process("plan_experiment", "-d", str(DATASET_3D), "-pl", "KiUNetPlanner")
    fails_with(result, "unknown planner 'KiUNetPlanner'", "nnUNetPlannerKiUNetM", "nnUNetPlannerUIUNetXL",
               "nnUNetPlannerResEncM", "ExperimentPlanner")


@pytest.mark.parametrize("variable", ["nnUNet_raw", "nnUNet_preprocessed"])
def test_unset_nnunet_folder_gives_guidance(nnunet, variable):
    result = nnunet.run_in_process("plan_and_preprocess", "-d", str(DATASET_3D), "-pl", "nnUNetPlannerKiUNetM",
                                   extra_env={variable: ""})
    fails_with(result, f"{variable} is not set", "setting_up_paths")


def test_missing_dataset(nnunet):
    fails_with(nnunet.run_in_process("plan_and_preprocess", "-d", "999", "-pl", "nnUNetPlannerKiUNetM"),
               "no dataset with id 999")


@pytest.mark.parametrize("target", ["0", "-4"])
def test_gpu_target_must_be_positive(nnunet, target):
    fails_with(nnunet.run_in_process("plan_experiment", "-d", str(DATASET_3D), "-pl", "nnUNetPlannerKiUNetM",
                                     "-gpu_memory_target", target), "-gpu_memory_target must be > 0")


def _write_plans(nnunet, name: str, text: str):
    path = nnunet.plans_path(DATASET_3D, name)
    path.write_text(text)
    return path


@pytest.mark.parametrize("name, text, message", [
    ("Malformed", "{not json", "is not valid JSON"),
    ("NotPlans", "[1, 2]", "has no 'configurations'"),
    ("Unimportable", json.dumps({"configurations": {"3d_fullres": {"architecture": {
        "network_class_name": "nowhere.NoNet", "arch_kwargs": {}}}}}), "'nowhere.NoNet' cannot be imported"),
    ("Foreign", json.dumps({"configurations": {}, "experiment_planner_used": "ExperimentPlanner"}),
     "was written by ExperimentPlanner"),
])
def test_existing_plans_file_is_checked_and_never_replaced(nnunet, fingerprint_3d, name, text, message):
    path = _write_plans(nnunet, name, text)
    result = nnunet.run_in_process("plan_experiment", "-d", str(DATASET_3D), "-pl", "nnUNetPlannerKiUNetM",
                                   "-overwrite_plans_name", name)
    fails_with(result, message)
    assert path.read_text() == text


def test_replacing_another_planners_plans_needs_the_flag(nnunet, fingerprint_3d):
    path = _write_plans(nnunet, "Replaceable",
                        json.dumps({"configurations": {}, "experiment_planner_used": "ExperimentPlanner"}))
    result = nnunet.run_in_process("plan_experiment", "-d", str(DATASET_3D), "-pl", "nnUNetPlannerKiUNetM",
                                   "-overwrite_plans_name", "Replaceable", "--overwrite_existing_plans",
                                   "-gpu_memory_target", "0.1")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert json.loads(path.read_text())["experiment_planner_used"] == "nnUNetPlannerKiUNetM"
