"""Planning as callable functions (nnU-Net's ``plan_and_preprocess_api`` with our planners): nnU-Net's folders
and datasets, plans files read and checked, a dataset planned and preprocessed, a configuration added to a plans
file. The command line and the study call these; every refusal is a ``UserError``."""
from __future__ import annotations

import inspect
import json
import os
import pydoc
import tempfile
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from nnunet_archs.errors import UserError
from nnunet_archs.files import output_to, read_json, write_json_atomically
from nnunet_archs.planning.memory import check_memory_target

NNUNET_PATHS_HELP = ("see nnU-Net's documentation/setting_up_paths.md, e.g. export nnUNet_raw=/data/nnUNet_raw "
                     "nnUNet_preprocessed=/data/nnUNet_preprocessed nnUNet_results=/data/nnUNet_results")
# nnU-Net's default preprocessing processes per configuration (nnUNetv2_plan_and_preprocess -np)
NNUNET_DEFAULT_PROCESSES = {"2d": 8, "3d_fullres": 4, "3d_lowres": 8}


def require_nnunet_paths(*names: str) -> None:
    missing = [n for n in names if not os.environ.get(n)]
    if missing:
        raise UserError(f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set; {NNUNET_PATHS_HELP}")


def dataset_name(dataset_id: int) -> str:
    """``DatasetXXX_NAME`` of an id, as nnU-Net finds it in nnUNet_raw or nnUNet_preprocessed."""
    from nnunetv2.utilities.dataset_name_id_conversion import convert_id_to_dataset_name
    try:
        return convert_id_to_dataset_name(dataset_id)
    except RuntimeError:
        raise UserError(f"no dataset with id {dataset_id} in nnUNet_raw ({os.environ['nnUNet_raw']}) or "
                        f"nnUNet_preprocessed; raw datasets are folders named Dataset{dataset_id:03d}_NAME") from None


def check_dataset_integrity(raw_folder: Path) -> None:
    """nnU-Net's own integrity check, before any planning or training. What it prints is passed on only when it
    says something: its warnings, or on failure the errors it found (nnU-Net raises with "see the output above")."""
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity
    with tempfile.NamedTemporaryFile("r", suffix=".log") as log:
        try:
            with output_to(Path(log.name)):
                verify_dataset_integrity(str(raw_folder), 1)
        except (AssertionError, RuntimeError, FileNotFoundError) as error:
            found = [line for line in log.read().splitlines() if line.lower().startswith("error")]
            raise UserError(f"dataset {raw_folder.name} failed nnU-Net's integrity check: {error}"
                            + (f" ({'; '.join(found[:3])})" if found else "")) from None
        for line in log.read().splitlines():
            if line.lower().startswith("warning"):
                print(f"nnU-Net's integrity check of {raw_folder.name}: {line}")


def load_plans(path: Path) -> dict:
    """Read and check a plans file: valid JSON, configurations present, every network class importable."""
    plans = read_json(path, "plans file")
    if not isinstance(plans, dict) or not isinstance(plans.get("configurations"), dict):
        raise UserError(f"plans file {path} has no 'configurations' mapping; is it an nnU-Net plans file?")
    for name, configuration in plans["configurations"].items():
        class_name = configuration.get("architecture", {}).get("network_class_name")
        if class_name is not None and pydoc.locate(class_name) is None:
            raise UserError(f"plans file {path}, configuration {name!r}: network class {class_name!r} cannot be "
                            f"imported (is the package that defines it installed?)")
    return plans


def check_plans_target(path: Path, planner_name: str, overwrite: bool) -> None:
    """Planning updates a plans file written by the same planner (keeping hand-added configurations, as nnU-Net
    does) but never replaces one written by another planner unless asked to."""
    if not path.exists() or overwrite:
        return
    written_by = load_plans(path).get("experiment_planner_used")
    if written_by != planner_name:
        raise UserError(f"{path} was written by {written_by or 'hand or an unknown planner'}, not {planner_name}; "
                        f"choose another name with -overwrite_plans_name or pass --overwrite_existing_plans")


def default_plans_name(planner) -> str:
    """The plans name a planner writes unless told otherwise (nnU-Net's ``plans_name`` default)."""
    return getattr(planner, "default_plans_name", None) or \
        inspect.signature(planner.__init__).parameters["plans_name"].default


def plan_dataset(dataset_id: int, planner, gpu_memory_target: Optional[float] = None,
                 plans_name: Optional[str] = None, overwrite_existing_plans: bool = False,
                 preprocess_configurations: Optional[Sequence[str]] = None, processes: Optional[int] = None,
                 verify_dataset_integrity: bool = False, verbose: bool = False, progress_bar: bool = True) -> Path:
    """Plan ``dataset_id`` with ``planner`` (a class: ``lookup.find_planner``) and return the plans file.
    With ``preprocess_configurations`` (nnUNetv2_plan_and_preprocess) the fingerprint is extracted first and those
    configurations preprocessed after; without (nnUNetv2_plan_experiment) the fingerprint must exist."""
    require_nnunet_paths("nnUNet_raw", "nnUNet_preprocessed")
    check_memory_target(gpu_memory_target)
    if processes is not None and processes < 1:
        raise UserError(f"-np must be >= 1, got {processes}")
    if os.environ.get("nnUNet_n_proc_DA") == "0":
        # nnU-Net's planner calls torch.set_num_threads(nnUNet_n_proc_DA), which rejects 0 (a training setting)
        os.environ["nnUNet_n_proc_DA"] = "1"
    name = dataset_name(dataset_id)
    from nnunetv2.experiment_planning.plan_and_preprocess_api import (extract_fingerprint_dataset,
                                                                      plan_experiment_dataset, preprocess_dataset)
    from nnunetv2.paths import nnUNet_preprocessed
    preprocess = preprocess_configurations is not None
    if preprocess:
        extract_fingerprint_dataset(dataset_id, num_processes=processes or 1,
                                    check_dataset_integrity=verify_dataset_integrity, clean=False, verbose=verbose,
                                    show_progress_bar=progress_bar)
    elif not (Path(nnUNet_preprocessed) / name / "dataset_fingerprint.json").exists():
        raise UserError(f"no fingerprint for {name}; run nnunet-archs plan_and_preprocess (or "
                        f"nnUNetv2_extract_fingerprint -d {dataset_id}) first")
    check_plans_target(Path(nnUNet_preprocessed) / name / f"{plans_name or default_plans_name(planner)}.json",
                       planner.__name__, overwrite_existing_plans)
    _, plans_identifier = plan_experiment_dataset(dataset_id, planner, gpu_memory_target,
                                                  overwrite_plans_name=plans_name)
    if preprocess:
        counts: List[int] = [processes or NNUNET_DEFAULT_PROCESSES.get(c, 4) for c in preprocess_configurations]
        preprocess_dataset(dataset_id, plans_identifier, list(preprocess_configurations), counts, verbose=verbose,
                           show_progress_bar=progress_bar)
    return Path(nnUNet_preprocessed) / name / f"{plans_identifier}.json"


def add_configuration(dataset_id: int, plans_name: str, configuration: str, name: str,
                      batch_multiplier: int) -> Tuple[Path, int]:
    """Add ``name`` to a plans file: ``configuration`` inherited with its batch multiplied (the multi-GPU recipe:
    the same batch per GPU). Returns the plans file and the new batch."""
    require_nnunet_paths("nnUNet_preprocessed")
    from nnunetv2.paths import nnUNet_preprocessed
    if batch_multiplier < 1:
        raise UserError(f"--batch-multiplier must be >= 1, got {batch_multiplier}")
    path = Path(nnUNet_preprocessed) / dataset_name(dataset_id) / f"{plans_name}.json"
    plans = load_plans(path)
    if configuration not in plans["configurations"]:
        raise UserError(f"{path} has no configuration {configuration!r}; it has {sorted(plans['configurations'])}")
    batch = plans["configurations"][configuration]["batch_size"] * batch_multiplier
    plans["configurations"][name] = {"inherits_from": configuration, "batch_size": batch}
    write_json_atomically(path, plans)
    return path, batch


def plans_file_record(path: Path, configuration: str):
    """One configuration of a plans file as a ``PlansRecord``, with channels and labels from the dataset.json
    beside it (as in nnUNet_preprocessed/DatasetXXX)."""
    from nnunet_archs.real_plans import PlansRecord
    plans = load_plans(path)
    dataset_json = Path(path).parent / "dataset.json"
    if not dataset_json.exists():
        raise UserError(f"{dataset_json} not found: the channel and label count are read from the dataset.json "
                        f"beside the plans file (as in nnUNet_preprocessed/DatasetXXX)")
    return PlansRecord.from_plans_file(plans, Path(path).stem, configuration, json.loads(dataset_json.read_text()))
