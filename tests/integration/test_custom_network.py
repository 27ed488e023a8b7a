"""Bring your own network, end to end: a class defined in the tests (``custom_net.BottleneckResUNet``, without
``compute_conv_feature_map_size``) goes through the commands of the README's "Benchmark your own network":
``nnunet-archs check`` (on the built-in anisotropic 3D configuration and a random one), ``calibrate`` and
``plan_and_preprocess -pl nnUNetPlannerCustom``, then stock ``nnUNetv2_train``, ``nnUNetv2_predict`` and
``nnUNetv2_evaluate_folder`` (which import the class by its path)."""
from __future__ import annotations

import json

import pytest

from nnunet_archs.real_plans import ANISOTROPIC_3D
from tests.integration.conftest import DATASET_2D

from tests.integration.conftest import CUSTOM_NETWORK as NETWORK

pytestmark = pytest.mark.slow(25)


def test_custom_network_checked_calibrated_and_planned(nnunet, custom_calibration):
    check = nnunet.run("nnunet-archs", "check", NETWORK, "--builtin", ANISOTROPIC_3D, "--random", "1").stdout
    assert "No check failed; warnings: memory estimate proportional to memory." in check
    assert check.count("PASS  ") == 7 and "-> add compute_conv_feature_map_size" in check

    fit = json.loads(custom_calibration.read_text())["fit"]
    assert fit["kind"] == "activation model" and max(abs(r) for r in fit["residuals"]) < 0.25

    nnunet.run("nnunet-archs", "plan_and_preprocess", "-d", str(DATASET_2D), "-pl", "nnUNetPlannerCustom",
               "--network", NETWORK, "--calibration", str(custom_calibration), "-gpu_memory_target", "0.01",
               "-c", "2d", "-np", "1", "--no_pbar")
    plans_name = "nnUNetBottleneckResUNetMPlans"
    plans = json.loads(nnunet.plans_path(DATASET_2D, plans_name).read_text())
    assert plans["configurations"]["2d"]["architecture"]["network_class_name"] == NETWORK
    assert plans["experiment_planner_used"] == "nnUNetPlannerBottleneckResUNetM"
    # stock nnUNetv2_train, nnUNetv2_predict and evaluation of this network: test_compare.py's study trains it
