"""``compare --dry-run``: what a study would run and what it would cost, before committing GPU-days to it.

Every check ``compare`` makes, then every network planned in a temporary copy of the dataset's preprocessed folder
(the fingerprint reused when the dataset has one, else extracted there): nothing is written into the nnU-Net
folders or the report folder, and nothing is trained. GPU-hours come from ``--hours-per-training`` or, when the
report folder holds a finished pilot study, from the wall time its trainings took.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from nnunet_archs.errors import UserError
from nnunet_archs.study.folder import StudyFolder, StudyLayout
from nnunet_archs.study.jobs import build_jobs
from nnunet_archs.study.preflight import preflight
from nnunet_archs.study.spec import StudySpec


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


def pilot_hours(report: Path) -> Optional[float]:
    """Mean hours per training of a finished study in ``report`` (the pilot), None without one."""
    from nnunet_archs.study.records import training_costs
    folder = StudyFolder(Path(report))
    if not folder.is_study():
        return None
    spec, layout = folder.read_spec(), folder.read_layout()
    seconds = [s for cost in training_costs(spec, layout).values() for s in cost.seconds.values()]
    return sum(seconds) / len(seconds) / 3600 if seconds else None


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
            hours_per_training: Optional[float] = None) -> str:
    """The text ``compare --dry-run`` prints."""
    if hours_per_training is not None and not hours_per_training > 0:
        raise UserError(f"--hours-per-training must be > 0, got {hours_per_training:g}")
    layout, planners = preflight(spec, report, calibrations, executor, resume=False, overwrite=False)
    jobs = build_jobs(spec, layout, planners)
    kinds = Counter(job.kind for job in jobs)
    trainings = kinds["train"]
    lines = [f"Dry run: nothing is trained or written. {len(jobs)} jobs: " +
             ", ".join(f"{n} {kind}" for kind, n in kinds.items()) + ".",
             f"Trainings: {len(spec.architectures)} networks x {len(spec.folds)} folds x "
             f"{len(spec.training_seeds)} training seed(s) = {trainings}, each {spec.budget}.", ""]
    with tempfile.TemporaryDirectory(prefix="nnunet_archs_dry_run_") as temporary:
        costs = plan_everything(spec, layout, planners, Path(temporary), calibrations)
    lines += ["| architecture | planner | patch | batch | estimated memory (GB) | closest ResEnc preset | params (M) |",
              "|---|---|---|---|---|---|---|"]
    for architecture in spec.architectures:
        cost = costs[architecture]
        lines.append(f"| {architecture} | {planner_options(planners[architecture])['name']} | "
                     f"{'x'.join(map(str, cost['patch']))} | {cost['batch']} | {cost['estimated_gb']:.3g} | "
                     f"{cost['closest_preset']} | {cost['params'] / 1e6:.2f} |")
    hours, source = hours_per_training, "--hours-per-training"
    if hours is None:
        hours, source = pilot_hours(Path(report)), f"the pilot study in {report}"
    gpus = spec.num_gpus if spec.device.startswith("cuda") else 0
    if hours is None:
        lines += ["", "GPU-hours: give --hours-per-training H (or run a short pilot study into this report folder "
                  "first) to have them estimated."]
    else:
        unit = f"{trainings * hours * gpus:.1f} GPU-hours" if gpus else f"{trainings * hours:.1f} hours of CPU"
        lines += ["", f"Training: {trainings} x {hours:.2f} h ({source}) x {max(gpus, 1)} "
                  f"{'GPU(s)' if gpus else 'process(es)'} = {unit}."]
    return "\n".join(lines)
