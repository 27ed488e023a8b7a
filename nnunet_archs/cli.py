"""The ``nnunet-archs`` command line: nnU-Net's flags, our planners and trainers.

Errors the user can fix (an unknown planner, a missing environment variable, a dataset that does not exist, a
plans file that cannot be read) end with one message on stderr and exit status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Dict, List, Optional

NNUNET_PATHS_HELP = ("see nnU-Net's documentation/setting_up_paths.md, e.g. export nnUNet_raw=/data/nnUNet_raw "
                     "nnUNet_preprocessed=/data/nnUNet_preprocessed nnUNet_results=/data/nnUNet_results")
DEFAULT_CONFIGURATIONS = ["2d", "3d_fullres", "3d_lowres"]
NNUNET_DEFAULT_PROCESSES = {"2d": 8, "3d_fullres": 4, "3d_lowres": 8}


class UsageError(Exception):
    """A problem with the user's input, reported as one line."""


class StudyIncomplete(Exception):
    """Some of a study's jobs failed: the rest finished and the report says what is missing (exit status 1)."""


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


def find_planner(name: str, args: Optional[argparse.Namespace] = None):
    """A planner class by name; ``nnUNetPlannerCustom`` is made from ``args`` (--network, --kwargs,
    --calibration, -preset, -gpu_memory_target)."""
    from nnunet_archs.planning.custom import CUSTOM_PLANNER, custom_planner
    from nnunet_archs.planning.planners import PLANNERS
    custom_options = [f for f, v in (("--network", "network"), ("--kwargs", "kwargs"),
                                     ("--calibration", "calibration"), ("-preset", "preset"))
                      if getattr(args, v, None) is not None]
    if name == CUSTOM_PLANNER:
        if getattr(args, "network", None) is None:
            raise UsageError(f"-pl {CUSTOM_PLANNER} needs --network: an architecture name (nnunet-archs list) or an "
                             f"import path such as my_package.nets.MyUNet")
        try:
            return custom_planner(args.network, args.kwargs, args.calibration, args.preset, args.gpu_memory_target)
        except ValueError as error:
            raise UsageError(str(error))
    if custom_options:
        raise UsageError(f"{', '.join(custom_options)} {'is' if len(custom_options) == 1 else 'are'} only for -pl "
                         f"{CUSTOM_PLANNER}, not {name}")
    if name in PLANNERS:
        return PLANNERS[name]
    import nnunetv2
    from nnunetv2.utilities.find_class_by_name import recursive_find_python_class
    planner = recursive_find_python_class(os.path.join(nnunetv2.__path__[0], "experiment_planning"), name,
                                          current_module="nnunetv2.experiment_planning")
    if planner is None:
        raise UsageError(f"unknown planner {name!r}; choose one of nnunet-archs' {sorted(PLANNERS)}, "
                         f"{CUSTOM_PLANNER} (any network, with --network) or nnU-Net's {nnunet_planner_names()}")
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
    planner = find_planner(args.pl, args)
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
    from nnunet_archs.real_plans import ANISOTROPIC_3D, find_record
    if args.plans is None:
        return find_record(args.builtin or ANISOTROPIC_3D)
    return plans_file_record(args.plans, args.configuration)


def plans_file_record(path: Path, configuration: str):
    """One configuration of a plans file, with channels and labels from the dataset.json beside it."""
    from nnunet_archs.real_plans import PlansRecord
    plans = load_plans(path)
    dataset_json = path.parent / "dataset.json"
    if not dataset_json.exists():
        raise UsageError(f"{dataset_json} not found: the channel and label count are read from the dataset.json "
                         f"beside the plans file (as in nnUNet_preprocessed/DatasetXXX)")
    return PlansRecord.from_plans_file(plans, path.stem, configuration, json.loads(dataset_json.read_text()))


def contract_records(args: argparse.Namespace):
    """The real configurations check and calibrate use: --plans/-c, --builtin IDs, or the built-in three."""
    from nnunet_archs.real_plans import find_record, showcase_records
    if args.plans is not None:
        return [plans_file_record(args.plans, args.configuration)]
    return [find_record(i) for i in args.builtin] if args.builtin else showcase_records()


