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


def profile_record(args: argparse.Namespace):
    from nnunet_archs.real_plans import ANISOTROPIC_3D, PlansRecord, find_record
    if args.plans is None:
        return find_record(args.builtin or ANISOTROPIC_3D)
    plans = load_plans(args.plans)
    dataset_json = args.plans.parent / "dataset.json"
    if not dataset_json.exists():
        raise UsageError(f"{dataset_json} not found: profile reads the channel and label count from the "
                         f"dataset.json beside the plans file (as in nnUNet_preprocessed/DatasetXXX)")
    return PlansRecord.from_plans_file(plans, args.plans.stem, args.configuration, json.loads(dataset_json.read_text()))


def profile(args: argparse.Namespace) -> None:
    from nnunet_archs.comparison.profile import (DEFAULT_ARCHITECTURES, default_patch, format_table, run_profile,
                                                 write_outputs)
    from nnunet_archs.registry import get_variant
    from nnunet_archs.profiling import AUTOCAST_DTYPES
    if args.device.startswith("cuda") and not __import__("torch").cuda.is_available():
        raise UsageError("--device cuda was given but no CUDA GPU is available")
    if args.amp and args.device.split(":")[0] not in AUTOCAST_DTYPES:
        raise UsageError(f"--amp measures autocast on {' or '.join(AUTOCAST_DTYPES)}, not {args.device!r}")
    for name, value in (("--batch-size", args.batch_size), ("--repeats", args.repeats)):
        if value is not None and value < 1:
            raise UsageError(f"{name} must be >= 1, got {value}")
    if any(b < 1 for b in args.sweep):
        raise UsageError(f"--sweep bottleneck sizes must be >= 1, got {args.sweep}")
    architectures = args.architectures or DEFAULT_ARCHITECTURES
    try:
        for name in architectures:
            get_variant(name)
        record = profile_record(args)
        patch = default_patch(record, args.device, args.patch)
        record.check_patch(patch)
    except ValueError as error:
        raise UsageError(str(error))
    batch = args.batch_size or (record.batch_size if args.device.startswith("cuda") else 2)
    result = run_profile(record, architectures, patch, batch, args.repeats, args.inference, args.sweep, args.device,
                         amp=args.amp, compile=args.compile)
    print(format_table(result))
    paths = write_outputs(result, args.output)
    print(f"\nWritten: {paths['table']}, {paths['json']}, {paths['png']}")


