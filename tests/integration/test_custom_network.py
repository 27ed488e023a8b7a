"""Bring your own network, end to end: a class defined in the tests (``custom_net.BottleneckResUNet``, without
``compute_conv_feature_map_size``) goes through the commands of the README's "Benchmark your own network":
``nnunet-archs check`` (on the built-in anisotropic 3D configuration and a random one), ``calibrate`` and
``plan_experiment -pl nnUNetPlannerCustom`` (through the CLI's ``main`` in the test process); stock
``nnUNetv2_train`` and ``nnUNetv2_predict`` import the class by its path in test_compare.py's study."""
from __future__ import annotations

import json

import pytest

from nnunet_archs.real_plans import ANISOTROPIC_3D
from tests.integration.conftest import DATASET_3D

from tests.integration.conftest import CUSTOM_NETWORK as NETWORK

pytestmark = pytest.mark.slow(25)


def test_custom_network_checked_calibrated_and_planned(nnunet, custom_calibration, fingerprint_3d):
    result = nnunet.run_in_process("check", NETWORK, "--builtin", ANISOTROPIC_3D, "--random", "1")
    check = result.stdout
    assert result.returncode == 0, check + result.stderr
    assert "No check failed; warnings: memory estimate proportional to memory." in check
    assert check.count("PASS  ") == 7 and "-> add compute_conv_feature_map_size" in check

    fit = json.loads(custom_calibration.read_text())["fit"]
    assert fit["kind"] == "activation model" and max(abs(r) for r in fit["residuals"]) < 0.25

    planned = nnunet.run_in_process("plan_experiment", "-d", str(DATASET_3D), "-pl", "nnUNetPlannerCustom", "--network",
                                    NETWORK, "--calibration", str(custom_calibration), "-gpu_memory_target", "0.01")
    assert planned.returncode == 0, planned.stderr[-2000:]
    plans_name = "nnUNetBottleneckResUNetMPlans"
    plans = json.loads(nnunet.plans_path(DATASET_3D, plans_name).read_text())
    for configuration in ("2d", "3d_fullres"):
        assert plans["configurations"][configuration]["architecture"]["network_class_name"] == NETWORK
    assert plans["experiment_planner_used"] == "nnUNetPlannerBottleneckResUNetM"
    # stock nnUNetv2_train, nnUNetv2_predict and evaluation of this network: test_compare.py's study trains it