def network_variant(args: argparse.Namespace):
    from nnunet_archs.custom_networks import resolve_network
    try:
        return resolve_network(args.network, args.kwargs)
    except ValueError as error:
        raise UsageError(str(error))


def check(args: argparse.Namespace) -> bool:
    from nnunet_archs.contract.suite import default_cases, passed, run_contract
    if args.random < 0:
        raise UsageError(f"--random must be >= 0, got {args.random}")
    variant = network_variant(args)
    try:
        records = contract_records(args)
    except ValueError as error:
        raise UsageError(str(error))
    cases = default_cases(records, args.random)
    print(f"Checking {variant.class_path}{f' with {variant.kwargs}' if variant.kwargs else ''} on "
          f"{len(records)} plans configuration(s) and {args.random} random one(s):")
    results = []
    for result in run_contract(variant, cases, records, with_ddp=args.ddp):
        print(result.line(), flush=True)
        results.append(result)
    failed = [r.name for r in results if r.status.name == "FAIL"]
    warned = [r.name for r in results if r.status.name == "WARN"]
    if failed:
        print(f"{len(failed)} check(s) failed: {', '.join(failed)}")
    else:
        print(f"No check failed{'; warnings: ' + ', '.join(warned) if warned else ''}.")
    return passed(results)


def calibrate(args: argparse.Namespace) -> None:
    from nnunet_archs.calibration import calibrate as run_calibration
    variant = network_variant(args)
    if args.device.startswith("cuda") and not __import__("torch").cuda.is_available():
        raise UsageError("--device cuda was given but no CUDA GPU is available")
    if any(b < 1 for b in args.bottlenecks):
        raise UsageError(f"--bottlenecks must be >= 1 voxel, got {args.bottlenecks}")
    output = args.output or Path(f"calibration_{variant.name}.json")
    if output.exists() and not args.overwrite:
        raise UsageError(f"{output} exists; choose another -o or pass --overwrite")
    try:
        records = contract_records(args)
    except ValueError as error:
        raise UsageError(str(error))
    print(f"Calibrating {variant.class_path} against ResidualEncoderUNet ({args.precision}, {args.device}):")
    print("| configuration | patch | bytes/sample (MB) | ResEnc (MB) | estimate (M) | measured |")
    print("|---|---|---:|---:|---:|---|")

    def progress(point) -> None:
        estimate = f"{point.estimate / 1e6:.1f}" if point.estimate is not None else "-"
        print(f"| {point.configuration} | {'x'.join(map(str, point.patch))} | {point.bytes / 1e6:.1f} | "
              f"{point.reference_bytes / 1e6:.1f} | {estimate} | {point.how} |", flush=True)
    try:
        result = run_calibration(variant, records, args.bottlenecks, args.precision, args.device, progress)
    except ValueError as error:
        raise UsageError(str(error))
    if result.model is None:
        print(f"Estimate per byte: {result.estimate_per_byte:.3f}x ResidualEncoderUNet's")
    else:
        print(f"No compute_conv_feature_map_size; fitted memory model, in ResidualEncoderUNet's estimate units: "
              f"{result.model.feature_volume:.3g} x sum over stages of voxels x features + "
              f"{result.model.voxels:.3g} x patch voxels")
    print("Residuals (predicted / measured bytes - 1): " + ", ".join(f"{r:+.1%}" for r in result.residuals))
    result.save(output)
    kwargs = f" --kwargs '{args.kwargs}'" if args.kwargs else ""
    print(f"Written: {output}\nPlan with: nnunet-archs plan_experiment -d ID -pl nnUNetPlannerCustom --network "
          f"{args.network}{kwargs} --calibration {output}")


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


def study_spec(args: argparse.Namespace, dataset_id: int, report: Path):
    """The StudySpec of ``compare``'s arguments; every problem as one UsageError before anything runs."""
    from nnunet_archs.registry import VARIANTS
    from nnunet_archs.study.spec import Budget, StudySpec, study_id_for
    unknown = [a for a in args.architectures if a not in VARIANTS and "." not in a]
    if unknown:
        raise UsageError(f"unknown architecture(s) {unknown}; choose from {list(VARIANTS)} or give the import path "
                         f"of a network of yours (e.g. my_package.nets.MyUNet)")
    if len(args.folds) < 2:
        raise UsageError(f"--folds needs at least 2 folds, got {args.folds}: a study reports the spread over folds "
                         f"and ensembles the fold models on the test set (train a single fold with nnUNetv2_train)")
    budget = Budget(args.epochs, args.iterations, args.val_iterations, args.minutes, args.mirroring)
    try:
        return StudySpec(dataset_id, args.architectures, args.configuration, args.folds, args.baseline, args.metrics,
                         args.nsd_tolerance, args.seed, args.bootstrap, budget, args.gpu_memory_target, args.device,
                         False if args.no_compile else None, args.num_gpus, args.scale_batch, study_id_for(report))
    except ValueError as error:
        raise UsageError(str(error))


