"""A study as data: the graph of jobs, built by a pure function from the study and a few facts about the disk.

plan (per network) -> preprocess (once per distinct data identifier) -> train (network, fold, training seed) ->
evaluate (network, fold, seed) -> report, plus the labelled test set when there is one (predict with the ensemble
of one training seed's fold models, then evaluate). Every job is one stock nnU-Net or ``nnunet-archs`` command
with its environment; it is done when its done-marker exists (``runner``), which is all ``--resume`` looks at.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set

from nnunet_archs.planning.identifiers import data_identifier as plans_data_identifier
from nnunet_archs.registry import study_trainer_name
from nnunet_archs.study.folder import StudyLayout
from nnunet_archs.study.spec import StudySpec, safe

BIN = Path(sys.executable).parent


@dataclass
class Job:
    """One command of the study. ``gpus`` is how many GPUs it needs; ``resumable`` jobs (trainings) continue
    from their latest checkpoint when they are run again after being killed."""

    name: str
    kind: str
    command: List[str]
    env: Dict[str, str] = field(default_factory=dict)
    deps: List[str] = field(default_factory=list)
    gpus: int = 0
    resumable: bool = False


def data_identifier(spec: StudySpec, architecture: str) -> str:
    """The preprocessed-data identifier a network's plans will name (our presets and nnU-Net's ResEnc presets
    share the default planner's 2d/3d_fullres data)."""
    return plans_data_identifier(spec.plans_name(architecture), spec.configuration)


