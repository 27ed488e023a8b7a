"""``nnunet-archs compare``: check everything (``preflight``), prepare the report folder, build the study's jobs,
run them on an executor and write the report once every job has finished (or failed, or could not run because one
it needs failed)."""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional, Sequence

from nnunet_archs.errors import UserError
from nnunet_archs.study.executors import DEFAULT_EXECUTOR, executor_class
from nnunet_archs.study.executors.slurm import SlurmOptions
from nnunet_archs.study.folder import StudyFolder, StudyLayout
from nnunet_archs.study.jobs import build_jobs, data_identifier
from nnunet_archs.study.preflight import preflight
from nnunet_archs.study.records import failures
from nnunet_archs.study.results import write_report
from nnunet_archs.study.scheduler import Scheduler, default_cpu_threads, write_commands
from nnunet_archs.study.spec import StudySpec, analysis_plan, analysis_versions
from nnunet_archs.study.summary import Estimate, check_cpu_schedule, summary_lines
from nnunet_archs.training.environment import ext_trainers_path


@dataclass
class ExecutionOptions:
    """How the jobs run; not part of the study (a resumed study may run them differently)."""

    executor: str = DEFAULT_EXECUTOR
    max_parallel: Optional[int] = None  # default: visible GPUs // GPUs per training with CUDA, else 1
    max_retries: int = 2
    processes: int = 1
    wait: bool = True
    slurm: SlurmOptions = field(default_factory=SlurmOptions)
    poll_seconds: float = 2.0

    def __post_init__(self):
        executor_class(self.executor)
        for flag, value, minimum in (("--max-parallel", self.max_parallel, 1), ("--max-retries", self.max_retries, 0),
                                     ("-np", self.processes, 1)):
            if value is not None and value < minimum:
                raise UserError(f"{flag} must be >= {minimum}, got {value}")


def check_folder(spec: StudySpec, layout: StudyLayout, resume: bool, overwrite: bool) -> None:
    """Refuse to mix studies: an existing report folder needs ``--resume`` (with the same study) or ``--overwrite``
    (which also removes this study's plans and trained models, and only those)."""
    report, folder = layout.report, layout.folder
    if report.exists() and not (resume or overwrite):
        raise UserError(f"{report} exists; pass --resume to continue that study or --overwrite to start it "
                              f"over")
    if resume and folder.spec_file.exists():
        earlier = folder.read_spec()
        differences = earlier.differences(spec)
        if differences:
            raise UserError(f"{report} holds a study run with other settings ({', '.join(differences)} differ); "
                             f"pass the same arguments to --resume it, or --overwrite to start it over")
        spec.preregistration = earlier.preregistration  # fixed when the study started (None: before plans existed)
    else:
        spec.preregistration = analysis_plan(spec, spec.failures, analysis_versions())


def prepare_folder(spec: StudySpec, layout: StudyLayout, overwrite: bool) -> None:
    """Write the study's spec and layout into its report folder (``check_folder`` passed), after removing the
    earlier study's plans, trained models and report with ``overwrite``."""
    report, folder = layout.report, layout.folder
    if overwrite and report.exists():
        earlier = folder.read_spec() if folder.spec_file.exists() else spec
        for architecture in earlier.architectures:
            for seed in earlier.training_seeds:
                shutil.rmtree(layout.results_folder(earlier, architecture, seed), ignore_errors=True)
            (layout.preprocessed / f"{earlier.plans_name(architecture)}.json").unlink(missing_ok=True)
        shutil.rmtree(report)
    report.mkdir(parents=True, exist_ok=True)
    folder.write_spec(spec)
    folder.write_layout(layout)


def preprocessed_identifiers(spec: StudySpec, layout: StudyLayout) -> set:
    """Data identifiers whose preprocessed data is complete already (one file per training case), so that the
    study does not rewrite data the user preprocessed before."""
    cases = len(list((layout.raw / "labelsTr").iterdir())) if (layout.raw / "labelsTr").is_dir() else -1
    complete = set()
    for architecture in spec.architectures:
        folder = layout.preprocessed / data_identifier(spec, architecture)
        if folder.is_dir() and len(list(folder.glob("*.pkl"))) == cases:
            complete.add(folder.name)
    return complete