def study_planners(architectures: List[str], calibrations: List[Path]) -> Dict[str, List[str]]:
    """``plan_experiment`` arguments per architecture: its own planner for a registry name, nnUNetPlannerCustom
    with its calibration file for the import path of a network of the user's (checked now, before any job)."""
    from nnunet_archs.calibration import Calibration, CalibrationError
    from nnunet_archs.custom_networks import resolve_network
    from nnunet_archs.planning.custom import CUSTOM_PLANNER
    from nnunet_archs.planning.planners import ESTIMATE_PER_BYTE, planner_name
    from nnunet_archs.registry import VARIANTS
    try:
        by_class = {c.class_path: (c, p) for p in calibrations for c in [Calibration.load(p)]}
        planners = {}
        for architecture in architectures:
            if architecture in VARIANTS:
                planners[architecture] = ["-pl", planner_name(architecture)]
                continue
            variant = resolve_network(architecture)
            planners[architecture] = ["-pl", CUSTOM_PLANNER, "--network", architecture]
            if variant.class_path in by_class:
                calibration, path = by_class[variant.class_path]
                calibration.check_matches(variant, path)
                planners[architecture] += ["--calibration", str(Path(path).resolve())]
            elif variant.class_path not in ESTIMATE_PER_BYTE:
                raise CalibrationError(f"{architecture} has no calibration: run nnunet-archs calibrate {architecture} "
                                       f"-o calibration.json, then pass --calibration calibration.json")
    except ValueError as error:  # NetworkError, CalibrationError
        raise UsageError(str(error))
    return planners


def execution_options(args: argparse.Namespace):
    from nnunet_archs.study.driver import ExecutionOptions
    from nnunet_archs.study.executors import SlurmOptions, parse_slurm_time
    for name in ("max_parallel", "max_retries", "slurm_gpus_per_job", "slurm_cpus_per_job"):
        value = getattr(args, name)
        if value is not None and value < (0 if name == "max_retries" else 1):
            raise UsageError(f"--{name.replace('_', '-')} must be >= {0 if name == 'max_retries' else 1}, got {value}")
    extra = {}
    for option in args.slurm_option:
        key, sep, value = option.partition("=")
        if not sep or not key:
            raise UsageError(f"--slurm-option takes KEY=VALUE (an sbatch option without its dashes), got {option!r}")
        extra[key.lstrip("-")] = value
    try:
        time_min = parse_slurm_time(args.slurm_time) if args.slurm_time else None
    except ValueError as error:
        raise UsageError(str(error))
    slurm = SlurmOptions(args.slurm_partition, args.slurm_gpus_per_job, args.slurm_cpus_per_job, args.slurm_mem,
                         time_min, args.slurm_account, args.slurm_qos, extra)
    return ExecutionOptions(args.executor, args.max_parallel, args.max_retries, args.np, not args.no_wait, slurm)