def compare(args: argparse.Namespace) -> None:
    from nnunet_archs.comparison.compare import RECIPES, Budget, StepFailed
    from nnunet_archs.comparison.demo import prepare_report_folder, run_comparison
    require_nnunet_paths("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")
    unknown = [a for a in args.architectures if a not in RECIPES]
    if unknown:
        raise UsageError(f"unknown architecture(s) {unknown}; choose from {list(RECIPES)}")
    if len(set(args.architectures)) != len(args.architectures):
        raise UsageError(f"architectures must be distinct, got {args.architectures}")
    for name in ("epochs", "iterations", "val_iterations", "minutes"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be > 0, got {value:g}")
    if args.gpu_memory_target <= 0:
        raise UsageError(f"-gpu_memory_target must be > 0 (GB), got {args.gpu_memory_target:g}")
    if args.resume and args.overwrite:
        raise UsageError("--resume and --overwrite exclude each other")
    if args.fold not in ("0", "1", "2", "3", "4", "all"):
        raise UsageError(f"--fold must be one of 0, 1, 2, 3, 4, all, got {args.fold!r}")
    name = dataset_name(args.d)
    raw = Path(os.environ["nnUNet_raw"]) / name
    check_dataset_integrity(raw)
    if args.fold == "all" and not ((raw / "imagesTs").is_dir() and (raw / "labelsTs").is_dir()):
        raise UsageError(f"--fold all leaves no validation cases to evaluate: {raw} needs imagesTs and labelsTs")
    report = args.output or Path(f"nnunet_archs_compare_{args.d}")
    try:
        prepare_report_folder(report, args.resume, args.overwrite)
    except FileExistsError as error:
        raise UsageError(str(error))
    budget = Budget(args.epochs, args.iterations, args.val_iterations, args.minutes, args.mirroring)
    try:
        run_comparison(args.d, args.architectures, args.configuration, budget, args.gpu_memory_target, report,
                       args.device, args.np, args.fold)
    except StepFailed as error:
        raise UsageError(str(error))


def check_dataset_integrity(raw_folder: Path) -> None:
    """nnU-Net's own integrity check, before any planning or training."""
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity
    try:
        verify_dataset_integrity(str(raw_folder), 1)
    except (AssertionError, RuntimeError, FileNotFoundError) as error:
        raise UsageError(f"dataset {raw_folder.name} failed nnU-Net's integrity check: {error}")


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
    from nnunet_archs.real_plans import load_records
    print("Built-in configurations (profile --builtin):")
    for record in load_records():
        print(f"  {record.id}")
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
    profile = commands.add_parser("profile", help="parameters, FLOPs, memory and speed of several architectures "
                                                  "at one plans configuration (table, JSON, PNG)")
    source = profile.add_mutually_exclusive_group()
    source.add_argument("--plans", type=Path, help="an nnU-Net plans file (dataset.json is read beside it)")
    source.add_argument("--builtin", default=None, help="a built-in configuration id (see nnunet-archs list); "
                        "default: an anisotropic 3D configuration from a public nnU-Net plans file")
    profile.add_argument("-c", "--configuration", default="3d_fullres", help="configuration in --plans")
    profile.add_argument("-a", "--architectures", nargs="+", default=None, help="architecture names (see list); "
                         "ratios are to the first")
    profile.add_argument("--patch", type=int, nargs="+", default=None,
                         help="patch size (default: planned on a GPU, the smallest planned topology on a CPU)")
    profile.add_argument("--batch-size", type=int, default=None, help="default: planned on a GPU, 2 on a CPU")
    profile.add_argument("--repeats", type=int, default=3, help="timed training steps per architecture")
    profile.add_argument("--inference", action="store_true", help="also time one inference patch")
    profile.add_argument("--sweep", type=int, nargs="*", default=[2, 3],
                         help="bottleneck sizes (voxels per axis) for the patch-size sweep; none to skip")
    profile.add_argument("--device", default="cpu", help="cpu or cuda")
    profile.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                         help="autocast as nnU-Net trains (fp16 + GradScaler on CUDA, bf16 on CPU as the stand-in); "
                              "default: on for cuda, off for cpu")
    profile.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                         help="torch.compile the networks as nnU-Net does; default: on for cuda, off for cpu (where "
                              "inductor takes minutes per network)")
    profile.add_argument("-o", "--output", type=Path, default=Path("nnunet_archs_profile"))
    compare = commands.add_parser("compare", help="plan, train, predict and evaluate several architectures on one "
                                                  "dataset with the same budget; write a report folder")
    compare.add_argument("-d", type=int, required=True, help="dataset id (nnU-Net raw format)")
    compare.add_argument("-a", "--architectures", nargs="+", default=["PlainConvUNet", "KiUNet", "UIUNet"])
    compare.add_argument("-c", "--configuration", default="3d_fullres")
    compare.add_argument("--epochs", type=int, default=None, help="epochs per architecture (nnU-Net: 1000)")
    compare.add_argument("--iterations", type=int, default=None, help="training iterations per epoch (250)")
    compare.add_argument("--val-iterations", type=int, default=None, help="validation iterations per epoch (50)")
    compare.add_argument("--minutes", type=float, default=None, help="wall-clock training budget per architecture")
    compare.add_argument("--mirroring", action="store_true", help="keep nnU-Net's mirroring augmentation and TTA")
    compare.add_argument("-gpu_memory_target", type=float, default=8, help="GB, the same for every planner")
    compare.add_argument("-o", "--output", type=Path, default=None, help="report folder (default: "
                         "nnunet_archs_compare_<dataset id>)")
    compare.add_argument("--resume", action="store_true", help="continue a comparison in an existing folder")
    compare.add_argument("--overwrite", action="store_true", help="start an existing report folder over")
    compare.add_argument("-f", "--fold", default="0", help="fold to train (0-4, or 'all' to train on every case; "
                         "then a labelled imagesTs/labelsTs test set is needed)")
    compare.add_argument("-device", default="cpu", help="cpu or cuda")
    compare.add_argument("-np", type=int, default=1, help="processes for preprocessing and export")
    demo = commands.add_parser("demo", help="the comparison on a built-in dataset (what `make demo` runs)")
    demo.add_argument("--work-dir", type=Path, default=Path("nnunet_archs_demo"),
                      help="folder for the dataset, nnU-Net's folders and the report")
    demo.add_argument("--resume", action="store_true")
    demo.add_argument("--overwrite", action="store_true")
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
        elif args.command == "profile":
            profile(args)
        elif args.command == "compare":
            compare(args)
        elif args.command == "demo":
            from nnunet_archs.comparison.demo import run_demo
            try:
                run_demo(args.work_dir, args.resume, args.overwrite)
            except FileExistsError as error:
                raise UsageError(str(error))
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
