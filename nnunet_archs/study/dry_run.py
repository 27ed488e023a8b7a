"""``compare --dry-run``: what a study would run and what it would cost, before committing GPU-days to it.

Every check ``compare`` makes, the summary every study prints (``summary``), then every network planned in a
temporary copy of the dataset's preprocessed folder (the fingerprint reused when the dataset has one, else extracted
there), nnU-Net's planning output going to a log file in the system's temporary folder whose name it prints:
nothing is written into the nnU-Net folders or the report folder, and nothing is trained.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from nnunet_archs.files import output_to
from nnunet_archs.study.folder import StudyLayout
from nnunet_archs.study.jobs import build_jobs
from nnunet_archs.study.preflight import preflight
from nnunet_archs.study.spec import StudySpec
from nnunet_archs.study.summary import Estimate, cpu_schedule_warning, full_schedule_on_cpu, summary_lines


@contextlib.contextmanager
def _preprocessed_in(folder: Path):
    """nnU-Net's preprocessed folder pointed at ``folder`` for the duration (nnU-Net reads it when it uses it)."""
    before = os.environ["nnUNet_preprocessed"]  # preflight required it
    os.environ["nnUNet_preprocessed"] = str(folder)
    try:
        yield
    finally:
        os.environ["nnUNet_preprocessed"] = before


def planner_options(arguments: Sequence[str]) -> Dict[str, str]:
    """The ``plan_experiment`` planner arguments of a study's network as ``find_planner`` keywords."""
    names = {"-pl": "name", "--network": "network", "--calibration": "calibration", "--kwargs": "kwargs"}
    return {names[flag]: value for flag, value in zip(arguments[::2], arguments[1::2])}


def plan_everything(spec: StudySpec, layout: StudyLayout, planners: Dict[str, List[str]], folder: Path,
                    calibrations: Sequence[Path]) -> Dict[str, dict]:
    """Plan every network into ``folder`` (a stand-in for the dataset's preprocessed folder); their costs."""
    from nnunetv2.experiment_planning.plan_and_preprocess_api import extract_fingerprint_dataset

    from nnunet_archs.planning.api import plan_dataset
    from nnunet_archs.planning.costs import study_costs
    from nnunet_archs.planning.lookup import find_planner
    target = folder / layout.preprocessed.name
    target.mkdir(parents=True)
    if (layout.preprocessed / "dataset_fingerprint.json").exists():
        shutil.copy(layout.preprocessed / "dataset_fingerprint.json", target / "dataset_fingerprint.json")
    with _preprocessed_in(folder):
        if not (target / "dataset_fingerprint.json").exists():
            extract_fingerprint_dataset(spec.dataset_id, num_processes=1, check_dataset_integrity=False, clean=False,
                                        verbose=False, show_progress_bar=False)
        for architecture in spec.architectures:
            options = planner_options(planners[architecture])
            planner = find_planner(options.pop("name"), gpu_memory_target=spec.gpu_memory_target, **options)
            plan_dataset(spec.dataset_id, planner, spec.gpu_memory_target, spec.plans_name(architecture),
                         overwrite_existing_plans=True)
        shutil.copy(layout.raw / "dataset.json", target / "dataset.json")
        return study_costs(target, spec.architectures, [spec.plans_name(a) for a in spec.architectures],
                           spec.configuration, calibrations)


def dry_run(spec: StudySpec, report: Path, calibrations: Sequence[Path], executor: str,
            hours_per_training: Optional[float] = None, device_reason: str = "given",
            max_parallel: Optional[int] = None) -> str:
    """The text ``compare --dry-run`` prints: the summary every study prints, each network's planned patch, batch
    and memory, and where nnU-Net's planning output went."""
    estimate = Estimate.find(report, hours_per_training)
    layout, planners = preflight(spec, report, calibrations, executor, resume=False, overwrite=False)
    jobs = build_jobs(spec, layout, planners)
    lines = summary_lines(spec, layout, jobs, device_reason, executor, estimate, max_parallel)
    if full_schedule_on_cpu(spec):
        lines.append(f"Warning: {cpu_schedule_warning(spec, sum(job.kind == 'train' for job in jobs))}.")
    log = Path(tempfile.mkstemp(prefix="nnunet_archs_dry_run_", suffix=".log")[1])
    with tempfile.TemporaryDirectory(prefix="nnunet_archs_dry_run_") as temporary, output_to(log):
        costs = plan_everything(spec, layout, planners, Path(temporary), calibrations)
    lines += ["", "| architecture | planner | patch | batch | estimated memory (GB) | closest ResEnc preset | "
                  "params (M) |", "|---|---|---|---|---|---|---|"]
    for architecture in spec.architectures:
        cost = costs[architecture]
        lines.append(f"| {architecture} | {planner_options(planners[architecture])['name']} | "
                     f"{'x'.join(map(str, cost['patch']))} | {cost['batch']} | {cost['estimated_gb']:.3g} | "
                     f"{cost['closest_preset']} | {cost['params'] / 1e6:.2f} |")
    lines += ["", f"Dry run: nothing was trained or written; nnU-Net's planning output is in {log}."]
    return "\n".join(lines)
