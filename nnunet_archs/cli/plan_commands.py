"""Set-up and planning commands: ``doctor`` (is this environment ready?), ``example_dataset`` (the built-in
data), ``plan_and_preprocess`` and ``plan_experiment`` (nnU-Net's, with our planners too), ``add_configuration``
(the multi-GPU batch recipe), ``costs`` (the footing of planned networks) and ``splits`` (nnU-Net's fold split)."""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from nnunet_archs.study.spec import FOLDS

DEFAULT_CONFIGURATIONS = ["2d", "3d_fullres", "3d_lowres"]


def add_commands(commands) -> None:
    doctor = commands.add_parser("doctor", help="check the environment you will train in: one line per check with "
                                 "the fix, FAIL (broken), NEEDED (by the commands named) or WARN (works, with a "
                                 "limit); exit status 1 on a FAIL; changes nothing")
    doctor.set_defaults(run=run_doctor)
    doctor.add_argument("--compile", action="store_true", help="also compile a tiny network with torch.compile")
    doctor.add_argument("--slurm", action="store_true", help="also check that a SLURM cluster answers (sinfo)")
    example = commands.add_parser("example_dataset", help="write the built-in synthetic dataset into $nnUNet_raw")
    example.set_defaults(run=example_dataset)
    example.add_argument("-d", type=int, required=True, help="the dataset id to give it (one no dataset has)")
    example.add_argument("--2d", dest="two_d", action="store_true", help="the demo's 2D dataset (64x64 images, "
                         "a large structure and small blobs) instead of the 3D one")
    for name, description in (("plan_and_preprocess", "fingerprint, plan and preprocess a dataset (as "
                                                      "nnUNetv2_plan_and_preprocess, with our planners too)"),
                              ("plan_experiment", "plan only; the fingerprint must exist (as "
                                                  "nnUNetv2_plan_experiment)")):
        command = commands.add_parser(name, help=description, description=description)
        command.set_defaults(run=plan)
        command.add_argument("-d", type=int, required=True, help="dataset id")
        command.add_argument("-pl", default="ExperimentPlanner",
                             help="planner: ours (nnUNetPlannerKiUNetM/L/XL, nnUNetPlannerUIUNetM/L/XL), "
                                  "nnUNetPlannerCustom (any network: --network) or nnU-Net's")
        command.add_argument("-gpu_memory_target", type=float, default=None, help="GPU memory target in GB "
                             "(default: the planner's own, e.g. 8 for the M presets)")
        command.add_argument("--network", default=None, help="nnUNetPlannerCustom: an architecture name (see "
                             "list) or the import path of a network class (default: none; required with that "
                             "planner)")
        command.add_argument("--kwargs", default=None, help="nnUNetPlannerCustom: JSON object of keyword "
                             "overrides for the network, recorded in the plans' arch_kwargs (default: none)")
        command.add_argument("--calibration", type=Path, default=None, help="nnUNetPlannerCustom: the file "
                             "nnunet-archs calibrate wrote (default: none, which the built-in architectures need)")
        command.add_argument("-preset", default=None, help="nnUNetPlannerCustom: M, L or XL, the ResEnc preset "
                             "whose memory to fill (default: the one nearest -gpu_memory_target, else M)")
        command.add_argument("-overwrite_plans_name", default=None, help="name of the plans file to write "
                             "(default: the planner's, e.g. nnUNetKiUNetMPlans)")
        command.add_argument("--overwrite_existing_plans", action="store_true",
                             help="allow replacing a plans file that another planner wrote")
        command.add_argument("--verbose", action="store_true", help="nnU-Net's verbose planning output")
        command.add_argument("--no_pbar", action="store_true", help="no progress bars")
        if name == "plan_and_preprocess":
            command.add_argument("-c", nargs="+", default=DEFAULT_CONFIGURATIONS, help="configurations to "
                                 "preprocess")
            command.add_argument("-np", type=int, default=None, help="processes for fingerprint and preprocessing "
                                 "(default: 1 for the fingerprint; for preprocessing nnU-Net's 8, 4, 8 for 2d, "
                                 "3d_fullres, 3d_lowres)")
            command.add_argument("--verify_dataset_integrity", action="store_true",
                                 help="check the dataset's files first, as nnU-Net's flag of that name")
    add_config = commands.add_parser("add_configuration", help="add a configuration that inherits a planned one with "
                                                               "a multiplied batch size (multi-GPU training)")
    add_config.set_defaults(run=add_configuration)
    add_config.add_argument("-d", type=int, required=True, help="dataset id")
    add_config.add_argument("-plans_name", required=True, help="the plans file to add it to, e.g. nnUNetKiUNetMPlans")
    add_config.add_argument("-c", required=True, help="the planned configuration to inherit from")
    add_config.add_argument("--name", required=True, help="name of the new configuration")
    add_config.add_argument("--batch-multiplier", type=int, required=True, help="the new batch size is the "
                            "inherited one times this (the number of GPUs, for the same batch per GPU)")
    split = commands.add_parser("splits", help="write nnU-Net's 5-fold splits_final.json of a dataset if it has none, "
                                               "or check it against --folds")
    split.set_defaults(run=splits)
    split.add_argument("-d", type=int, required=True, help="dataset id")
    split.add_argument("--folds", type=int, nargs="+", default=list(FOLDS), help="the folds the split must define")
    cost = commands.add_parser("costs", help="planned patch, batch, parameters, FLOPs and estimated memory of plans")
    cost.set_defaults(run=costs)
    cost.add_argument("-d", type=int, required=True, help="dataset id")
    cost.add_argument("-c", "--configuration", required=True, help="configuration of the plans, e.g. 3d_fullres")
    cost.add_argument("--architectures", nargs="+", required=True, help="architecture names (nnunet-archs list) or "
                      "import paths, one per plans name")
    cost.add_argument("--plans", nargs="+", required=True, help="plans names, one per architecture")
    cost.add_argument("--calibration", type=Path, nargs="+", default=[], help="calibration files of networks of "
                      "yours (nnunet-archs calibrate; default: none)")
    cost.add_argument("-o", "--output", type=Path, required=True, help="JSON file to write the table to")


