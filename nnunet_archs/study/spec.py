"""What a study is: the dataset, the networks, the folds, the budget and the statistics it was asked for.

A ``StudySpec`` is written to ``study.json`` in the report folder when a study starts; ``--resume`` refuses to
continue a folder whose study was asked for differently (other folds, budget, ...), so that no result is mixed
with one computed under other settings. How the jobs run (executor, parallelism) is not part of the study.

The analysis is pre-registered there too: when ``compare`` starts a study it fixes the primary endpoint, the
margins, α, the failure convention, the estimand and the versions of the packages that compute the metrics and
the statistics (``analysis_plan``); the report prints the plan's short hash, and a report computed under another
plan (``report --failures``, an edited ``study.json``, other package versions) calls its verdict post hoc. A
``study.json`` written before this has no plan: its report says "not pre-registered".
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Dict, List, Optional

from nnunet_archs.errors import UserError
from nnunet_archs.planning.memory import check_memory_target
from nnunet_archs.analysis.significance import ALPHA
from nnunet_archs.analysis.statistics import ESTIMAND
from nnunet_archs.analysis.table import MEAN_LABEL
from nnunet_archs.evaluation.failures import check_failure_convention
from nnunet_archs.evaluation.labels import check_object_labels
from nnunet_archs.evaluation.metrics import DEFAULT_PRIMARY, FAMILY_PACKAGES, METRIC_NAMES, check_metrics
from nnunet_archs.evaluation.objects import check_threshold
from nnunet_archs.training.environment import EPOCHS, ITERATIONS, NNUNET_SCHEDULE, training_variables

FOLDS = (0, 1, 2, 3, 4)
# the compare flag behind each field, for messages
FLAGS = {"dataset_id": "-d", "architectures": "--architectures", "configuration": "-c", "folds": "--folds",
         "baseline": "--baseline", "metrics": "--metrics", "nsd_tolerance_mm": "--nsd-tolerance", "seed": "--seed",
         "bootstrap_resamples": "--bootstrap", "budget": "--epochs/--iterations/--val-iterations/--minutes/"
         "--mirroring", "gpu_memory_target": "-gpu_memory_target", "device": "-device", "compile": "--no-compile",
         "num_gpus": "--num-gpus", "scale_batch": "--scale-batch", "study_id": "-o", "training_seeds":
         "--training-seeds", "primary": "--primary", "margins": "--margin", "failures": "--failures",
         "object_labels": "--object-labels", "match_iou": "--match-iou"}
# the distributions whose versions decide the per-case values and the statistics of a pre-registered analysis
ANALYSIS_PACKAGES = (*sorted(set(FAMILY_PACKAGES.values())), "numpy", "scipy", "nnunet-archs")


@dataclass
class Budget:
    """Training schedule of every network; ``None`` keeps nnU-Net's (1000 epochs of 250 iterations)."""

    epochs: Optional[int] = None
    iterations: Optional[int] = None
    val_iterations: Optional[int] = None
    minutes: Optional[float] = None
    mirroring: bool = False

    @property
    def epochs_text(self) -> str:
        """Epochs x iterations in numbers, nnU-Net's where not given (and said so)."""
        epochs, iterations = self.epochs or NNUNET_SCHEDULE[EPOCHS], self.iterations or NNUNET_SCHEDULE[ITERATIONS]
        text = f"{epochs} epoch(s) x {iterations} iterations"
        if self.epochs is None or self.iterations is None:
            text += " (nnU-Net's " + ("full schedule)" if self.epochs is None and self.iterations is None else
                                      "epochs)" if self.epochs is None else "iterations)")
        return text

    def __str__(self) -> str:
        text = self.epochs_text
        if self.minutes:
            text += f", at most {self.minutes:g} min"
        return text + (", mirroring" if self.mirroring else ", no mirroring")

    @property
    def full_schedule(self) -> bool:
        """nnU-Net's 1000 x 250 iterations, neither shortened nor cut by a time limit."""
        return self.epochs is None and self.iterations is None and self.minutes is None

    def environment(self) -> Dict[str, str]:
        """The variables our trainers read (nnunet_archs.training.environment)."""
        return training_variables(self.epochs, self.iterations, self.val_iterations, self.minutes, self.mirroring)

    def validate(self) -> None:
        for name in ("epochs", "iterations", "val_iterations", "minutes"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise UserError(f"--{name.replace('_', '-')} must be > 0, got {value:g}")


@dataclass
class StudySpec:
    """Everything that decides a study's numbers. ``architectures`` are registry names (``nnunet-archs list``)."""

    dataset_id: int
    architectures: List[str]
    configuration: str = "3d_fullres"
    folds: List[int] = field(default_factory=lambda: list(FOLDS))
    baseline: Optional[str] = None
    metrics: List[str] = field(default_factory=lambda: list(METRIC_NAMES))
    nsd_tolerance_mm: float = 2.0
    seed: int = 12345
    bootstrap_resamples: int = 2000
    budget: Budget = field(default_factory=Budget)
    gpu_memory_target: float = 8.0
    device: str = "cpu"
    compile: Optional[bool] = None  # None: nnU-Net's default (on for CUDA, off otherwise)
    num_gpus: int = 1
    scale_batch: bool = False  # multi-GPU: train a configuration inheriting the planned one, batch x num_gpus
    study_id: str = "study"
    # every (architecture, fold) is trained once per training seed (the bootstrap's is ``seed``)
    training_seeds: List[int] = field(default_factory=lambda: [0])
    primary: Optional[str] = None  # METRIC[:LABEL], the endpoint of the verdict; default Dice (else the first metric)
    margins: Dict[str, float] = field(default_factory=dict)  # metric -> equivalence margin in its unit
    failures: str = "worst"  # how a missed or invented structure's HD95 enters the statistics
    object_labels: Optional[List[str]] = None  # labels whose objects are counted; None: every foreground label
    match_iou: float = 0.0  # a predicted object matches a reference object at IoU above this (0: any overlap)
    # the analysis fixed when the study started (``analysis_plan``); None: a study.json from before pre-registration
    preregistration: Optional[Dict[str, object]] = None

    def __post_init__(self):
        if self.baseline is None and self.architectures:
            self.baseline = self.architectures[0]
        if self.primary is None and self.metrics:
            self.primary = DEFAULT_PRIMARY if DEFAULT_PRIMARY in self.metrics else self.metrics[0]
        self.validate()

    def validate(self) -> None:
        """Every check that can fail on the user's input, raised as a UserError before anything runs."""
        if len(self.architectures) < 1:
            raise UserError("--architectures needs at least one architecture")
        if len({self.plans_name(a) for a in self.architectures}) != len(self.architectures):
            raise UserError(f"architectures must be distinct (and import paths must end in distinct class names), "
                             f"got {self.architectures}")
        if self.baseline not in self.architectures:
            raise UserError(f"--baseline {self.baseline!r} is not among the architectures {self.architectures}")
        check_metrics(self.metrics, self.nsd_tolerance_mm)
        if len(self.folds) < 2:
            raise UserError(f"--folds needs at least 2 folds, got {self.folds}: a study reports the spread over folds "
                            f"and ensembles the fold models on the test set (train a single fold with "
                            f"nnUNetv2_train)")
        bad_folds = [f for f in self.folds if f not in FOLDS]
        if bad_folds or len(set(self.folds)) != len(self.folds):
            raise UserError(f"--folds must be distinct values out of {list(FOLDS)}, got {self.folds}")
        check_memory_target(self.gpu_memory_target)
        if self.bootstrap_resamples < 100:
            raise UserError(f"--bootstrap must be >= 100 resamples, got {self.bootstrap_resamples}")
        if self.num_gpus < 1:
            raise UserError(f"--num-gpus must be >= 1, got {self.num_gpus}")
        if self.num_gpus > 1 and not self.device.startswith("cuda"):
            raise UserError(f"--num-gpus {self.num_gpus} needs -device cuda")
        if self.scale_batch and self.num_gpus < 2:
            raise UserError("--scale-batch multiplies the batch by --num-gpus, which must then be >= 2")
        self.budget.validate()
        seeds = self.training_seeds
        if not seeds or len(set(seeds)) != len(seeds) or any(not isinstance(s, int) or s < 0 for s in seeds):
            raise UserError(f"--training-seeds must be distinct integers >= 0, got {seeds}")
        if self.primary_metric not in self.metrics:
            raise UserError(f"--primary {self.primary!r}: the metric must be one of the study's --metrics "
                            f"{self.metrics}")
        for metric, margin in self.margins.items():
            if metric not in self.metrics:
                raise UserError(f"--margin {metric}={margin:g}: {metric!r} is not one of the study's --metrics "
                                f"{self.metrics}")
            if not margin > 0:
                raise UserError(f"--margin {metric}={margin:g}: the margin must be > 0 (in the metric's unit)")
        check_failure_convention(self.failures)
        check_threshold(self.match_iou)
        if not re.fullmatch(r"[A-Za-z0-9]+(_[A-Za-z0-9]+)*", self.study_id):
            raise UserError(f"study id {self.study_id!r} must be letters and digits joined by single underscores")

    @property
    def training_configuration(self) -> str:
        """The configuration trainings use: the planned one, or with ``scale_batch`` the multi-GPU recipe,
        a configuration that ``inherits_from`` it with the batch multiplied by the GPUs (same batch per GPU)."""
        if self.scale_batch and self.num_gpus > 1:
            return f"{self.configuration}_{self.num_gpus}gpus"
        return self.configuration

    @property
    def primary_metric(self) -> str:
        return self.primary.split(":", 1)[0]

    @property
    def primary_label(self) -> str:
        """The primary endpoint's label, ``mean`` (the mean over a case's labels) unless one is named."""
        return self.primary.split(":", 1)[1] if ":" in self.primary else MEAN_LABEL

    def check_labels(self, labels: List[str]) -> None:
        """Refuse a primary endpoint or object labels the dataset does not have (``labels``: its foreground
        names)."""
        if self.primary_label != MEAN_LABEL and self.primary_label not in labels:
            raise UserError(f"--primary {self.primary!r}: the dataset has no label {self.primary_label!r}; choose "
                            f"one of {labels} or {MEAN_LABEL!r} (the mean over a case's labels, the default)")
        check_object_labels(self.object_labels, labels)

    @property
    def compile_enabled(self) -> bool:
        return self.device.startswith("cuda") if self.compile is None else self.compile

    def plans_name(self, architecture: str) -> str:
        """Plans name of one network in this study: unique per report folder, so two studies on one dataset never
        share (or overwrite) plans or trained models, and free of nnU-Net's '__' separator."""
        return f"nnUNetStudy_{self.study_id}_{safe(architecture).replace('-', '')}"

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> "StudySpec":
        data = json.loads(text)
        data["budget"] = Budget(**data["budget"])
        return cls(**data)

    def differences(self, other: "StudySpec") -> List[str]:
        """The flags whose values differ between two specs (``--resume`` needs none; the pre-registered plan is the
        earlier one's, whatever versions the resumed session has)."""
        return [FLAGS.get(f.name, f.name) for f in fields(self)
                if f.name != "preregistration" and getattr(self, f.name) != getattr(other, f.name)]


def analysis_plan(spec: StudySpec, failures: str, versions: Dict[str, Optional[str]]) -> Dict[str, object]:
    """The analysis a report computes: ``spec``'s endpoint and margins, α, the failure convention ``failures``, the
    estimand and the ``versions`` of ``ANALYSIS_PACKAGES``."""
    return {"primary": spec.primary, "margins": dict(spec.margins), "alpha": ALPHA, "failures": failures,
            "estimand": ESTIMAND, "versions": dict(versions)}


def analysis_versions() -> Dict[str, Optional[str]]:
    """The installed versions of ``ANALYSIS_PACKAGES``."""
    from nnunet_archs.calibration import package_versions  # imports torch, which a study has imported anyway
    return package_versions(ANALYSIS_PACKAGES)


def plan_hash(plan: Dict[str, object]) -> str:
    """A short hash of a plan, as the report prints it (the first 8 hex digits of its canonical JSON's SHA-256)."""
    return hashlib.sha256(json.dumps(plan, sort_keys=True).encode()).hexdigest()[:8]


def post_hoc_changes(registered: Dict[str, object], plan: Dict[str, object]) -> List[str]:
    """What ``plan`` changes of the ``registered`` one: "failures: worst -> exclude", "scipy 1.16.0 -> 1.17.1"."""
    changes = [f"{key}: {registered.get(key)} -> {plan[key]}" for key in plan
               if key != "versions" and registered.get(key) != plan[key]]
    before, after = registered.get("versions") or {}, plan["versions"]
    return changes + [f"{name} {before.get(name)} -> {after.get(name)}" for name in sorted(set(before) | set(after))
                      if before.get(name) != after.get(name)]


def parse_margins(texts: List[str]) -> Dict[str, float]:
    """``--margin METRIC=DELTA`` (repeatable) as {metric: delta}."""
    margins = {}
    for text in texts:
        metric, sep, value = text.partition("=")
        try:
            margins[metric.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not metric.strip():
            raise UserError(f"--margin takes METRIC=DELTA (e.g. Dice=0.02 or HD95=1.5, in the metric's unit), got "
                            f"{text!r}")
    return margins


def safe(name: str) -> str:
    """A file-name-safe form of an architecture name: a registry name, or an import path's class name."""
    return re.sub(r"[^A-Za-z0-9]+", "-", name.split(".")[-1]).strip("-")


def study_id_for(report: Path) -> str:
    """A plans-name-safe id derived from the report folder's name."""
    return "_".join(re.findall(r"[A-Za-z0-9]+", Path(report).resolve().name)) or "study"