def compare(args: argparse.Namespace) -> None:
    from nnunet_archs.study.driver import layout_for, run_study
    from nnunet_archs.study.splits import check_splits, training_cases
    require_nnunet_paths("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")
    if args.resume and args.overwrite:
        raise UsageError("--resume and --overwrite exclude each other")
    if args.device.startswith("cuda") and not __import__("torch").cuda.is_available():
        raise UsageError("-device cuda was given but no CUDA GPU is available")
    if args.executor == "slurm" and shutil.which("sbatch") is None:
        raise UsageError("--executor slurm needs SLURM's sbatch on PATH (run the driver on a login node)")
    report = args.output or Path(f"nnunet_archs_compare_{args.d}")
    spec = study_spec(args, args.d, report)
    options = execution_options(args)
    planners = study_planners(spec.architectures, args.calibration)
    name = dataset_name(args.d)
    layout = layout_for(name, report)
    check_dataset_integrity(layout.raw)
    splits_file = layout.preprocessed / "splits_final.json"
    if splits_file.exists():
        try:
            check_splits(json.loads(splits_file.read_text()), spec.folds, training_cases(layout.raw), splits_file)
        except ValueError as error:
            raise UsageError(str(error))
    try:
        results = run_study(spec, layout, planners, options, args.resume, args.overwrite,
                            calibrations=[str(p.resolve()) for p in args.calibration])
    except (FileExistsError, ValueError) as error:
        raise UsageError(str(error))
    if results is not None:
        print("\n" + results.read_text())
        print(f"Report: {results} (also results.csv, results.tex, per_case.csv, per_case_*.png, pareto_*.png); "
              f"commands: {layout.report / 'commands.sh'}")
    from nnunet_archs.study.report import failures
    failed = failures(layout)
    if failed:
        raise StudyIncomplete(f"{len(failed)} job(s) failed; the report marks the missing results:\n  "
                              + "\n  ".join(failed) + "\nfix the cause and run the same command with --resume")


def report(args: argparse.Namespace) -> None:
    from nnunet_archs.study.report import build_report
    folder = args.folder
    for needed in ("study.json", "layout.json"):
        if not (folder / needed).exists():
            raise UsageError(f"{folder} is not a study report folder: {needed} is missing")
    try:
        results = build_report(folder).write()
    except ValueError as error:
        raise UsageError(str(error))
    print(results.read_text())


def evaluate(args: argparse.Namespace) -> None:
    from nnunet_archs.study.metrics import evaluate_folder, write_rows
    from nnunet_archs.study.spec import METRICS
    unknown = [m for m in args.metrics if m not in METRICS]
    if unknown:
        raise UsageError(f"unknown metric(s) {unknown}; choose from {list(METRICS)}")
    if not args.nsd_tolerance > 0:
        raise UsageError(f"--nsd-tolerance must be > 0 (mm), got {args.nsd_tolerance:g}")
    for folder in (args.reference, args.prediction):
        if not folder.is_dir():
            raise UsageError(f"{folder} is not a folder")
    try:
        rows = evaluate_folder(args.reference, args.prediction, json.loads(args.dataset_json.read_text()),
                               args.architecture, args.fold, args.metrics, args.nsd_tolerance)
    except ValueError as error:
        raise UsageError(str(error))
    write_rows(rows, args.output)
    print(f"{len(rows)} rows written to {args.output}")


def splits(args: argparse.Namespace) -> None:
    from nnunet_archs.study.splits import ensure_splits
    require_nnunet_paths("nnUNet_raw", "nnUNet_preprocessed")
    from nnunetv2.paths import nnUNet_preprocessed, nnUNet_raw
    name = dataset_name(args.d)
    try:
        path = ensure_splits(Path(nnUNet_raw) / name, Path(nnUNet_preprocessed) / name, args.folds)
    except ValueError as error:
        raise UsageError(str(error))
    print(f"Cross-validation split: {path}")


def add_configuration(args: argparse.Namespace) -> None:
    """Seed 003's multi-GPU recipe: a configuration that inherits the planned one with a larger batch."""
    require_nnunet_paths("nnUNet_preprocessed")
    from nnunetv2.paths import nnUNet_preprocessed
    from nnunet_archs.study.runner import write_json_atomically
    if args.batch_multiplier < 1:
        raise UsageError(f"--batch-multiplier must be >= 1, got {args.batch_multiplier}")
    path = Path(nnUNet_preprocessed) / dataset_name(args.d) / f"{args.plans_name}.json"
    plans = load_plans(path)
    if args.c not in plans["configurations"]:
        raise UsageError(f"{path} has no configuration {args.c!r}; it has {sorted(plans['configurations'])}")
    batch = plans["configurations"][args.c]["batch_size"] * args.batch_multiplier
    plans["configurations"][args.name] = {"inherits_from": args.c, "batch_size": batch}
    write_json_atomically(path, plans)
    print(f"{path}: configuration {args.name} = {args.c} with batch size {batch}")


