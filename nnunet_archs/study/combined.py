"""``nnunet-archs report DIR DIR ... -o OUT``: finished studies of one set of networks on several datasets,
combined into one report (``combined.md``, ``combined.csv``, ``results.tex`` with a column per dataset, the blob
plot ``ranks_blob.png``, the significance maps ``significance.png`` and ``challenger.csv`` for R users of
challengeR). It reads only what the studies stored (``study.json``, ``layout.json``, ``per_case.csv``); the
arithmetic is ``combine``'s."""
from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence

import pandas as pd

from nnunet_archs.errors import UserError
from nnunet_archs.study.combine import (Consensus, Endpoint, PairwiseResult, Suitability, challenger_rows, consensus,
                                        pairwise, suitability)
from nnunet_archs.study.jobs import StudyLayout
from nnunet_archs.study.metrics import LOWER_IS_BETTER, MEAN_LABEL
from nnunet_archs.study.records import TEXT_COLUMNS
from nnunet_archs.study.spec import FLAGS, StudySpec
from nnunet_archs.study.statistics import StudyStatistics, analyse, case_matrix, normalise, scored

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

    @property
    def endpoint(self) -> Endpoint:
        metric, label = self.spec.primary_metric, self.spec.primary_label
        summaries = [self.statistics.summary(a, metric, label) for a in self.spec.architectures]
        return Endpoint(self.name, case_matrix(self.table, metric, label).reindex(columns=self.spec.architectures),
                        metric in LOWER_IS_BETTER, _mean(s.sd_over_folds for s in summaries),
                        _mean(s.sd_over_seeds for s in summaries))


def _fmt(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3f}"


def _mean(values) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(sum(finite) / len(finite)) if finite else math.nan


def load_study(folder: Path) -> FinishedStudy:
    """A finished study folder: its spec, its scored per-case table and the statistics of its primary endpoint."""
    for needed in ("study.json", "layout.json", "per_case.csv", "results.md"):
        if not (folder / needed).exists():
            raise UserError(f"{folder} is not a finished study ({needed} is missing): run nnunet-archs compare to the "
                            f"end (or nnunet-archs report on it) first")
    spec = StudySpec.from_json((folder / "study.json").read_text())
    layout = StudyLayout(**{k: Path(v) for k, v in json.loads((folder / "layout.json").read_text()).items()})
    table = scored(normalise(pd.read_csv(folder / "per_case.csv", dtype=TEXT_COLUMNS)), spec.failures)
    matrix = case_matrix(table, spec.primary_metric, spec.primary_label).reindex(columns=spec.architectures)
    unmeasured = [a for a in spec.architectures if matrix[a].isna().all()]
    if unmeasured:
        raise UserError(f"{folder} is not a finished study: no {spec.primary} values for {unmeasured}")
    statistics = analyse(table, spec.architectures, spec.baseline, [spec.primary_metric], spec.seed,
                         spec.bootstrap_resamples, (spec.primary_metric, spec.primary_label), spec.margins,
                         spec.failures)
    return FinishedStudy(folder, layout.raw.name, spec, table, statistics)


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


