"""The footing of networks planned by plans files (``nnunet-archs costs``, a study's footing table): planned patch
and batch, parameters, forward FLOPs per patch, the planner's memory estimate in GB and the ResEnc preset it is
closest to.

The estimate in GB puts a plan on the scale of nnU-Net's ResEnc M preset (``memory.estimated_gigabytes``: 680 M
elements at batch 2 for 8 GB in 3D, 135 M at batch 12 in 2D), corrected by the network's measured estimate per
byte. A new method is best compared with the ResEnc preset of similar GPU memory (nnU-Net's
documentation/resenc_presets.md); the closest preset is the one whose target (8, 24, 40 GB) is nearest on a log
scale. Networks are built on PyTorch's meta device: nothing is allocated or computed.
"""
from __future__ import annotations

import json
import pydoc
from pathlib import Path
from typing import Dict, List, Sequence

import torch
from torch.utils.flop_counter import FlopCounterMode

from nnunet_archs.architectures.zoo import has_deep_supervision
from nnunet_archs.calibration import Calibration
from nnunet_archs.errors import UserError
from nnunet_archs.planning.memory import ESTIMATE_PER_BYTE, estimated_gigabytes, nearest_preset


def plan_costs(plans: dict, configuration: str, num_input_channels: int, num_classes: int,
               calibration=None) -> dict:
    """``calibration``: the network's ``nnunet-archs calibrate`` result, for a class we have not measured."""
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
    entry = plans["configurations"][configuration]
    architecture = entry["architecture"]
    patch, batch = list(entry["patch_size"]), int(entry["batch_size"])
    with torch.device("meta"):
        net = get_network_from_plans(architecture["network_class_name"], architecture["arch_kwargs"],
                                     architecture["_kw_requires_import"], num_input_channels, num_classes,
                                     allow_init=False, deep_supervision=has_deep_supervision(
                                         pydoc.locate(architecture["network_class_name"])))
        x = torch.empty(1, num_input_channels, *patch)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        net(x)
    if calibration is not None and calibration.model is not None:  # a class without the estimate method
        estimate = float(calibration.model(patch, architecture["arch_kwargs"]))
    else:
        estimate = float(net.compute_conv_feature_map_size(patch))
    per_byte = calibration.estimate_per_byte if calibration is not None else \
        ESTIMATE_PER_BYTE.get(architecture["network_class_name"], 1.0)
    estimated_gb = estimated_gigabytes(estimate, batch, len(patch), per_byte)
    return {"class": architecture["network_class_name"], "patch": patch, "batch": batch,
            "params": sum(p.numel() for p in net.parameters()), "gflops_per_patch": counter.get_total_flops() / 1e9,
            "estimate_per_sample": estimate, "estimated_gb": estimated_gb,
            "closest_preset": nearest_preset(estimated_gb)}


def study_costs(preprocessed_folder: Path, architectures: List[str], plans_names: List[str],
                configuration: str, calibrations: Sequence[Path] = ()) -> Dict[str, dict]:
    if len(architectures) != len(plans_names):
        raise UserError("--architectures and --plans must have the same length")
    dataset = json.loads((preprocessed_folder / "dataset.json").read_text())
    channels = len(dataset.get("channel_names", dataset.get("modality", {})))
    from nnunetv2.utilities.label_handling.label_handling import LabelManager
    classes = LabelManager(dataset["labels"], dataset.get("regions_class_order")).num_segmentation_heads
    by_class = {c.class_path: c for c in map(Calibration.load, calibrations)}
    costs = {}
    for architecture, plans_name in zip(architectures, plans_names):
        plans = json.loads((preprocessed_folder / f"{plans_name}.json").read_text())
        class_path = plans["configurations"][configuration]["architecture"]["network_class_name"]
        costs[architecture] = plan_costs(plans, configuration, channels, classes, by_class.get(class_path))
    return costs
