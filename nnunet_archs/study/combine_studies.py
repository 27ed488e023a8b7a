"""``nnunet-archs report DIR DIR ... -o OUT``: finished studies of one set of networks on several datasets, combined
into one report. It reads only what the studies stored (their spec, layout and per-case table); the arithmetic is
``analysis.consensus``'s and the rendering ``reporting.combined_report``'s."""
from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import List, Sequence

import pandas as pd

from nnunet_archs.analysis.consensus import Endpoint, challenger_rows, consensus, pairwise, suitability
from nnunet_archs.analysis.statistics import StudyStatistics, analyse
from nnunet_archs.analysis.table import MEAN_LABEL, case_matrix, normalise, scored
from nnunet_archs.errors import UserError
from nnunet_archs.evaluation.metrics import metric as metric_record
from nnunet_archs.reporting.combined_report import write_combined
from nnunet_archs.reporting.results import CombinedResults, DatasetResults
from nnunet_archs.study.folder import StudyFolder
from nnunet_archs.study.spec import FLAGS, StudySpec

# what may differ between combined studies, and is then stated (the rest identifies a study, not its method)
COMPARED_FIELDS = ("configuration", "folds", "metrics", "nsd_tolerance_mm", "budget", "gpu_memory_target", "device",
                   "training_seeds", "primary", "failures", "margins", "object_labels", "match_iou")


@dataclass
class FinishedStudy:
    folder: Path
    name: str
    spec: StudySpec
    table: pd.DataFrame  # scored per-case table
    statistics: StudyStatistics  # of the primary endpoint

    def results(self) -> DatasetResults:
        """What the combined report shows of this study."""
        metric, label = self.spec.primary_metric, self.spec.primary_label
        summaries = {a: self.statistics.summary(a, metric, label) for a in self.spec.architectures}
        record = metric_record(metric)
        bounds = record.study_range(self.table.loc[self.table["metric"] == metric, "worst_case"].astype(float))
        endpoint = Endpoint(self.name, case_matrix(self.table, metric, label).reindex(columns=self.spec.architectures),
                            record.lower_is_better, _mean(s.sd_over_folds for s in summaries.values()),
                            _mean(s.sd_over_seeds for s in summaries.values()), bounds)
        return DatasetResults(self.folder, self.name, self.spec.primary, endpoint, summaries, self.challenger())

    def challenger(self) -> pd.DataFrame:
        """The primary endpoint and every metric at the label mean, per case (over training seeds); the task is
        the dataset (the combined report writes a file per endpoint)."""
        spec = self.spec
        endpoints = dict.fromkeys([(spec.primary_metric, spec.primary_label), *[(m, MEAN_LABEL) for m in spec.metrics]])
        return pd.concat([challenger_rows(self.name, case_matrix(self.table, metric, label).reindex(
            columns=spec.architectures), metric, label, metric_record(metric).lower_is_better)
            for metric, label in endpoints], ignore_index=True)


def _mean(values) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(sum(finite) / len(finite)) if finite else math.nan


def load_study(path: Path) -> FinishedStudy:
    """A finished study folder: its spec, its scored per-case table and the statistics of its primary endpoint."""
    folder = StudyFolder(Path(path))
    folder.check_finished()
    spec, layout = folder.read_spec(), folder.read_layout()
    table = scored(normalise(folder.read_per_case()), spec.failures)
    matrix = case_matrix(table, spec.primary_metric, spec.primary_label).reindex(columns=spec.architectures)
    unmeasured = [a for a in spec.architectures if matrix[a].isna().all()]
    if unmeasured:
        raise UserError(f"{path} is not a finished study: no {spec.primary} values for {unmeasured}")
    statistics = analyse(table, spec.architectures, spec.baseline, [spec.primary_metric], spec.seed,
                         spec.bootstrap_resamples, (spec.primary_metric, spec.primary_label), spec.margins,
                         spec.failures)
    return FinishedStudy(Path(path), layout.raw.name, spec, table, statistics)


def check_studies(studies: Sequence[FinishedStudy]) -> None:
    """Refuse studies of different networks; name studies of one dataset after their folders too."""
    sets = {tuple(sorted(s.spec.architectures)) for s in studies}
    if len(sets) > 1:
        listing = "; ".join(f"{s.folder}: {s.spec.architectures}" for s in studies)
        raise UserError(f"the studies compare different architectures ({listing}); combine studies of one set")
    names = [s.name for s in studies]
    for depth in range(1, max(len(s.folder.resolve().parts) for s in studies) + 1):
        suffixes = ["/".join(s.folder.resolve().parts[-depth:]) for s in studies]
        if len(set(suffixes)) == len(suffixes):
            break
    for study, suffix in zip(studies, suffixes):
        if names.count(study.name) > 1:  # studies of one dataset: told apart by their folders
            study.name = f"{study.name} ({suffix})"


def stated_differences(studies: Sequence[FinishedStudy]) -> List[str]:
    """One line per setting the studies were run with differently."""
    lines = []
    for name in COMPARED_FIELDS:
        values = [getattr(s.spec, name) for s in studies]
        if any(v != values[0] for v in values[1:]):
            lines.append(f"{FLAGS.get(name, name)}: " + "; ".join(f"{s.name}: {v}" for s, v in zip(studies, values)))
    return lines


def combine_studies(folders: Sequence[Path], output: Path, overwrite: bool = False) -> Path:
    """Combine the finished studies in ``folders`` into a report in ``output`` (replaced only with
    ``overwrite``); returns its ``combined.md``."""
    output = Path(output)
    if output.resolve() in {Path(f).resolve() for f in folders}:
        raise UserError(f"-o {output} is one of the study folders; choose a new folder for the combined report")
    if output.exists() and not overwrite:
        raise UserError(f"{output} exists; choose another -o or pass --overwrite (which replaces that folder only)")
    finished = [load_study(Path(f)) for f in folders]
    check_studies(finished)
    studies = [s.results() for s in finished]
    architectures = list(finished[0].spec.architectures)
    seed, resamples = finished[0].spec.seed, finished[0].spec.bootstrap_resamples
    ranking = consensus([s.endpoint for s in studies], architectures, seed, resamples)
    pairs = {s.name: pairwise(s.endpoint, architectures, seed, resamples) for s in studies}
    results = CombinedResults(studies, architectures, stated_differences(finished), ranking, pairs,
                              {s.name: suitability(s.endpoint, pairs[s.name]) for s in studies}, seed, resamples)
    if output.exists():
        shutil.rmtree(output)
    return write_combined(results, output)