class CombinedReport:
    def __init__(self, studies: Sequence[FinishedStudy], seed: int, resamples: int):
        self.studies = list(studies)
        self.architectures = list(studies[0].spec.architectures)
        self.endpoints = [s.endpoint for s in studies]
        self.consensus: Consensus = consensus(self.endpoints, self.architectures, seed, resamples)
        self.pairs: Dict[str, List[PairwiseResult]] = {e.name: pairwise(e, self.architectures, seed, resamples)
                                                       for e in self.endpoints}
        self.suitability: Dict[str, Suitability] = {e.name: suitability(e, self.pairs[e.name])
                                                    for e in self.endpoints}
        self.seed, self.resamples = seed, resamples

    def _summary(self, study: FinishedStudy, architecture: str):
        return study.statistics.summary(architecture, study.spec.primary_metric, study.spec.primary_label)

    def markdown(self) -> str:
        def table(header: List[str], rows: List[List[str]]) -> List[str]:
            return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + \
                   ["| " + " | ".join(row) + " |" for row in rows]
        c = self.consensus
        lines = [f"Combined report of {len(self.studies)} studies of {', '.join(self.architectures)} on "
                 f"{', '.join(s.name for s in self.studies)}.", ""]
        differences = stated_differences(self.studies)
        lines += (["The studies differ in (so read a comparison across datasets with that in mind):", "",
                   *[f"- {line}" for line in differences]] if differences else
                  ["The studies were run with the same settings."])
        lines += ["", "### Per dataset: each study's primary endpoint, mean (95 % CI) and rank", ""]
        header = ["architecture"] + [f"{s.name}: {s.spec.primary}" for s in self.studies] + \
            ["mean rank", "consensus rank", "ranked first in"]
        rows = []
        for a in sorted(self.architectures, key=lambda a: c.rank[a]):
            cells = []
            for study in self.studies:
                summary = self._summary(study, a)
                cells.append(f"{summary.mean:.3f} ({summary.ci[0]:.3f}, {summary.ci[1]:.3f}) "
                             f"#{c.dataset_ranks[study.name][a]:g}")
            rows.append([a, *cells, f"{c.mean_rank[a]:.2f}", f"{c.rank[a]:g}", f"{100 * c.first_share[a]:.0f} %"])
        lines += table(header, rows)
        lines += ["", f"Ranking rules (as challengeR's consensus): within a dataset mean-then-rank (the networks "
                  f"ranked by their mean over the cases every network has, ties sharing the average rank); across "
                  f"datasets the mean rank. Uncertainty: {self.resamples} bootstrap resamples of the cases within "
                  f"every dataset (bootstrap seed {self.seed}); 'ranked first in' is the share of resamples in which "
                  f"a network has the best consensus rank.", "", "### Distribution of the consensus rank", ""]
        lines += table(["architecture"] + [f"rank {k}" for k in range(1, len(self.architectures) + 1)],
                       [[a] + [f"{100 * c.rank_shares[a].get(k, 0):.0f} %" for k in
                               range(1, len(self.architectures) + 1)] for a in self.architectures])
        lines += ["", "### All pairwise comparisons per dataset", "",
                  "Paired Wilcoxon signed-rank tests on each dataset's cases, Holm-corrected over all pairs of that "
                  "dataset: other p-values than a single study's, which compares each network with its baseline "
                  "only."]
        for study in self.studies:
            lines += ["", f"{study.name} ({study.spec.primary}):", ""]
            lines += table(["pair", "paired cases", "Δ first - second (95 % CI)", "p (Holm)", "better"],
                           [[f"{p.first} vs {p.second}", str(p.n_pairs), f"{p.mean_difference:+.3f} "
                             f"({p.ci[0]:+.3f}, {p.ci[1]:+.3f})", "< 0.001" if p.p_holm < 0.001 else
                             f"{p.p_holm:.3f}", p.better or "no evidence of a difference"]
                            for p in self.pairs[study.name]])
        lines += ["", "### Can each dataset separate the networks?", ""]
        lines += table(["dataset", "cases", "sd between the networks' means", "sd over folds", "sd over training seeds",
                        "a pair differs (95 % CI without 0)"],
                       [[s.name, str(len(e.complete)), *(_fmt(v) for v in (fit.between_networks, fit.over_folds,
                                                                            fit.over_seeds)),
                         "yes" if fit.any_difference else "no"]
                        for s, e in zip(self.studies, self.endpoints) for fit in [self.suitability[s.name]]])
        warnings = [f"Warning: {s.name} cannot separate the networks at its {len(e.complete)} cases: every pairwise "
                    f"interval contains 0 and the spread between the networks ({fit.between_networks:.3f}) is "
                    f"smaller than the spread over folds ({fit.over_folds:.3f}); its ranks are noise, consider "
                    f"leaving it out of the consensus."
                    for s, e in zip(self.studies, self.endpoints) for fit in [self.suitability[s.name]]
                    if fit.cannot_separate]
        lines += ["", *warnings] if warnings else []
        return "\n".join(lines) + "\n"

    def csv_rows(self) -> List[dict]:
        c = self.consensus
        rows = []
        for study in self.studies:
            for a in self.architectures:
                summary = self._summary(study, a)
                rows.append({"dataset": study.name, "folder": str(study.folder), "endpoint": study.spec.primary,
                             "architecture": a, "n_cases": summary.n_cases, "mean": summary.mean, "sd": summary.sd,
                             "ci_low": summary.ci[0], "ci_high": summary.ci[1],
                             "rank": c.dataset_ranks[study.name][a], "mean_rank": c.mean_rank[a],
                             "consensus_rank": c.rank[a], "first_share": c.first_share[a]})
        return rows

    def latex(self) -> str:
        def escape(text: str) -> str:
            return text.replace("_", "\\_").replace("%", "\\%").replace("±", "$\\pm$").replace("&", "\\&")
        columns = len(self.studies) + 2
        lines = ["% nnunet-archs report (combined): include with \\usepackage{booktabs}", "\\begin{table}[t]",
                 "\\centering", f"\\caption{{{escape(', '.join(self.architectures))} on {len(self.studies)} "
                 f"datasets: mean $\\pm$ sd of each study's primary endpoint, and the consensus rank}}",
                 "\\begin{tabular}{l" + "c" * (columns - 1) + "}", "\\toprule",
                 " & ".join(["architecture", *[escape(f"{s.name} ({s.spec.primary})") for s in self.studies],
                             "consensus rank"]) + " \\\\", "\\midrule"]
        for a in sorted(self.architectures, key=lambda a: self.consensus.rank[a]):
            cells = [f"{self._summary(s, a).mean:.3f} ± {self._summary(s, a).sd:.3f}" for s in self.studies]
            lines.append(" & ".join(escape(x) for x in [a, *cells, f"{self.consensus.rank[a]:g}"]) + " \\\\")
        lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
        return "\n".join(lines) + "\n"

    def challenger(self) -> pd.DataFrame:
        """Every study's primary endpoint and every metric at the label mean, per case (over training seeds)."""
        frames = []
        for study in self.studies:
            endpoints = dict.fromkeys([(study.spec.primary_metric, study.spec.primary_label),
                                       *[(m, MEAN_LABEL) for m in study.spec.metrics]])
            for metric, label in endpoints:
                matrix = case_matrix(study.table, metric, label).reindex(columns=self.architectures)
                frames.append(challenger_rows(study.name, matrix, metric, label, metric in LOWER_IS_BETTER))
        return pd.concat(frames, ignore_index=True)

    def write(self, output: Path) -> Path:
        from nnunet_archs.study.plots import plot_rank_blobs, plot_significance
        output.mkdir(parents=True)
        (output / "combined.md").write_text(self.markdown())
        pd.DataFrame(self.csv_rows()).to_csv(output / "combined.csv", index=False)
        (output / "results.tex").write_text(self.latex())
        self.challenger().to_csv(output / "challenger.csv", index=False)
        plot_rank_blobs(self.consensus, [s.name for s in self.studies], output / "ranks_blob.png")
        plot_significance(self.pairs, self.architectures, output / "significance.png")
        return output / "combined.md"


def combine_studies(folders: Sequence[Path], output: Path, overwrite: bool = False) -> Path:
    """Combine the finished studies in ``folders`` into a report in ``output`` (replaced only with
    ``overwrite``); returns its ``combined.md``."""
    output = Path(output)
    if output.resolve() in {Path(f).resolve() for f in folders}:
        raise UserError(f"-o {output} is one of the study folders; choose a new folder for the combined report")
    if output.exists() and not overwrite:
        raise UserError(f"{output} exists; choose another -o or pass --overwrite (which replaces that folder only)")
    studies = [load_study(Path(f)) for f in folders]
    check_studies(studies)
    report = CombinedReport(studies, studies[0].spec.seed, studies[0].spec.bootstrap_resamples)
    if output.exists():
        shutil.rmtree(output)
    return report.write(output)