def run_doctor(args: argparse.Namespace) -> int:
    from nnunet_archs.doctor import LEGEND, first_failure, run_checks, verdict
    findings = run_checks(args.compile, args.slurm)
    for finding in findings:
        print(finding.line())
    print(f"({LEGEND})\n{verdict(findings)}")
    return 1 if first_failure(findings) else 0


def example_dataset(args: argparse.Namespace) -> None:
    from nnunet_archs.datasets import write_example_dataset
    from nnunet_archs.planning.api import require_nnunet_paths
    require_nnunet_paths("nnUNet_raw")
    folder = write_example_dataset(Path(os.environ["nnUNet_raw"]), args.d, args.two_d)
    print(f"Written: {folder} ({len(list((folder / 'imagesTr').iterdir()))} training and "
          f"{len(list((folder / 'imagesTs').iterdir()))} test images)")


def plan(args: argparse.Namespace) -> None:
    from nnunet_archs.planning.api import plan_dataset
    from nnunet_archs.planning.lookup import find_planner
    planner = find_planner(args.pl, args.network, args.kwargs, args.calibration, args.preset, args.gpu_memory_target)
    preprocess = args.command == "plan_and_preprocess"
    path = plan_dataset(args.d, planner, args.gpu_memory_target, args.overwrite_plans_name,
                        args.overwrite_existing_plans, args.c if preprocess else None,
                        args.np if preprocess else None, preprocess and args.verify_dataset_integrity, args.verbose,
                        not args.no_pbar)
    print(f"Plans written: {path}")
    if preprocess:
        print(f"Train with: nnUNetv2_train {args.d} CONFIGURATION FOLD -p {path.stem}")


def add_configuration(args: argparse.Namespace) -> None:
    from nnunet_archs.planning import api
    path, batch = api.add_configuration(args.d, args.plans_name, args.c, args.name, args.batch_multiplier)
    print(f"{path}: configuration {args.name} = {args.c} with batch size {batch}")


def costs(args: argparse.Namespace) -> None:
    from nnunet_archs.files import write_json_atomically
    from nnunet_archs.planning.api import dataset_name, require_nnunet_paths
    from nnunet_archs.planning.costs import study_costs
    require_nnunet_paths("nnUNet_preprocessed")
    from nnunetv2.paths import nnUNet_preprocessed
    result = study_costs(Path(nnUNet_preprocessed) / dataset_name(args.d), args.architectures, args.plans,
                         args.configuration, args.calibration)
    write_json_atomically(args.output, result)
    print(json.dumps(result, indent=1))


def splits(args: argparse.Namespace) -> None:
    from nnunet_archs.planning.api import dataset_name, require_nnunet_paths
    from nnunet_archs.study.splits import ensure_splits
    require_nnunet_paths("nnUNet_raw", "nnUNet_preprocessed")
    from nnunetv2.paths import nnUNet_preprocessed, nnUNet_raw
    name = dataset_name(args.d)
    path = ensure_splits(Path(nnUNet_raw) / name, Path(nnUNet_preprocessed) / name, args.folds)
    print(f"Cross-validation split: {path}")
