"""Commands about networks: ``check`` (nnU-Net's network contract), ``calibrate`` (a memory model for planning),
``profile`` (cost side by side), ``showcase``, ``list`` and ``trainers-path``."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable, List, Optional, Sequence


def add_commands(commands) -> None:
    _add_profile(commands)
    for name, description in (("check", "run nnU-Net's network contract on any network class: one line per check "
                                        "with the fix; exit status 1 if one fails"),
                              ("calibrate", "measure a network's activation memory against ResidualEncoderUNet "
                                            "and write the calibration file nnUNetPlannerCustom reads")):
        command = commands.add_parser(name, help=description, description=description)
        command.set_defaults(run=check if name == "check" else calibrate)
        command.add_argument("network", help="an architecture name (see list) or the import path of a network "
                             "class taking nnU-Net's PlainConvUNet keywords, e.g. my_package.nets.MyUNet")
        command.add_argument("--kwargs", default=None, help="JSON object of keyword overrides, e.g. "
                             "'{\"pool_type\": \"max\"}' (default: none, the class's own defaults)")
        source = command.add_mutually_exclusive_group()
        source.add_argument("--plans", type=Path, help="use this plans file's configuration (-c) instead of the "
                            "built-in ones (dataset.json is read beside it; default: none)")
        source.add_argument("--builtin", nargs="+", default=None, help="built-in configuration ids (see list; "
                            "default: a 2D, an isotropic and an anisotropic 3D one from public nnU-Net plans)")
        command.add_argument("-c", "--configuration", default="3d_fullres", help="configuration in --plans")
        if name == "check":
            command.add_argument("--random", type=int, default=8, help="random valid configurations to add")
            command.add_argument("--ddp", action="store_true", help="also train 2 processes with DDP (gloo)")
        else:
            command.add_argument("--bottlenecks", type=int, nargs="+", default=[2, 4],
                                 help="patch sizes, as voxels per axis at the lowest resolution")
            command.add_argument("--precision", choices=["autocast", "fp32"], default="autocast",
                                 help="autocast: as nnU-Net trains (fp16 on CUDA, bf16 on CPU)")
            command.add_argument("-device", "--device", default="cpu", help="cpu (saved tensors) or cuda "
                                 "(allocator peak); the CPU by default on every machine, as the shipped "
                                 "calibrations were made")
            command.add_argument("-o", "--output", type=Path, default=None,
                                 help="calibration file (default: calibration_<class name>.json)")
            command.add_argument("--overwrite", action="store_true", help="replace an existing calibration file")
    commands.add_parser("trainers-path", help="print the folder to put in nnUNet_extTrainer").set_defaults(
        run=trainers_path)
    commands.add_parser("list", help="list architectures, planners, trainers, presets and the variables our "
                                     "trainers read").set_defaults(run=list_everything)
    showcase = commands.add_parser("showcase", help="DynamicKiUNet next to PlainConvUNet on real nnU-Net "
                                                    "configurations: parameters, output shapes, step time")
    showcase.set_defaults(run=run_showcase)
    showcase.add_argument("--batch-size", type=int, default=1, help="samples per step")


def _add_profile(commands) -> None:
    command = commands.add_parser("profile", help="parameters, FLOPs, memory and speed of several architectures at "
                                                  "one plans configuration (table, JSON, PNG)")
    command.set_defaults(run=profile)
    source = command.add_mutually_exclusive_group()
    source.add_argument("--plans", type=Path, help="an nnU-Net plans file (dataset.json is read beside it; "
                        "default: none, see --builtin)")
    source.add_argument("--builtin", default=None, help="a built-in configuration id (see nnunet-archs list); "
                        "default: an anisotropic 3D configuration from a public nnU-Net plans file")
    command.add_argument("-c", "--configuration", default="3d_fullres", help="configuration in --plans")
    command.add_argument("-a", "--architectures", nargs="+", default=None, help="architecture names (see list); "
                         "ratios are to the first (default: PlainConvUNet ResEncUNet KiUNet UIUNet "
                         "UIUNet-minimal)")
    command.add_argument("--patch", type=int, nargs="+", default=None,
                         help="patch size (default: planned on a GPU, the smallest planned topology on a CPU)")
    command.add_argument("--batch-size", type=int, default=None, help="default: planned on a GPU, 2 on a CPU")
    command.add_argument("--repeats", type=int, default=3, help="timed training steps per architecture")
    command.add_argument("--inference", action="store_true", help="also time one inference patch")
    command.add_argument("--sweep", type=int, nargs="*", default=[2, 3],
                         help="bottleneck sizes (voxels per axis) for the patch-size sweep; --sweep alone to skip")
    command.add_argument("-device", "--device", default="cpu", help="cpu or cuda; the CPU by default on every "
                         "machine (the two measure different things: saved tensors, allocator peak)")
    command.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                         help="autocast as nnU-Net trains (fp16 + GradScaler on CUDA, bf16 on CPU as the stand-in); "
                              "default: on for cuda, off for cpu")
    command.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                         help="torch.compile the networks as nnU-Net does; default: on for cuda, off for cpu (where "
                              "inductor takes minutes per network)")
    command.add_argument("-o", "--output", type=Path, default=Path("nnunet_archs_profile"),
                         help="folder for profile.md, profile.json and profile.png")


def plans_records(plans: Optional[Path], configuration: str, builtin: Sequence[str], default: Callable[[], List]
                  ) -> List:
    """The configurations a command runs on: ``--plans`` with ``-c``, else the ``--builtin`` ids, else
    ``default()``."""
    from nnunet_archs.planning.api import plans_file_record
    from nnunet_archs.real_plans import find_record
    if plans is not None:
        return [plans_file_record(plans, configuration)]
    return [find_record(i) for i in builtin] if builtin else default()


def check(args: argparse.Namespace) -> int:
    from nnunet_archs.contract.suite import default_cases, passed, run_contract
    from nnunet_archs.custom_networks import resolve_network
    from nnunet_archs.real_plans import showcase_records
    variant = resolve_network(args.network, args.kwargs)
    records = plans_records(args.plans, args.configuration, args.builtin or [], showcase_records)
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
    return 0 if passed(results) else 1


def calibrate(args: argparse.Namespace) -> None:
    from nnunet_archs.calibration import calibrate as run_calibration
    from nnunet_archs.custom_networks import resolve_network
    from nnunet_archs.errors import UserError
    from nnunet_archs.real_plans import showcase_records
    variant = resolve_network(args.network, args.kwargs)
    output = args.output or Path(f"calibration_{variant.name}.json")
    if output.exists() and not args.overwrite:
        raise UserError(f"{output} exists; choose another -o or pass --overwrite")
    records = plans_records(args.plans, args.configuration, args.builtin or [], showcase_records)
    print(f"Calibrating {variant.class_path} against ResidualEncoderUNet ({args.precision}, {args.device}):")
    print("| configuration | patch | bytes/sample (MB) | ResEnc (MB) | estimate (M) | measured |")
    print("|---|---|---:|---:|---:|---|")

    def progress(point) -> None:
        estimate = f"{point.estimate / 1e6:.1f}" if point.estimate is not None else "-"
        print(f"| {point.configuration} | {'x'.join(map(str, point.patch))} | {point.bytes / 1e6:.1f} | "
              f"{point.reference_bytes / 1e6:.1f} | {estimate} | {point.how} |", flush=True)
    result = run_calibration(variant, records, args.bottlenecks, args.precision, args.device, progress)
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
    from nnunet_archs.real_plans import ANISOTROPIC_3D, find_record
    record, = plans_records(args.plans, args.configuration, [args.builtin] if args.builtin else [],
                            lambda: [find_record(ANISOTROPIC_3D)])
    patch = default_patch(record, args.device, args.patch, args.architectures or DEFAULT_ARCHITECTURES)
    if args.batch_size is not None:
        batch = args.batch_size
    else:
        batch = record.batch_size if args.device.startswith("cuda") else 2
    result = run_profile(record, args.architectures or DEFAULT_ARCHITECTURES, patch, batch, args.repeats,
                         args.inference, args.sweep, args.device, amp=args.amp, compile=args.compile)
    print(format_table(result))
    paths = write_outputs(result, args.output)
    print(f"\nWritten: {paths['table']}, {paths['json']}, {paths['png']}")


def trainers_path(args: argparse.Namespace) -> None:
    from nnunet_archs.training.environment import ext_trainers_path
    print(ext_trainers_path())


def run_showcase(args: argparse.Namespace) -> None:
    from nnunet_archs.errors import UserError
    from nnunet_archs.showcase import run_showcase as showcase
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {args.batch_size}")
    showcase(batch_size=args.batch_size)


def list_everything(args: argparse.Namespace) -> None:
    from nnunet_archs.planning.lookup import nnunet_planner_names
    from nnunet_archs.planning.memory import RESENC_PRESETS
    from nnunet_archs.planning.planners import PLANNERS
    from nnunet_archs.real_plans import load_records
    from nnunet_archs.registry import VARIANTS
    from nnunet_archs.training.environment import VARIABLES
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
    print("  nnUNetTrainerBudget   nnUNetTrainer whose schedule the variables below can shorten")
    print("  nnUNetTrainerBudgetNoDeepSupervision  the same without the deep-supervision loss (SwinUNETR; compare "
          "picks it)")
    print("Variables our trainers read:")
    for name, effect in VARIABLES.items():
        print(f"  {name:<28} {effect}")
    print("Built-in configurations (profile --builtin):")
    for record in load_records():
        print(f"  {record.id}")
    print("Presets (GPU memory targets, as nnU-Net's ResEnc presets):")
    for preset, (gb, _, _) in RESENC_PRESETS.items():
        print(f"  {preset:<3} {gb:g} GB")