def build_jobs(spec: StudySpec, layout: StudyLayout, planners: Dict[str, List[str]], processes: int = 1,
               preprocessed_identifiers: Optional[Set[str]] = None, environment: Optional[Dict[str, str]] = None,
               calibrations: Sequence[str] = ()) -> List[Job]:
    """The whole study as jobs, in an order that respects their dependencies.

    ``planners`` maps each architecture to its ``plan_experiment`` planner arguments (``-pl NAME``, or
    ``-pl nnUNetPlannerCustom --network PATH --calibration FILE`` for a network of the user's, whose calibration
    files ``calibrations`` lists for the cost job too); ``preprocessed_identifiers`` are data identifiers
    already complete on disk (their preprocessing is not repeated: it would rewrite the user's files);
    ``environment`` is added to every job (nnU-Net's folder variables, trainer lookup).
    """
    d, np_ = str(spec.dataset_id), str(processes)
    # nnU-Net's export pools default to 8 processes; a study's jobs share the machine (or a job's allocation)
    base_env = {"nnUNet_def_n_proc": np_, **(environment or {})}
    jobs: List[Job] = []

    def add(name: str, kind: str, program: str, *args: str, deps=(), env=None, gpus=0, resumable=False) -> str:
        jobs.append(Job(name, kind, [str(BIN / program), *args], {**base_env, **(env or {})}, list(deps), gpus,
                        resumable))
        return name

    fingerprint = add("fingerprint", "fingerprint", "nnUNetv2_extract_fingerprint", "-d", d, "-np", np_,
                      "--verify_dataset_integrity")
    splits = add("splits", "splits", "nnunet-archs", "splits", "-d", d, "--folds", *map(str, spec.folds),
                 deps=[fingerprint])
    plan = {a: add(f"plan_{safe(a)}", "plan", "nnunet-archs", "plan_experiment", "-d", d, *planners[a],
                   "-gpu_memory_target", f"{spec.gpu_memory_target:g}", "-overwrite_plans_name", spec.plans_name(a),
                   "--overwrite_existing_plans", deps=[fingerprint])
            for a in spec.architectures}
    ready_data: Dict[str, str] = {}  # architecture -> the job its preprocessed data waits for
    by_identifier: Dict[str, str] = {}
    for a in spec.architectures:
        identifier = data_identifier(spec, a)
        if identifier in (preprocessed_identifiers or set()):
            ready_data[a] = plan[a]
            continue
        if identifier not in by_identifier:
            by_identifier[identifier] = add(
                f"preprocess_{identifier}", "preprocess", "nnUNetv2_preprocess", "-d", d, "-plans_name",
                spec.plans_name(a), "-c", spec.configuration, "-np", np_, deps=[plan[a]])
        ready_data[a] = by_identifier[identifier]
    add("costs", "costs", "nnunet-archs", "costs", "-d", d, "-c", spec.configuration, "-o",
        str(layout.folder.costs), "--architectures",
        *spec.architectures, "--plans", *[spec.plans_name(a) for a in spec.architectures],
        *(["--calibration", *calibrations] if calibrations else []), deps=list(plan.values()))

    if spec.training_configuration != spec.configuration:
        for a in spec.architectures:
            ready_data[a] = add(f"configure_{safe(a)}", "configure", "nnunet-archs", "add_configuration", "-d", d,
                                "-plans_name", spec.plans_name(a), "-c", spec.configuration, "--name",
                                spec.training_configuration, "--batch-multiplier", str(spec.num_gpus),
                                deps=[ready_data[a]])
    gpus = spec.num_gpus if spec.device.startswith("cuda") else 0
    train_env = {**spec.budget.environment(), "nnUNet_compile": "t" if spec.compile_enabled else "f"}
    if not spec.device.startswith("cuda"):
        train_env["nnUNet_n_proc_DA"] = "0"  # no augmentation workers on a CPU: they would fight the training
    metric_args = ["--metrics", *spec.metrics, "--nsd-tolerance", f"{spec.nsd_tolerance_mm:g}", "--match-iou",
                   f"{spec.match_iou:g}", *(["--object-labels", *spec.object_labels] if spec.object_labels else []),
                   "-np", np_]
    device = spec.device.split(":")[0]
    for a, seed in ((a, s) for a in spec.architectures for s in spec.training_seeds):
        trainer, seed_args = study_trainer_name(a, seed), ["--training-seed", str(seed)]
        trainings = []
        for fold in spec.folds:
            extra = ["-num_gpus", str(spec.num_gpus)] if spec.num_gpus > 1 else []
            train = add(layout.training_job(a, fold, seed), "train", "nnUNetv2_train", d,
                        spec.training_configuration, str(fold), "-p", spec.plans_name(a), "-tr", trainer, "-device",
                        device, *extra, deps=[ready_data[a], splits], env=train_env, gpus=gpus, resumable=True)
            trainings.append(train)
            add(layout.evaluation_job(a, fold, seed), "evaluate", "nnunet-archs", "evaluate", "--reference",
                str(layout.raw / "labelsTr"), "--prediction",
                str(layout.fold_folder(spec, a, fold, seed) / "validation"), "--dataset-json",
                str(layout.raw / "dataset.json"), "--architecture", a, "--fold", str(fold), *seed_args,
                "-o", str(layout.folder.fold_metrics(a, fold, seed)), *metric_args, deps=[train])
        if layout.has_test_set:
            tta = [] if spec.budget.mirroring else ["--disable_tta"]
            # nnUNetv2_predict's predictor, timing each case (the study's inference cost)
            predict = add(layout.prediction_job(a, seed), "predict", "nnunet-archs", "predict", "-i",
                          str(layout.raw / "imagesTs"), "-o", str(layout.folder.test_predictions(a, seed)), "-d", d,
                          "-c", spec.training_configuration, "-p", spec.plans_name(a), "-tr", trainer, "-f",
                          *map(str, spec.folds), "-npp", np_, "-nps", np_, "-device", device,
                          "--disable_progress_bar", *tta, deps=trainings, gpus=min(gpus, 1))
            add(layout.test_evaluation_job(a, seed), "evaluate", "nnunet-archs", "evaluate", "--reference",
                str(layout.raw / "labelsTs"), "--prediction", str(layout.folder.test_predictions(a, seed)),
                "--dataset-json", str(layout.raw / "dataset.json"), "--architecture", a, "--fold", "ensemble",
                *seed_args, "-o", str(layout.folder.test_metrics(a, seed)), *metric_args, deps=[predict])
    return jobs


def resumed_command(job: Job) -> List[str]:
    """The command that continues a killed job: nnU-Net's ``--c`` for a training (from its latest checkpoint,
    or from scratch with nnU-Net's warning when none was written yet)."""
    return job.command + ["--c"] if job.resumable else job.command
