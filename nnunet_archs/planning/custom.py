"""``-pl nnUNetPlannerCustom``: the variant planner of ``planners.py`` for any network, made on the fly.

nnU-Net's ``plan_experiment_dataset`` takes a planner class, so ``nnunet-archs plan_experiment -pl
nnUNetPlannerCustom --network NET [--kwargs JSON] [--calibration FILE] [-preset M|L|XL] [-gpu_memory_target GB]``
builds one: ``NET`` is a registry name (``KiUNet``, ``PlainConvUNet``, ``ResEncUNet``, ...) or an import path;
its memory model comes from the calibration file, or for the classes we measured, from ``ESTIMATE_PER_BYTE``.
A registry name thus gives exactly the planner (name, plans identifier and plans) of ``PLANNERS``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Type

from nnunet_archs.calibration import Calibration, CalibrationError
from nnunet_archs.custom_networks import resolve_network
from nnunet_archs.planning.memory import ESTIMATE_PER_BYTE, check_memory_target, check_preset, nearest_preset
from nnunet_archs.planning.planners import ArchitecturePresetPlanner, make_planner
from nnunet_archs.registry import ArchitectureVariant

CUSTOM_PLANNER = "nnUNetPlannerCustom"


def choose_preset(preset: Optional[str], gpu_memory_target: Optional[float]) -> str:
    """The ResEnc preset whose reference values are scaled: the one named, else the one whose memory is nearest
    the target (in ratio: 8 -> M, 24 -> L, 40 -> XL, as nnU-Net's presets), else M."""
    if preset is not None:
        return check_preset(preset)
    check_memory_target(gpu_memory_target)
    return "M" if gpu_memory_target is None else nearest_preset(gpu_memory_target)


def network_calibration(variant: ArchitectureVariant, calibration_path: Optional[Path] = None,
                        network: Optional[str] = None, kwargs_json: Optional[str] = None) -> Optional[Calibration]:
    """The calibration a network is planned with: the file given (checked to fit the network as used now), none
    for a class with a built-in estimate per byte; a network with neither is refused with the command that makes
    one (``network`` and ``kwargs_json``: how the user named it)."""
    if calibration_path is not None:
        calibration = Calibration.load(calibration_path)
        calibration.check_matches(variant, calibration_path)
        return calibration
    if variant.class_path not in ESTIMATE_PER_BYTE:
        name = network or variant.class_path
        kwargs = f" --kwargs '{kwargs_json}'" if kwargs_json else ""
        raise CalibrationError(f"{name} has no calibration: run nnunet-archs calibrate {name}{kwargs} -o "
                               f"calibration.json, then pass --calibration calibration.json (its class has no "
                               f"built-in calibration: only {sorted(c.split('.')[-1] for c in ESTIMATE_PER_BYTE)} do)")
    return None


def custom_planner(network: str, kwargs_json: Optional[str] = None, calibration: Optional[Path] = None,
                   preset: Optional[str] = None, gpu_memory_target: Optional[float] = None
                   ) -> Type[ArchitecturePresetPlanner]:
    """The planner class for ``network``; raises a ``UserError`` (NetworkError, CalibrationError) with a message
    for the user when the network or its calibration cannot be used."""
    variant = resolve_network(network, kwargs_json)
    preset = choose_preset(preset, gpu_memory_target)
    loaded = network_calibration(variant, calibration, network, kwargs_json)
    if loaded is None:
        return make_planner(variant, preset)
    return make_planner(variant, preset, loaded.estimate_per_byte, loaded.model)
