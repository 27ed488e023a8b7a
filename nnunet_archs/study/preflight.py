"""Every check a study makes before it submits anything, and what it decides: where the study reads and writes
(its ``StudyLayout``) and how each network is planned. ``run_study`` calls it, so ``compare``, ``demo`` and
Python callers all get the same guarantees: a study that cannot finish is refused in seconds, not after hours of
training."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from nnunet_archs.doctor import fast_checks, first_failure
from nnunet_archs.errors import UserError
from nnunet_archs.planning.api import check_dataset_integrity, dataset_name, require_nnunet_paths
from nnunet_archs.profiling import require_device
from nnunet_archs.evaluation.labels import label_regions
from nnunet_archs.study.executors import executor_class
from nnunet_archs.study.folder import StudyLayout
from nnunet_archs.study.spec import StudySpec
from nnunet_archs.study.splits import check_splits, training_cases


def layout_for(dataset_folder_name: str, report: Path) -> StudyLayout:
    return StudyLayout(Path(os.environ["nnUNet_raw"]) / dataset_folder_name,
                       Path(os.environ["nnUNet_preprocessed"]) / dataset_folder_name,
                       Path(os.environ["nnUNet_results"]), Path(report).resolve())


def study_planners(architectures: Sequence[str], calibrations: Sequence[Path]) -> Dict[str, List[str]]:
    """``plan_experiment`` arguments per architecture: its own planner for a registry name, nnUNetPlannerCustom
    with its calibration file for the import path of a network of the user's (checked now, before any job)."""
    from nnunet_archs.calibration import Calibration
    from nnunet_archs.custom_networks import resolve_network
    from nnunet_archs.planning.custom import CUSTOM_PLANNER, network_calibration
    from nnunet_archs.planning.planners import planner_name
    from nnunet_archs.registry import VARIANTS
    unknown = [a for a in architectures if a not in VARIANTS and "." not in a]
    if unknown:
        raise UserError(f"unknown architecture(s) {unknown}; choose from {list(VARIANTS)} or give the import path "
                        f"of a network of yours (e.g. my_package.nets.MyUNet)")
    files = {Calibration.load(path).class_path: Path(path) for path in calibrations}
    planners = {}
    for architecture in architectures:
        if architecture in VARIANTS:
            planners[architecture] = ["-pl", planner_name(architecture)]
            continue
        variant = resolve_network(architecture)
        path = files.get(variant.class_path)
        network_calibration(variant, path, architecture)
        planners[architecture] = ["-pl", CUSTOM_PLANNER, "--network", architecture] + \
            (["--calibration", str(path.resolve())] if path is not None else [])
    return planners


def preflight(spec: StudySpec, report: Path, calibrations: Sequence[Path], executor: str, resume: bool,
              overwrite: bool) -> Tuple[StudyLayout, Dict[str, List[str]]]:
    """Check the machine, the networks, the dataset and its split for ``spec``; return the study's layout and the
    planner arguments of each network. Raises ``UserError`` on the first problem, before anything is written."""
    require_nnunet_paths("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")
    if resume and overwrite:
        raise UserError("--resume and --overwrite exclude each other")
    backend = executor_class(executor)
    if backend.assigns_devices:  # the jobs run on this machine (a cluster's nodes have their own devices)
        require_device(spec.device)
    backend.preflight()
    failed = first_failure(fast_checks())
    if failed is not None:  # the environment cannot train: say so now, not inside the first training job
        raise UserError(f"{failed.name}: {failed.message} -> {failed.fix} (nnunet-archs doctor checks the rest)")
    planners = study_planners(spec.architectures, calibrations)
    layout = layout_for(dataset_name(spec.dataset_id), report)
    check_dataset_integrity(layout.raw)
    spec.check_labels(list(label_regions(json.loads((layout.raw / "dataset.json").read_text()))))
    splits_file = layout.preprocessed / "splits_final.json"
    if splits_file.exists():
        check_splits(json.loads(splits_file.read_text()), spec.folds, training_cases(layout.raw), splits_file)
    return layout, planners
