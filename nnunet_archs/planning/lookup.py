"""Planners by name, as ``-pl`` takes them: ours (``PLANNERS``), ``nnUNetPlannerCustom`` made for any network,
or any of nnU-Net's own experiment planners."""
from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional

from nnunet_archs.errors import UserError
from nnunet_archs.planning.custom import CUSTOM_PLANNER, custom_planner
from nnunet_archs.planning.planners import PLANNERS, ArchitecturePresetPlanner


def nnunet_planner_names() -> List[str]:
    """The experiment planners that ship with nnU-Net (found by importing its planner modules)."""
    import importlib
    import pkgutil

    import nnunetv2.experiment_planning.experiment_planners as package
    from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import ExperimentPlanner
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        importlib.import_module(module.name)

    def subclasses(cls):
        return {cls.__name__}.union(*(subclasses(c) for c in cls.__subclasses__()))
    return sorted(subclasses(ExperimentPlanner) - set(PLANNERS) - {ArchitecturePresetPlanner.__name__})


def find_planner(name: str, network: Optional[str] = None, kwargs: Optional[str] = None,
                 calibration: Optional[Path] = None, preset: Optional[str] = None,
                 gpu_memory_target: Optional[float] = None):
    """A planner class by name; ``nnUNetPlannerCustom`` is made from ``network`` (a registry name or import path),
    ``kwargs`` (JSON), ``calibration``, ``preset`` and ``gpu_memory_target``, which no other planner takes."""
    if name == CUSTOM_PLANNER:
        if network is None:
            raise UserError(f"-pl {CUSTOM_PLANNER} needs --network: an architecture name (nnunet-archs list) or an "
                            f"import path such as my_package.nets.MyUNet")
        return custom_planner(network, kwargs, calibration, preset, gpu_memory_target)
    custom_options = [flag for flag, value in (("--network", network), ("--kwargs", kwargs),
                                               ("--calibration", calibration), ("-preset", preset))
                      if value is not None]
    if custom_options:
        raise UserError(f"{', '.join(custom_options)} {'is' if len(custom_options) == 1 else 'are'} only for -pl "
                        f"{CUSTOM_PLANNER}, not {name}")
    if name in PLANNERS:
        return PLANNERS[name]
    import nnunetv2
    from nnunetv2.utilities.find_class_by_name import recursive_find_python_class
    planner = recursive_find_python_class(os.path.join(nnunetv2.__path__[0], "experiment_planning"), name,
                                          current_module="nnunetv2.experiment_planning")
    if planner is None:
        raise UserError(f"unknown planner {name!r}; choose one of nnunet-archs' {sorted(PLANNERS)}, "
                        f"{CUSTOM_PLANNER} (any network, with --network) or nnU-Net's {nnunet_planner_names()}")
    return planner

