"""Study commands: ``compare`` (the cross-validated study), ``report`` (redraw it), ``evaluate`` (per-case
metrics of a folder), ``splits`` and ``demo``."""
from __future__ import annotations

import argparse
from pathlib import Path

from nnunet_archs.evaluation.failures import FAILURE_CONVENTIONS
from nnunet_archs.evaluation.labels import UNDEFINED_LABELS
from nnunet_archs.evaluation.metrics import METRIC_NAMES
from nnunet_archs.study.executors import DEFAULT_EXECUTOR, EXECUTORS
from nnunet_archs.study.spec import FOLDS
from nnunet_archs.training.environment import EPOCHS, ITERATIONS, NNUNET_SCHEDULE, VAL_ITERATIONS

COMPARE_DESCRIPTION = (
    "Plans every architecture with its own planner at the same GPU memory target, trains each fold of nnU-Net's "
    "splits_final.json with stock nnUNetv2_train, evaluates every case with the fold model that did not train on "
    "it, and reports paired statistics against the baseline. Jobs run locally (one training per GPU) or on SLURM; "
    "--resume continues after anything was killed.")


def add_commands(commands) -> None:
    _add_compare(commands)
    report = commands.add_parser("report", help="recompute the statistics and redraw the report of a study folder "
                                                "from its per-case metrics; or combine the studies of several "
                                                "datasets into one ranking (-o)")
    report.set_defaults(run=redraw_report)
    report.add_argument("folder", type=Path, nargs="+", help="a study's report folder (redrawn in place), or two "
                        "or more finished studies of the same networks on different datasets (with -o)")
    report.add_argument("-o", "--output", type=Path, default=None, help="folder for the combined report of two or "
                        "more studies (default: none, one folder is redrawn in place)")
    report.add_argument("--overwrite", action="store_true", help="replace an existing -o folder (that one only)")
    report.add_argument("--failures", choices=FAILURE_CONVENTIONS, default=None, help="how a missed or invented "
                        "structure's HD95 enters the statistics (default: the study's --failures)")
    report.add_argument("--metrics", nargs="+", default=[], help="metrics to add to the study, computed from its "
                        "stored predictions without training again (default: none)")
    _add_processes_option(report, " (with --metrics)")
    evaluation = commands.add_parser("evaluate", help="per-case Dice, NSD, HD95 and object detection of a folder of "
                                                      "predictions (a tidy CSV, and one row per object beside it)")
    evaluation.set_defaults(run=evaluate)
    evaluation.add_argument("--reference", type=Path, required=True, help="folder of reference segmentations")
    evaluation.add_argument("--prediction", type=Path, required=True, help="folder of predicted segmentations")
    evaluation.add_argument("--dataset-json", type=Path, required=True, help="the dataset's dataset.json (labels, "
                            "file ending)")
    evaluation.add_argument("--architecture", default="prediction", help="value of the architecture column")
    evaluation.add_argument("--fold", default="-", help="value of the fold column")
    evaluation.add_argument("--training-seed", type=int, default=0, help="value of the seed column: the training "
                            "seed of the models that predicted")
    evaluation.add_argument("--metrics", nargs="+", default=list(METRIC_NAMES),
                            help=f"any of {', '.join(METRIC_NAMES)} (default: all)")
    evaluation.add_argument("--nsd-tolerance", type=float, default=2.0, help="NSD tolerance in mm")
    _add_object_options(evaluation)
    evaluation.add_argument("-o", "--output", type=Path, required=True, help="the per-case CSV to write (objects go "
                            "to NAME_objects.csv beside it)")
    _add_processes_option(evaluation)
    evaluation.add_argument("--undefined-labels", choices=UNDEFINED_LABELS, default=UNDEFINED_LABELS[0],
                            help="label values in a reference or prediction that dataset.json does not define: "
                                 "refuse the folder (error, the default) or measure them as background and warn")
    prediction = commands.add_parser("predict", help="nnUNetv2_predict's prediction (the same predictor and "
                                     "arguments), with each case's time and peak GPU memory recorded")
    prediction.set_defaults(run=predict)
    prediction.add_argument("-i", type=Path, required=True, help="folder of images (nnU-Net's raw format)")
    prediction.add_argument("-o", type=Path, required=True, help="output folder")
    prediction.add_argument("-d", required=True, help="dataset id or name")
    prediction.add_argument("-c", required=True, help="configuration")
    prediction.add_argument("-p", default="nnUNetPlans", help="plans identifier")
    prediction.add_argument("-tr", default="nnUNetTrainer", help="trainer")
    prediction.add_argument("-f", nargs="+", type=int, default=[0, 1, 2, 3, 4], help="folds to ensemble")
    _add_device(prediction, ["cpu", "cuda", "mps"], "predict")
    prediction.add_argument("--disable_tta", action="store_true", help="no test-time mirroring")
    prediction.add_argument("-npp", type=int, default=3, help="preprocessing processes (0 with -nps 0: sequential)")
    prediction.add_argument("-nps", type=int, default=3, help="export processes")
    prediction.add_argument("--disable_progress_bar", action="store_true", help="no progress bar")
    demonstration = commands.add_parser("demo", help="the comparison on a built-in dataset, on the CPU, in about "
                                                     "10 minutes (what `make demo` runs)")
    demonstration.set_defaults(run=demo)
    demonstration.add_argument("--work-dir", type=Path, default=Path("nnunet_archs_demo"),
                               help="folder for the dataset, nnU-Net's folders and the report")
    _add_resume_options(demonstration, "the demo in an existing work folder", "its work folder")