def costs(args: argparse.Namespace) -> None:
    from nnunet_archs.study.costs import study_costs
    require_nnunet_paths("nnUNet_preprocessed")
    from nnunetv2.paths import nnUNet_preprocessed
    if len(args.architectures) != len(args.plans):
        raise UsageError("--architectures and --plans must have the same length")
    result = study_costs(Path(nnUNet_preprocessed) / dataset_name(args.d), args.architectures, args.plans,
                         args.configuration, args.calibration)
    from nnunet_archs.study.runner import write_json_atomically
    write_json_atomically(args.output, result)
    print(json.dumps(result, indent=1))


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
        print(f"  {name:<30} {planner.variant.name} for {planner.preset_gb:g} GB -> plans "
              f"{planner.default_plans_name}")
    print("  nnUNetPlannerCustom            any network: --network NAME_OR_IMPORT_PATH [--kwargs JSON] "
          "[--calibration FILE] [-preset M|L|XL]")
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
                             help="planner: ours (nnUNetPlannerKiUNetM/L/XL, nnUNetPlannerUIUNetM/L/XL), "
                                  "nnUNetPlannerCustom (any network: --network) or nnU-Net's")
        command.add_argument("-gpu_memory_target", type=float, default=None, help="GPU memory target in GB")
        command.add_argument("--network", default=None, help="nnUNetPlannerCustom: an architecture name (see "
                             "list) or the import path of a network class")
        command.add_argument("--kwargs", default=None, help="nnUNetPlannerCustom: JSON object of keyword "
                             "overrides for the network, recorded in the plans' arch_kwargs")
        command.add_argument("--calibration", type=Path, default=None, help="nnUNetPlannerCustom: the file "
                             "nnunet-archs calibrate wrote (not needed for the built-in architectures)")
        command.add_argument("-preset", default=None, help="nnUNetPlannerCustom: M, L or XL, the ResEnc preset "
                             "whose memory to fill (default: the one nearest -gpu_memory_target, else M)")
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
    compare = commands.add_parser(
        "compare", help="a cross-validated study: plan every architecture at the same GPU memory target, train every "
                        "fold, evaluate per case (Dice, NSD, HD95) and test against a baseline; a report folder",
        description="Plans every architecture with its own planner at the same GPU memory target, trains each fold "
                    "of nnU-Net's splits_final.json with stock nnUNetv2_train, evaluates every case with the fold "
                    "model that did not train on it, and reports paired statistics against the baseline. Jobs run "
                    "locally (one training per GPU) or on SLURM; --resume continues after anything was killed.")
    compare.add_argument("-d", type=int, required=True, help="dataset id (nnU-Net raw format)")
    compare.add_argument("-a", "--architectures", nargs="+", default=["PlainConvUNet", "KiUNet", "UIUNet"],
                         help="architecture names (nnunet-archs list) or import paths of networks of yours")
    compare.add_argument("--calibration", type=Path, nargs="+", default=[], help="calibration files (nnunet-archs "
                         "calibrate) of the networks given by import path")
    compare.add_argument("-c", "--configuration", default="3d_fullres")
    compare.add_argument("-f", "--folds", type=int, nargs="+", default=[0, 1, 2, 3, 4],
                         help="folds of splits_final.json to train (default: all five; at least 2)")
    compare.add_argument("--baseline", default=None, help="architecture the others are tested against (default: "
                                                          "the first)")
    compare.add_argument("--metrics", nargs="+", default=["Dice", "NSD", "HD95"], help="Dice, NSD, HD95; the first is "
                                                                                        "the main table's")
    compare.add_argument("--nsd-tolerance", type=float, default=2.0, help="NSD tolerance in mm (default 2)")
    compare.add_argument("--seed", type=int, default=12345, help="seed of the bootstrap resamples")
    compare.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples (default 2000)")
    compare.add_argument("--epochs", type=int, default=None, help="epochs per training (nnU-Net: 1000)")
    compare.add_argument("--iterations", type=int, default=None, help="training iterations per epoch (250)")
    compare.add_argument("--val-iterations", type=int, default=None, help="validation iterations per epoch (50)")
    compare.add_argument("--minutes", type=float, default=None, help="wall-clock budget per training")
    compare.add_argument("--mirroring", action="store_true", help="keep nnU-Net's mirroring augmentation and TTA")
    compare.add_argument("-gpu_memory_target", type=float, default=8, help="GB, the same for every planner")
    compare.add_argument("-device", default="cpu", help="cpu or cuda")
    compare.add_argument("--no-compile", action="store_true", help="turn torch.compile off (default: nnU-Net's, on "
                                                                   "for CUDA)")
    compare.add_argument("--num-gpus", type=int, default=1, help="GPUs per training (nnUNetv2_train -num_gpus)")
    compare.add_argument("--scale-batch", action="store_true", help="with --num-gpus K: train a configuration that "
                         "inherits the planned one with K times its batch (seed 003's multi-GPU recipe)")
    compare.add_argument("-o", "--output", type=Path, default=None, help="report folder (default: "
                         "nnunet_archs_compare_<dataset id>)")
    compare.add_argument("--resume", action="store_true", help="continue the study in an existing report folder")
    compare.add_argument("--overwrite", action="store_true", help="start an existing study over (removes its report, "
                                                                  "plans and trained models)")
    compare.add_argument("-np", type=int, default=1, help="processes for preprocessing and export")
    execution = compare.add_argument_group("execution")
    execution.add_argument("--executor", choices=["local", "slurm"], default="local",
                           help="local processes (default) or SLURM jobs through submitit")
    execution.add_argument("--max-parallel", type=int, default=None, help="jobs at once (default: one per visible "
                           "GPU with CUDA, else 1); on SLURM the job array's throttle")
    execution.add_argument("--max-retries", type=int, default=2, help="resubmissions of a killed job (a training "
                           "continues from its latest checkpoint)")
    execution.add_argument("--no-wait", action="store_true", help="submit what can start and exit; collect with "
                           "--resume")
    slurm = compare.add_argument_group("SLURM (with --executor slurm)")
    slurm.add_argument("--slurm-partition")
    slurm.add_argument("--slurm-gpus-per-job", type=int, help="GPUs per training job (default: --num-gpus)")
    slurm.add_argument("--slurm-cpus-per-job", type=int)
    slurm.add_argument("--slurm-mem", help="memory per job, as sbatch's --mem (e.g. 64G)")
    slurm.add_argument("--slurm-time", help="wall time per job, as sbatch's --time (minutes or [D-]HH:MM:SS)")
    slurm.add_argument("--slurm-account")
    slurm.add_argument("--slurm-qos")
    slurm.add_argument("--slurm-option", action="append", default=[], metavar="KEY=VALUE",
                       help="any other sbatch option, e.g. --slurm-option constraint=a100 (repeatable)")
    report = commands.add_parser("report", help="recompute the statistics and redraw the report of a study folder "
                                                "from its per-case metrics")
    report.add_argument("folder", type=Path)
    evaluate = commands.add_parser("evaluate", help="per-case Dice, NSD and HD95 of a folder of predictions (a tidy CSV)")
    evaluate.add_argument("--reference", type=Path, required=True, help="folder of reference segmentations")
    evaluate.add_argument("--prediction", type=Path, required=True, help="folder of predicted segmentations")
    evaluate.add_argument("--dataset-json", type=Path, required=True)
    evaluate.add_argument("--architecture", default="prediction", help="value of the architecture column")
    evaluate.add_argument("--fold", default="-", help="value of the fold column")
    evaluate.add_argument("--metrics", nargs="+", default=["Dice", "NSD", "HD95"])
    evaluate.add_argument("--nsd-tolerance", type=float, default=2.0, help="mm")
    evaluate.add_argument("-o", "--output", type=Path, required=True)
    splits = commands.add_parser("splits", help="write nnU-Net's 5-fold splits_final.json of a dataset if it has none, "
                                                "or check it against --folds")
    splits.add_argument("-d", type=int, required=True)
    splits.add_argument("--folds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    add_config = commands.add_parser("add_configuration", help="add a configuration that inherits a planned one with "
                                                               "a multiplied batch size (multi-GPU training)")
    add_config.add_argument("-d", type=int, required=True)
    add_config.add_argument("-plans_name", required=True)
    add_config.add_argument("-c", required=True, help="the planned configuration to inherit from")
    add_config.add_argument("--name", required=True, help="name of the new configuration")
    add_config.add_argument("--batch-multiplier", type=int, required=True)
    costs = commands.add_parser("costs", help="planned patch, batch, parameters, FLOPs and estimated memory of plans")
    costs.add_argument("-d", type=int, required=True)
    costs.add_argument("-c", "--configuration", required=True)
    costs.add_argument("--architectures", nargs="+", required=True)
    costs.add_argument("--plans", nargs="+", required=True, help="plans names, one per architecture")
    costs.add_argument("--calibration", type=Path, nargs="+", default=[], help="calibration files of networks of "
                       "yours (nnunet-archs calibrate)")
    costs.add_argument("-o", "--output", type=Path, required=True)
    demo = commands.add_parser("demo", help="the comparison on a built-in dataset (what `make demo` runs)")
    demo.add_argument("--work-dir", type=Path, default=Path("nnunet_archs_demo"),
                      help="folder for the dataset, nnU-Net's folders and the report")
    demo.add_argument("--resume", action="store_true")
    demo.add_argument("--overwrite", action="store_true")
    for name, description in (("check", "run nnU-Net's network contract on any network class: one line per check "
                                        "with the fix; exit status 1 if one fails"),
                              ("calibrate", "measure a network's activation memory against ResidualEncoderUNet "
                                            "and write the calibration file nnUNetPlannerCustom reads")):
        command = commands.add_parser(name, help=description, description=description)
        command.add_argument("network", help="an architecture name (see list) or the import path of a network "
                             "class taking nnU-Net's PlainConvUNet keywords, e.g. my_package.nets.MyUNet")
        command.add_argument("--kwargs", default=None, help="JSON object of keyword overrides, e.g. "
                             "'{\"pool_type\": \"max\"}'")
        source = command.add_mutually_exclusive_group()
        source.add_argument("--plans", type=Path, help="use this plans file's configuration (-c) instead of the "
                            "built-in 2D, isotropic and anisotropic 3D ones (dataset.json is read beside it)")
        source.add_argument("--builtin", nargs="+", default=None, help="built-in configuration ids (see list)")
        command.add_argument("-c", "--configuration", default="3d_fullres", help="configuration in --plans")
        if name == "check":
            command.add_argument("--random", type=int, default=8, help="random valid configurations to add")
            command.add_argument("--ddp", action="store_true", help="also train 2 processes with DDP (gloo)")
        else:
            command.add_argument("--bottlenecks", type=int, nargs="+", default=[2, 4],
                                 help="patch sizes, as voxels per axis at the lowest resolution")
            command.add_argument("--precision", choices=["autocast", "fp32"], default="autocast",
                                 help="autocast: as nnU-Net trains (fp16 on CUDA, bf16 on CPU)")
            command.add_argument("--device", default="cpu", help="cpu (saved tensors) or cuda (allocator peak)")
            command.add_argument("-o", "--output", type=Path, default=None,
                                 help="calibration file (default: calibration_<class name>.json)")
            command.add_argument("--overwrite", action="store_true", help="replace an existing calibration file")
    commands.add_parser("trainers-path", help="print the folder to put in nnUNet_extTrainer")
    commands.add_parser("list", help="list architectures, planners, trainers and presets")
    showcase = commands.add_parser("showcase", help="DynamicKiUNet next to PlainConvUNet on real nnU-Net "
                                                    "configurations: parameters, output shapes, step time")
    showcase.add_argument("--batch-size", type=int, default=1)
    return parser


# subcommands whose whole work is one function of the parsed arguments
SIMPLE_COMMANDS = {"profile": profile, "calibrate": calibrate, "compare": compare, "report": report,
                   "evaluate": evaluate, "splits": splits, "costs": costs, "add_configuration": add_configuration}


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command in ("plan_and_preprocess", "plan_experiment"):
            if getattr(args, "np", None) is not None and args.np < 1:
                raise UsageError(f"-np must be >= 1, got {args.np}")
            plan(args, preprocess=args.command == "plan_and_preprocess")
        elif args.command == "check":
            if not check(args):
                return 1
        elif args.command in SIMPLE_COMMANDS:
            SIMPLE_COMMANDS[args.command](args)
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
    except StudyIncomplete as error:
        print(f"nnunet-archs {args.command}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
