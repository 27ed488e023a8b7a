"""The ``nnunet-archs`` command line: nnU-Net's flags, our planners and trainers.

Errors the user can fix (an unknown planner, a missing environment variable, a dataset that does not exist, a
plans file that cannot be read) end with one message on stderr and exit status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import List, Optional

NNUNET_PATHS_HELP = ("see nnU-Net's documentation/setting_up_paths.md, e.g. export nnUNet_raw=/data/nnUNet_raw "
                     "nnUNet_preprocessed=/data/nnUNet_preprocessed nnUNet_results=/data/nnUNet_results")
DEFAULT_CONFIGURATIONS = ["2d", "3d_fullres", "3d_lowres"]
NNUNET_DEFAULT_PROCESSES = {"2d": 8, "3d_fullres": 4, "3d_lowres": 8}


class UsageError(Exception):
    """A problem with the user's input, reported as one line."""


def require_nnunet_paths(*names: str) -> None:
    missing = [n for n in names if not os.environ.get(n)]
    if missing:
        raise UsageError(f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set; {NNUNET_PATHS_HELP}")


def ext_trainers_path() -> str:
    return str(Path(__file__).resolve().parent / "ext_trainers")


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
    from nnunet_archs.planning.planners import ArchitecturePresetPlanner, PLANNERS
    return sorted(subclasses(ExperimentPlanner) - set(PLANNERS) - {ArchitecturePresetPlanner.__name__})


def find_planner(name: str):
    from nnunet_archs.planning.planners import PLANNERS
    if name in PLANNERS:
        return PLANNERS[name]
    import nnunetv2
    from nnunetv2.utilities.find_class_by_name import recursive_find_python_class
    planner = recursive_find_python_class(os.path.join(nnunetv2.__path__[0], "experiment_planning"), name,
                                          current_module="nnunetv2.experiment_planning")
    if planner is None:
        raise UsageError(f"unknown planner {name!r}; choose one of nnunet-archs' {sorted(PLANNERS)} or nnU-Net's "
                         f"{nnunet_planner_names()}")
    return planner


def default_plans_name(planner) -> str:
    import inspect
    return getattr(planner, "default_plans_name", None) or \
        inspect.signature(planner.__init__).parameters["plans_name"].default


def load_plans(path: Path) -> dict:
    """Read and check a plans file: valid JSON, configurations present, every network class importable."""
    import pydoc
    try:
        plans = json.loads(Path(path).read_text())
    except OSError as error:
        raise UsageError(f"cannot read plans file {path}: {error.strerror}")
    except json.JSONDecodeError as error:
        raise UsageError(f"plans file {path} is not valid JSON: {error}")
    if not isinstance(plans, dict) or not isinstance(plans.get("configurations"), dict):
        raise UsageError(f"plans file {path} has no 'configurations' mapping; is it an nnU-Net plans file?")
    for name, configuration in plans["configurations"].items():
        class_name = configuration.get("architecture", {}).get("network_class_name")
        if class_name is not None and pydoc.locate(class_name) is None:
            raise UsageError(f"plans file {path}, configuration {name!r}: network class {class_name!r} cannot be "
                             f"imported (is the package that defines it installed?)")
    return plans


def dataset_name(dataset_id: int) -> str:
    from nnunetv2.utilities.dataset_name_id_conversion import convert_id_to_dataset_name
    try:
        return convert_id_to_dataset_name(dataset_id)
    except RuntimeError:
        raise UsageError(f"no dataset with id {dataset_id} in nnUNet_raw ({os.environ['nnUNet_raw']}) or "
                         f"nnUNet_preprocessed; raw datasets are folders named Dataset{dataset_id:03d}_NAME")


def check_plans_target(path: Path, planner_name: str, overwrite: bool) -> None:
    """Planning updates a plans file written by the same planner (keeping hand-added configurations, as nnU-Net
    does) but never replaces one written by another planner unless asked to."""
    if not path.exists() or overwrite:
        return
    written_by = load_plans(path).get("experiment_planner_used")
    if written_by != planner_name:
        raise UsageError(f"{path} was written by {written_by or 'hand or an unknown planner'}, not {planner_name}; "
                         f"choose another name with -overwrite_plans_name or pass --overwrite_existing_plans")


def plan(args: argparse.Namespace, preprocess: bool) -> None:
    require_nnunet_paths("nnUNet_raw", "nnUNet_preprocessed")
    if args.gpu_memory_target is not None and args.gpu_memory_target <= 0:
        raise UsageError(f"-gpu_memory_target must be > 0 (GB), got {args.gpu_memory_target:g}")
    if os.environ.get("nnUNet_n_proc_DA") == "0":
        # nnU-Net's planner calls torch.set_num_threads(nnUNet_n_proc_DA), which rejects 0 (a training setting)
        os.environ["nnUNet_n_proc_DA"] = "1"
    planner = find_planner(args.pl)
    name = dataset_name(args.d)
    from nnunetv2.experiment_planning.plan_and_preprocess_api import (extract_fingerprint_dataset,
                                                                      plan_experiment_dataset, preprocess_dataset)
    from nnunetv2.paths import nnUNet_preprocessed
    if preprocess:
        extract_fingerprint_dataset(args.d, num_processes=args.np or 1, check_dataset_integrity=args.verify_dataset_integrity,
                                    clean=False, verbose=args.verbose, show_progress_bar=not args.no_pbar)
    elif not (Path(nnUNet_preprocessed) / name / "dataset_fingerprint.json").exists():
        raise UsageError(f"no fingerprint for {name}; run nnunet-archs plan_and_preprocess (or "
                         f"nnUNetv2_extract_fingerprint -d {args.d}) first")
    plans_name = args.overwrite_plans_name or default_plans_name(planner)
    check_plans_target(Path(nnUNet_preprocessed) / name / f"{plans_name}.json", planner.__name__,
                       args.overwrite_existing_plans)
    _, plans_identifier = plan_experiment_dataset(args.d, planner, args.gpu_memory_target,
                                                  overwrite_plans_name=args.overwrite_plans_name)
    print(f"Plans written: {Path(nnUNet_preprocessed) / name / plans_identifier}.json")
    if preprocess:
        processes = [args.np or NNUNET_DEFAULT_PROCESSES.get(c, 4) for c in args.c]
        preprocess_dataset(args.d, plans_identifier, args.c, processes, verbose=args.verbose,
                           show_progress_bar=not args.no_pbar)
        print(f"Train with: nnUNetv2_train {args.d} CONFIGURATION FOLD -p {plans_identifier}")


def list_everything() -> None:
    from nnunet_archs.planning.planners import PLANNERS, RESENC_PRESETS
    from nnunet_archs.registry import VARIANTS
    from nnunet_archs.training.trainers import TRAINERS
    print("Architectures (nnunet-archs profile/compare names):")
    for variant in VARIANTS.values():
        print(f"  {variant.name:<18} {variant.description}")
    print("Planners (-pl):")
    for name, planner in PLANNERS.items():
        print(f"  {name:<24} {planner.architecture.__name__} for {planner.preset_gb:g} GB -> plans "
              f"{planner.default_plans_name}")
    print("  ... and nnU-Net's own: " + ", ".join(nnunet_planner_names()))
    print("Trainers (-tr, with nnUNet_extTrainer=$(nnunet-archs trainers-path)):")
    for name, spec in TRAINERS.items():
        print(f"  {name:<20} {spec.description}")
    print("  nnUNetTrainerBudget   nnUNetTrainer whose schedule NNUNET_ARCHS_EPOCHS/ITERATIONS/... can shorten")
    print("Presets (GPU memory targets, as nnU-Net's ResEnc presets):")
    for preset, (gb, _, _) in RESENC_PRESETS.items():
        print(f"  {preset:<3} {gb:g} GB")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nnunet-archs", description="KiU-Net and UIU-Net for nnU-Net v2.")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, description in (("plan_and_preprocess", "fingerprint, plan and preprocess a dataset (as "
                                                      "nnUNetv2_plan_and_preprocess, with our planners too)"),
                              ("plan_experiment", "plan only; the fingerprint must exist (as "
                                                  "nnUNetv2_plan_experiment)")):
        command = commands.add_parser(name, help=description, description=description)
        command.add_argument("-d", type=int, required=True, help="dataset id")
        command.add_argument("-pl", default="ExperimentPlanner",
                             help="planner: ours (nnUNetPlannerKiUNetM/L/XL, nnUNetPlannerUIUNetM/L/XL) or nnU-Net's")
        command.add_argument("-gpu_memory_target", type=float, default=None, help="GPU memory target in GB")
        command.add_argument("-overwrite_plans_name", default=None, help="name of the plans file to write")
        command.add_argument("--overwrite_existing_plans", action="store_true",
                             help="allow replacing a plans file that another planner wrote")
        command.add_argument("--verbose", action="store_true")
        command.add_argument("--no_pbar", action="store_true")
        if name == "plan_and_preprocess":
            command.add_argument("-c", nargs="+", default=DEFAULT_CONFIGURATIONS, help="configurations to "
                                 "preprocess")
            command.add_argument("-np", type=int, default=None, help="processes for fingerprint and preprocessing")
            command.add_argument("--verify_dataset_integrity", action="store_true")
    commands.add_parser("trainers-path", help="print the folder to put in nnUNet_extTrainer")
    commands.add_parser("list", help="list architectures, planners, trainers and presets")
    showcase = commands.add_parser("showcase", help="DynamicKiUNet next to PlainConvUNet on real nnU-Net "
                                                    "configurations: parameters, output shapes, step time")
    showcase.add_argument("--batch-size", type=int, default=1)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command in ("plan_and_preprocess", "plan_experiment"):
            if getattr(args, "np", None) is not None and args.np < 1:
                raise UsageError(f"-np must be >= 1, got {args.np}")
            plan(args, preprocess=args.command == "plan_and_preprocess")
        elif args.command == "trainers-path":
            print(ext_trainers_path())
        elif args.command == "list":
            list_everything()
        elif args.command == "showcase":
            if args.batch_size < 1:
                raise UsageError(f"--batch-size must be >= 1, got {args.batch_size}")
            from nnunet_archs.showcase import run_showcase
            run_showcase(batch_size=args.batch_size)
    except UsageError as error:
        print(f"nnunet-archs {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