def _add_compare(commands) -> None:
    command = commands.add_parser(
        "compare", help="a cross-validated study: plan every architecture at the same GPU memory target, train every "
                        "fold, evaluate per case (Dice, NSD, HD95, object detection) and test against a baseline; a "
                        "report folder",
        description=COMPARE_DESCRIPTION)
    command.set_defaults(run=compare)
    command.add_argument("-d", type=int, required=True, help="dataset id (nnU-Net raw format)")
    command.add_argument("-a", "--architectures", nargs="+", default=["PlainConvUNet", "KiUNet", "UIUNet"],
                         help="architecture names (nnunet-archs list) or import paths of networks of yours")
    command.add_argument("--calibration", type=Path, nargs="+", default=[], help="calibration files (nnunet-archs "
                         "calibrate) of the networks given by import path")
    command.add_argument("-c", "--configuration", default="3d_fullres", help="nnU-Net configuration to plan and "
                         "train")
    command.add_argument("-f", "--folds", type=int, nargs="+", default=list(FOLDS),
                         help="folds of splits_final.json to train (at least 2)")
    command.add_argument("--baseline", default=None, help="architecture the others are tested against (default: "
                                                          "the first)")
    command.add_argument("--metrics", nargs="+", default=list(METRIC_NAMES), help=f"any of {', '.join(METRIC_NAMES)} "
                         "(default: all)")
    _add_object_options(command)
    command.add_argument("--primary", default=None, metavar="METRIC[:LABEL]", help="the endpoint that decides the "
                         "verdict and the ranking, e.g. Dice or HD95:small (default: Dice, mean over labels); every "
                         "other metric and label is reported as secondary")
    command.add_argument("--margin", action="append", default=[], metavar="METRIC=DELTA", help="equivalence margin "
                         "in the metric's unit, e.g. Dice=0.02 (repeatable): the verdict can then be 'equivalent'")
    command.add_argument("--failures", choices=FAILURE_CONVENTIONS, default=FAILURE_CONVENTIONS[0],
                         help="a structure missed or invented scores HD95 = the image diagonal (worst, default) or is "
                              "left out of HD95 (exclude)")
    command.add_argument("--nsd-tolerance", type=float, default=2.0, help="NSD tolerance in mm")
    command.add_argument("--training-seeds", type=int, nargs="+", default=[0], metavar="S", help="train every "
                         "architecture and fold once per training seed; the statistics average a case over them and "
                         "report the spread between them")
    command.add_argument("--seed", type=int, default=12345, help="random seed of the bootstrap resamples (not of "
                         "training: see --training-seeds)")
    command.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples")
    for flag, what, variable in (("--epochs", "epochs per training", EPOCHS),
                                 ("--iterations", "training iterations per epoch", ITERATIONS),
                                 ("--val-iterations", "validation iterations per epoch", VAL_ITERATIONS)):
        command.add_argument(flag, type=int, default=None, help=f"{what} (default: nnU-Net's "
                             f"{NNUNET_SCHEDULE[variable]})")
    command.add_argument("--minutes", type=float, default=None, help="wall-clock budget per training: it stops "
                         "after the epoch that spends it (default: none)")
    command.add_argument("--mirroring", action="store_true", help="keep nnU-Net's mirroring augmentation and TTA")
    command.add_argument("-gpu_memory_target", type=float, default=8, help="GB, the same for every planner")
    _add_device(command, ["cpu", "cuda"], "train and predict", resume_note="; with --resume the study's; with "
                "--executor slurm cuda when --slurm-gpus-per-job is given, else required")
    command.add_argument("--no-compile", action="store_true", help="turn torch.compile off (nnU-Net compiles on "
                                                                   "CUDA)")
    command.add_argument("--yes", action="store_true", help="start a study the checks warn about: nnU-Net's full "
                         "schedule on the CPU (days per training)")
    command.add_argument("--num-gpus", type=int, default=1, help="GPUs per training (nnUNetv2_train -num_gpus)")
    command.add_argument("--scale-batch", action="store_true", help="with --num-gpus K: train a configuration that "
                         "inherits the planned one with K times its batch (the same batch per GPU)")
    command.add_argument("-o", "--output", type=Path, default=None, help="report folder (default: "
                         "nnunet_archs_compare_<dataset id>)")
    _add_resume_options(command, "the study in an existing report folder", "its report, plans and trained models")
    command.add_argument("-np", type=int, default=1, help="processes for preprocessing and export")
    command.add_argument("--dry-run", action="store_true", help="print the study's summary (trainings, schedule, "
                         "device, jobs, GPU-hours) and each network's planned patch, batch and memory; train and write "
                         "nothing")
    command.add_argument("--hours-per-training", type=float, default=None, help="hours one training takes, for the "
                         "summary's GPU-hours (default: from the trainings finished in the report folder, e.g. a "
                         "pilot study)")
    execution = command.add_argument_group("execution")
    execution.add_argument("--executor", choices=list(EXECUTORS), default=DEFAULT_EXECUTOR,
                           help=f"where the jobs run: {' or '.join(EXECUTORS)} (default: {DEFAULT_EXECUTOR}), "
                                f"through submitit")
    execution.add_argument("--max-parallel", type=int, default=None, help="jobs at once (default: one per visible "
                           "GPU with CUDA, else 1); on SLURM the job array's throttle")
    execution.add_argument("--max-retries", type=int, default=2, help="resubmissions of a killed job (a training "
                           "continues from its latest checkpoint)")
    execution.add_argument("--no-wait", action="store_true", help="submit what can start and exit; collect with "
                           "--resume")
    slurm = command.add_argument_group("SLURM (with --executor slurm)")
    cluster = "(default: the cluster's)"
    slurm.add_argument("--slurm-partition", help=f"partition of every job {cluster}")
    slurm.add_argument("--slurm-gpus-per-job", type=int, help="GPUs per training job (default: --num-gpus with "
                       "-device cuda, none on the CPU)")
    slurm.add_argument("--slurm-cpus-per-job", type=int, help=f"CPUs per job {cluster}")
    slurm.add_argument("--slurm-mem", help=f"memory per job, as sbatch's --mem, e.g. 64G {cluster}")
    slurm.add_argument("--slurm-time", help=f"wall time per job, as sbatch's --time (minutes or [D-]HH:MM:SS) "
                       f"{cluster}")
    slurm.add_argument("--slurm-account", help=f"account to charge {cluster}")
    slurm.add_argument("--slurm-qos", help=f"quality of service {cluster}")
    slurm.add_argument("--slurm-option", action="append", default=[], metavar="KEY=VALUE",
                       help="any other sbatch option, e.g. --slurm-option constraint=a100 (repeatable; default: none)")


