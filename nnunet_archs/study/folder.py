"""Where a study reads and writes. ``StudyFolder`` owns every file name of a report folder and is the one way to
open, read and write one (the spec, the layout, the per-case and per-object tables, the costs, the environment,
the driver's state, the report's files); ``StudyLayout`` adds nnU-Net's folders of the dataset and names the
study's jobs. The job graph, the driver and the report all ask these objects, so they cannot disagree on a name.
Finished report folders of earlier versions open unchanged (``study.json`` and ``layout.json`` keep their form)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pandas as pd

from nnunet_archs.errors import UserError
from nnunet_archs.evaluation.tables import (COLUMNS, OBJECT_COLUMNS, REQUIRED_COLUMNS, REQUIRED_OBJECT_COLUMNS,
                                            objects_path, read_table)
from nnunet_archs.files import write_json_atomically, write_text_atomically
from nnunet_archs.study.spec import StudySpec, safe
from nnunet_archs.registry import study_trainer_name
from nnunet_archs.training.environment import EPOCH_LOG

SPEC, LAYOUT = "study.json", "layout.json"


class _Entry:
    """A file or folder of the report folder, by name: ``folder.jobs`` is ``folder.path / "jobs"``."""

    def __init__(self, name: str):
        self.name = name

    def __get__(self, folder: Optional["StudyFolder"], owner: type):
        return self if folder is None else folder.path / self.name


@dataclass(frozen=True)
class StudyFolder:
    """A study's report folder."""

    path: Path

    # -- what the driver and the jobs write (and per_case*.csv, per_object.csv, results.*: below) ----------------
    spec_file = _Entry(SPEC)
    jobs = _Entry("jobs")  # one folder per job: its log and markers (``runner``)
    state = _Entry("state.json")  # the driver's record of the attempts it submitted (``scheduler``)
    commands = _Entry("commands.sh")
    submitit = _Entry("submitit")
    environment = _Entry("environment.json")
    costs = _Entry("costs.json")

    def job_folder(self, name: str) -> Path:
        return self.jobs / name

    def fold_metrics(self, architecture: str, fold: int, seed: int) -> Path:
        return self.path / "metrics" / f"{safe(architecture)}_fold{fold}_seed{seed}.csv"

    def test_metrics(self, architecture: str, seed: int) -> Path:
        return self.path / "metrics_test" / f"{safe(architecture)}_seed{seed}.csv"

    def test_predictions(self, architecture: str, seed: int) -> Path:
        return self.path / "test_predictions" / f"{safe(architecture)}_seed{seed}"

    # -- opening ---------------------------------------------------------------------------------------------------
    def is_study(self) -> bool:
        return (self.path / SPEC).exists() and (self.path / LAYOUT).exists()

    def check(self) -> None:
        for needed in (SPEC, LAYOUT):
            if not (self.path / needed).exists():
                raise UserError(f"{self.path} is not a study report folder: {needed} is missing")

    def check_finished(self) -> None:
        """A study whose report was written (what combining studies reads)."""
        for needed in (SPEC, LAYOUT, "per_case.csv", "results.md"):
            if not (self.path / needed).exists():
                raise UserError(f"{self.path} is not a finished study ({needed} is missing): run nnunet-archs compare "
                                f"to the end (or nnunet-archs report on it) first")

    def read_spec(self) -> StudySpec:
        return StudySpec.from_json(self.spec_file.read_text())

    def read_layout(self) -> "StudyLayout":
        return StudyLayout(**{k: Path(v) for k, v in json.loads((self.path / LAYOUT).read_text()).items()})

    def write_spec(self, spec: StudySpec) -> None:
        write_text_atomically(self.spec_file, spec.to_json())

    def write_layout(self, layout: "StudyLayout") -> None:
        (self.path / LAYOUT).write_text(json.dumps({k: str(v) for k, v in vars(layout).items()}, indent=1))

    def read_environment(self) -> List[dict]:
        """The driver sessions recorded so far (versions, device, threads)."""
        return json.loads(self.environment.read_text())["sessions"] if self.environment.exists() else []

    def append_environment(self, session: dict) -> None:
        write_json_atomically(self.environment, {"sessions": [*self.read_environment(), session]})

    def read_costs(self) -> Dict[str, dict]:
        return json.loads(self.costs.read_text()) if self.costs.exists() else {}

    def read_state(self) -> Optional[dict]:
        return json.loads(self.state.read_text()) if self.state.exists() else None

    # -- the per-case and per-object tables ------------------------------------------------------------------------
    def tables(self, spec: StudySpec) -> "StudyTables":
        """The cross-validation's per-case table, the test set's and the objects, each assembled from the evaluation
        jobs' tables (``metrics/``, ``metrics_test/``) and written as ``per_case.csv``, ``per_case_test.csv`` and
        ``per_object.csv``, or read from those when no job table exists. Every table is read and checked before
        any is written: a table that is cut or malformed is refused and leaves the folder as it was."""
        fold_parts = self._fold_parts(spec)
        test_parts = [self.test_metrics(a, s) for a in spec.architectures for s in spec.training_seeds]
        kinds = ((fold_parts, "per_case.csv", COLUMNS, REQUIRED_COLUMNS),
                 (test_parts, "per_case_test.csv", COLUMNS, REQUIRED_COLUMNS),
                 ([objects_path(p) for p in fold_parts], "per_object.csv", OBJECT_COLUMNS, REQUIRED_OBJECT_COLUMNS))
        assembled = [self._assemble(parts, self.path / target, required) for parts, target, _, required in kinds]
        if assembled[0][0] is None:
            raise UserError(f"{self.path} has no per-case metrics yet (metrics/*.csv or per_case.csv)")
        for (table, from_parts), (_, target, columns, _) in zip(assembled, kinds):
            if from_parts:
                table.to_csv(self.path / target, index=False, columns=[c for c in columns if c in table.columns])
        return StudyTables(*(table for table, _ in assembled))

    def read_per_case(self) -> pd.DataFrame:
        """The per-case table of a finished study, as its report assembled it."""
        return read_table(self.path / "per_case.csv")

    def _fold_parts(self, spec: StudySpec) -> List[Path]:
        return [self.fold_metrics(a, f, s) for a in spec.architectures for s in spec.training_seeds
                for f in spec.folds]

    @staticmethod
    def _assemble(parts: List[Path], target: Path, required: List[str]) -> Tuple[Optional[pd.DataFrame], bool]:
        """The per-job tables concatenated (and True), or ``target`` when no part exists (and False)."""
        existing = [p for p in parts if p.exists()]
        if existing:
            return pd.concat([read_table(p, required) for p in existing]), True
        return (read_table(target, required) if target.exists() else None), False

    # -- the report ------------------------------------------------------------------------------------------------
    def write_report(self, markdown: str, csv: str, latex: str, sizes_csv: Optional[str]) -> Path:
        (self.path / "results.md").write_text(markdown)
        (self.path / "results.csv").write_text(csv)
        if sizes_csv is not None:
            (self.path / "detection_by_size.csv").write_text(sizes_csv)
        (self.path / "results.tex").write_text(latex)
        return self.path / "results.md"