def record_machine(folder: StudyFolder, spec: StudySpec, threads: Optional[int], executor: str,
                   max_parallel: int) -> None:
    """Append this driver session's versions, device and threads to ``environment.json``: what a repeat of the
    study's numbers needs to match (a training repeats exactly only with the same ones)."""
    import platform

    import torch

    from nnunet_archs.calibration import package_versions
    versions = package_versions(("torch", "nnunetv2", "dynamic-network-architectures", "numpy", "monai",
                                 "nnunet-archs"))
    device = torch.cuda.get_device_name() if spec.device.startswith("cuda") and torch.cuda.is_available() else \
        f"{platform.machine()} CPU ({os.cpu_count()} cores)"
    folder.append_environment({"started": time.strftime("%Y-%m-%d %H:%M:%S"), "python": platform.python_version(),
                               "versions": versions, "device": device, "threads_per_training": threads,
                               "executor": executor, "max_parallel": max_parallel})


def visible_gpus() -> List[int]:
    import torch
    if not torch.cuda.is_available():
        return []
    return list(range(torch.cuda.device_count()))  # indices into CUDA_VISIBLE_DEVICES, as CUDA numbers them


@dataclass
class StudyOutcome:
    """What a run of the driver left: the report (None while jobs still run, or when nothing was evaluated) and
    the jobs that failed or could not run."""

    layout: StudyLayout
    results: Optional[Path]
    failed: List[str]


def run_study(spec: StudySpec, report: Path, options: ExecutionOptions, calibrations: Sequence[Path] = (),
              resume: bool = False, overwrite: bool = False, log: Callable[[str], None] = print,
              device_reason: str = "given", confirmed: bool = False,
              hours_per_training: Optional[float] = None) -> StudyOutcome:
    """Run (or continue) a study whose report folder is ``report``; ``calibrations`` are the calibration files of
    networks given by import path. Every check first, then the summary (``device_reason``: why the study runs on
    its device; ``hours_per_training`` for its cost estimate), then nnU-Net's full schedule on a CPU refused unless
    ``confirmed``, and only then is anything written. ``results`` stays None while jobs are still running (only with
    ``options.wait`` off: run again with ``--resume`` to collect them)."""
    start = time.time()
    layout, planners = preflight(spec, report, calibrations, options.executor, resume, overwrite)
    check_folder(spec, layout, resume, overwrite)
    environment = {"nnUNet_raw": str(layout.raw.parent), "nnUNet_preprocessed": str(layout.preprocessed.parent),
                   "nnUNet_results": str(layout.results)}
    environment["nnUNet_extTrainer"] = ext_trainers_path()
    jobs = build_jobs(spec, layout, planners, options.processes, preprocessed_identifiers(spec, layout), environment,
                      [str(Path(c).resolve()) for c in calibrations])
    folder = layout.folder
    backend = executor_class(options.executor)
    gpus = visible_gpus() if spec.device.startswith("cuda") and backend.assigns_devices else []
    max_parallel = options.max_parallel or (max(1, len(gpus) // spec.num_gpus) if gpus else 1)
    for line in summary_lines(spec, layout, jobs, device_reason, options.executor,
                              Estimate.find(layout.report, hours_per_training), max_parallel):
        log(line)
    if not (resume and folder.spec_file.exists()):  # a resumed study was confirmed when it started
        warning = check_cpu_schedule(spec, sum(job.kind == "train" for job in jobs), confirmed)
        if warning:
            log(warning)
    prepare_folder(spec, layout, overwrite)
    write_commands(jobs, folder.commands, environment)
    executor = backend(folder.submitit, max_parallel, options.slurm)
    cpu_threads = default_cpu_threads(max_parallel) if not spec.device.startswith("cuda") else None
    record_machine(folder, spec, cpu_threads, options.executor, max_parallel)
    scheduler = Scheduler(jobs, folder.jobs, folder.state, executor, max_parallel,
                          options.max_retries, gpus, cpu_threads, options.poll_seconds, log)
    log(f"Report folder: {layout.report}" + (f"; GPUs {gpus}" if gpus else ""))
    statuses = scheduler.run(wait=options.wait)
    for warning in sorted(set(executor.warnings)):
        log(f"warning: {warning}")
    if any(status == "running" for status in statuses.values()):
        running = sum(status == "running" for status in statuses.values())
        log(f"{running} job(s) still running; run the same command with --resume to collect them")
        return StudyOutcome(layout, None, failures(layout))
    try:
        results = write_report(layout.report, f"; this run {time.time() - start:.0f} s")
    except UserError as error:  # nothing was evaluated: every training failed
        log(f"no report: {error}")
        results = None
    return StudyOutcome(layout, results, failures(layout))