def _add_device(command, choices, what: str, resume_note: str = "") -> None:
    """nnU-Net's ``-device``, with ``--device`` beside it; the default is detected when the command runs."""
    command.add_argument("-device", "--device", choices=choices, default=None, help=f"where to {what} (default: cuda "
                         f"when a GPU is visible, else cpu{resume_note}; said when the command starts)")


def _add_resume_options(command, what: str, removed: str) -> None:
    command.add_argument("--resume", action="store_true", help=f"continue {what}")
    command.add_argument("--overwrite", action="store_true", help=f"start over (removes {removed})")


def _add_processes_option(command, when: str = "") -> None:
    command.add_argument("-np", type=int, default=None, help=f"worker processes evaluating the cases{when}, as "
                         f"nnU-Net's -np (default: $nnUNet_def_n_proc, else 8)")


def _add_object_options(command) -> None:
    command.add_argument("--object-labels", nargs="+", default=None, metavar="LABEL", help="labels whose connected "
                         "components are counted as objects by the Detection* metrics (default: every foreground "
                         "label; name the small, many-object ones so a single large structure does not dilute them)")
    command.add_argument("--match-iou", type=float, default=0.0, help="a predicted object matches a reference object "
                         "at IoU above this, one to one (default 0: any overlap)")


def compare(args: argparse.Namespace) -> None:
    from nnunet_archs.errors import StudyIncomplete
    from nnunet_archs.study.device import study_device
    from nnunet_archs.study.driver import ExecutionOptions, run_study
    from nnunet_archs.study.executors.slurm import SlurmOptions, parse_slurm_options, parse_slurm_time
    from nnunet_archs.study.spec import Budget, StudySpec, parse_margins, study_id_for
    report = args.output or Path(f"nnunet_archs_compare_{args.d}")
    device = study_device(args.device, args.executor, args.slurm_gpus_per_job, report, args.resume)
    budget = Budget(args.epochs, args.iterations, args.val_iterations, args.minutes, args.mirroring)
    spec = StudySpec(args.d, args.architectures, args.configuration, args.folds, args.baseline, args.metrics,
                     args.nsd_tolerance, args.seed, args.bootstrap, budget, args.gpu_memory_target, device.device,
                     False if args.no_compile else None, args.num_gpus, args.scale_batch, study_id_for(report),
                     training_seeds=args.training_seeds, primary=args.primary, margins=parse_margins(args.margin),
                     failures=args.failures, object_labels=args.object_labels, match_iou=args.match_iou)
    slurm = SlurmOptions(args.slurm_partition, args.slurm_gpus_per_job, args.slurm_cpus_per_job, args.slurm_mem,
                         parse_slurm_time(args.slurm_time) if args.slurm_time else None, args.slurm_account,
                         args.slurm_qos, parse_slurm_options(args.slurm_option))
    options = ExecutionOptions(args.executor, args.max_parallel, args.max_retries, args.np, not args.no_wait, slurm)
    if args.dry_run:
        from nnunet_archs.study.dry_run import dry_run
        print(dry_run(spec, report, args.calibration, args.executor, args.hours_per_training, device.reason,
                      args.max_parallel))
        return
    outcome = run_study(spec, report, options, args.calibration, args.resume, args.overwrite,
                        device_reason=device.reason, confirmed=args.yes, hours_per_training=args.hours_per_training)
    if outcome.results is not None:
        print("\n" + outcome.results.read_text())
        print(f"Report: {outcome.results} (also results.csv, results.tex, per_case.csv, per_case_*.png, "
              f"pareto_*.png); commands: {outcome.layout.report / 'commands.sh'}")
    if outcome.failed:
        raise StudyIncomplete(f"{len(outcome.failed)} job(s) failed; the report marks the missing results:\n  "
                              + "\n  ".join(outcome.failed) + "\nfix the cause and run the same command with --resume")


