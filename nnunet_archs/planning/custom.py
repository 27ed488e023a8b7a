"""``-pl nnUNetPlannerCustom``: the variant planner of ``planners.py`` for any network, made on the fly.

nnU-Net's ``plan_experiment_dataset`` takes a planner class, so ``nnunet-archs plan_experiment -pl
nnUNetPlannerCustom --network NET [--kwargs JSON] [--calibration FILE] [-preset M|L|XL] [-gpu_memory_target GB]``
builds one: ``NET`` is a registry name (``KiUNet``, ``PlainConvUNet``, ``ResEncUNet``, ...) or an import path;
its memory model comes from the calibration file, or for the classes we measured, from ``ESTIMATE_PER_BYTE``.
A registry name thus gives exactly the planner (name, plans identifier and plans) of ``PLANNERS``.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Type

from nnunet_archs.calibration import Calibration, CalibrationError
from nnunet_archs.custom_networks import resolve_network
from nnunet_archs.planning.planners import ESTIMATE_PER_BYTE, RESENC_PRESETS, ArchitecturePresetPlanner, make_planner

CUSTOM_PLANNER = "nnUNetPlannerCustom"


def choose_preset(preset: Optional[str], gpu_memory_target: Optional[float]) -> str:
    """The ResEnc preset whose reference values are scaled: the one named, else the one whose memory is nearest
    the target (in ratio: 8 -> M, 24 -> L, 40 -> XL, as nnU-Net's presets), else M."""
    if preset is not None:
        if preset not in RESENC_PRESETS:
            raise ValueError(f"-preset must be one of {list(RESENC_PRESETS)}, got {preset!r}")
        return preset
    if gpu_memory_target is None:
        return "M"
    return min(RESENC_PRESETS, key=lambda p: abs(math.log(RESENC_PRESETS[p][0] / gpu_memory_target)))


def custom_planner(network: str, kwargs_json: Optional[str] = None, calibration: Optional[Path] = None,
                   preset: Optional[str] = None, gpu_memory_target: Optional[float] = None
                   ) -> Type[ArchitecturePresetPlanner]:
    """The planner class for ``network``; raises ``ValueError`` (NetworkError, CalibrationError) with a message
    for the user when the network or its calibration cannot be used."""
    variant = resolve_network(network, kwargs_json)
    preset = choose_preset(preset, gpu_memory_target)
    if calibration is not None:
        loaded = Calibration.load(calibration)
        loaded.check_matches(variant, calibration)
        return make_planner(variant, preset, loaded.estimate_per_byte, loaded.model)
    if variant.class_path not in ESTIMATE_PER_BYTE:
        kwargs = f" --kwargs '{kwargs_json}'" if kwargs_json else ""
        raise CalibrationError(f"{variant.class_path} has no built-in calibration: run nnunet-archs calibrate "
                               f"{network}{kwargs} -o calibration.json, then plan with --calibration calibration.json")
    return make_planner(variant, preset)
