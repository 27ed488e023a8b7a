"""Run several planners in one process and print what they planned, as JSON (one entry per planner:
configuration -> patch, batch, architecture). The tests run it as a subprocess of their nnU-Net
environment (nnU-Net reads its folders from the environment when imported). The planners' networks are built
on the meta device: the estimates only count feature maps, and real weights would make a ResEnc XL planning
instantiate dozens of 100M-parameter networks.

    python -m tests.integration.plan_in_process '[{"d": 511, "pl": "nnUNetPlannerResEncM"},
        {"d": 511, "pl": "nnUNetPlannerCustom", "network": "ResEncUNet", "preset": "M"}]'
"""
from __future__ import annotations

import argparse
import json
import sys

import torch


def main() -> None:
    from nnunetv2.experiment_planning.plan_and_preprocess_api import plan_experiment_dataset

    from nnunet_archs.cli import find_planner
    specs = json.loads(sys.argv[1])
    planned = []
    for index, spec in enumerate(specs):
        options = argparse.Namespace(**{key: spec.get(key) for key in
                                        ("network", "kwargs", "calibration", "preset", "gpu_memory_target")})
        planner = find_planner(spec["pl"], options)
        with torch.device("meta"):
            plans, _ = plan_experiment_dataset(spec["d"], planner, spec.get("gpu_memory_target"),
                                               overwrite_plans_name=f"in_process_{index}")
        planned.append({name: {"patch_size": c["patch_size"], "batch_size": c["batch_size"],
                               "architecture": c["architecture"]}
                        for name, c in plans["configurations"].items() if "patch_size" in c})
    print(json.dumps(planned))


if __name__ == "__main__":
    main()
