"""Several plannings in the test process, and what each planned (one entry per planner: configuration -> patch,
batch, architecture). The planners' networks are built on the meta device: the estimates only count feature maps,
and real weights would make a ResEnc XL planning instantiate dozens of 100M-parameter networks."""
from __future__ import annotations

from typing import List

import torch

from tests.integration.conftest import NNUNetEnvironment


def plan_all(nnunet: NNUNetEnvironment, specs: List[dict]) -> List[dict]:
    """``specs``: ``{"d": dataset id, "pl": planner, and the planner's options (network, kwargs, calibration,
    preset, gpu_memory_target)}`` each, planned in ``nnunet``'s folders under plans names of their own."""
    from nnunetv2.experiment_planning.plan_and_preprocess_api import plan_experiment_dataset

    from nnunet_archs.planning.lookup import find_planner
    planned = []
    with nnunet.variables():
        for index, spec in enumerate(specs):
            options = {key: spec.get(key) for key in ("network", "kwargs", "calibration", "preset",
                                                      "gpu_memory_target")}
            planner = find_planner(spec["pl"], **options)
            with torch.device("meta"):
                plans, _ = plan_experiment_dataset(spec["d"], planner, spec.get("gpu_memory_target"),
                                                   overwrite_plans_name=f"in_process_{index}")
            planned.append({name: {"patch_size": c["patch_size"], "batch_size": c["batch_size"],
                                   "architecture": c["architecture"]}
                            for name, c in plans["configurations"].items() if "patch_size" in c})
    return planned