def redraw_report(args: argparse.Namespace) -> None:
    from nnunet_archs.errors import UserError
    if len(args.folder) > 1 or args.output is not None:
        if len(args.folder) < 2 or args.output is None:
            raise UserError("combining studies needs two or more study folders and -o OUT (one folder alone is "
                            "redrawn in place, without -o)")
        if args.metrics or args.failures:
            raise UserError("--metrics and --failures apply to one study folder; combine the studies as they are")
        from nnunet_archs.study.combine_studies import combine_studies
        print(combine_studies(args.folder, args.output, args.overwrite).read_text())
        print(f"Combined report: {args.output} (combined.md, combined.csv, results.tex, ranks_blob.png, "
              f"significance.png, challenger_<metric>_<label>.csv)")
        return
    from nnunet_archs.study.extend import add_metrics
    from nnunet_archs.study.folder import open_study
    from nnunet_archs.study.results import write_report
    folder, = args.folder
    open_study(folder)
    added = add_metrics(folder, args.metrics, args.np) if args.metrics else []
    print(write_report(folder, failures_convention=args.failures).read_text())
    if added:
        print(f"Added {', '.join(added)} from the stored predictions; study.json lists them now (give the same "
              f"--metrics to compare --resume)")


def evaluate(args: argparse.Namespace) -> None:
    import sys

    from nnunet_archs.evaluation.folder import evaluate_folder, write_evaluation
    from nnunet_archs.evaluation.labels import read_dataset_json
    from nnunet_archs.evaluation.tables import objects_path
    evaluation = evaluate_folder(args.reference, args.prediction, read_dataset_json(args.dataset_json),
                                 args.architecture, args.fold, args.metrics, args.nsd_tolerance, args.training_seed,
                                 args.object_labels, args.match_iou, args.np, args.undefined_labels)
    for warning in evaluation.warnings:
        print(f"nnunet-archs evaluate: warning: {warning}", file=sys.stderr)
    write_evaluation(evaluation, args.output)
    objects = f" and {len(evaluation.objects)} objects to {objects_path(args.output)}" if evaluation.objects else ""
    print(f"{len(evaluation.rows)} rows written to {args.output}{objects}")


def predict(args: argparse.Namespace) -> None:
    from nnunet_archs.planning.api import require_nnunet_paths
    from nnunet_archs.profiling import default_device, require_device
    from nnunet_archs.training.prediction import predict as run_prediction
    require_nnunet_paths("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")
    device = args.device
    if device is None:
        device, reason = default_device()
        print(f"Device: {device} ({reason})")
    require_device(device)
    from nnunetv2.utilities.file_path_utilities import get_output_folder
    record = run_prediction(args.i, args.o, Path(get_output_folder(args.d, args.tr, args.p, args.c)), args.f,
                            device, not args.disable_tta, args.npp, args.nps, not args.disable_progress_bar)
    print(f"{record['cases']} case(s) predicted into {args.o}; median {record.get('median_seconds_per_case', 0):.2f} s "
          f"per case with {record.get('models', 0)} model(s)")


def demo(args: argparse.Namespace) -> None:
    from nnunet_archs.comparison.demo import run_demo
    run_demo(args.work_dir, args.resume, args.overwrite)