@dataclass(frozen=True)
class StudyTables:
    """A study's tidy tables: cross-validation per case, test set per case (None without one), objects (None
    without object metrics)."""

    per_case: pd.DataFrame
    per_case_test: Optional[pd.DataFrame]
    per_object: Optional[pd.DataFrame]


@dataclass(frozen=True)
class StudyLayout:
    """nnU-Net's folders of the study's dataset, its report folder, and what its jobs are called."""

    raw: Path
    preprocessed: Path
    results: Path
    report: Path

    @property
    def folder(self) -> StudyFolder:
        return StudyFolder(self.report)

    @staticmethod
    def training_job(architecture: str, fold: int, seed: int) -> str:
        return f"train_{safe(architecture)}_fold{fold}_seed{seed}"

    @staticmethod
    def evaluation_job(architecture: str, fold: int, seed: int) -> str:
        return f"evaluate_{safe(architecture)}_fold{fold}_seed{seed}"

    @staticmethod
    def prediction_job(architecture: str, seed: int) -> str:
        return f"predict_test_{safe(architecture)}_seed{seed}"

    @staticmethod
    def test_evaluation_job(architecture: str, seed: int) -> str:
        return f"evaluate_test_{safe(architecture)}_seed{seed}"

    def results_folder(self, spec: StudySpec, architecture: str, seed: int) -> Path:
        """nnU-Net's ``Trainer__Plans__configuration`` folder; the trainer's name carries the training seed (and says
        whether the network trains with deep supervision: ``registry.study_trainer_name``)."""
        trainer = study_trainer_name(architecture, seed)
        return self.results / self.raw.name / f"{trainer}__{spec.plans_name(architecture)}__{spec.training_configuration}"

    def fold_folder(self, spec: StudySpec, architecture: str, fold: int, seed: int) -> Path:
        return self.results_folder(spec, architecture, seed) / f"fold_{fold}"

    def epoch_log(self, spec: StudySpec, architecture: str, fold: int, seed: int) -> Path:
        """What our trainer logs each epoch (time, peak GPU memory) into the fold's folder."""
        return self.fold_folder(spec, architecture, fold, seed) / EPOCH_LOG

    @property
    def has_test_set(self) -> bool:
        """imagesTs and labelsTs both hold files (empty folders are no test set: nothing to predict)."""
        folders = (self.raw / "imagesTs", self.raw / "labelsTs")
        return all(folder.is_dir() and any(folder.iterdir()) for folder in folders)


def open_study(path: Path) -> StudyFolder:
    """A report folder that holds a study (else a UserError naming what is missing)."""
    folder = StudyFolder(Path(path))
    folder.check()
    return folder
