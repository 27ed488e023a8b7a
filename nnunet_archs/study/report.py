"""The study's report: tables (``results.md``, ``results.csv``, ``results.tex`` with a booktabs table), per-case
plots and Pareto plots. It renders what ``statistics`` computed from ``per_case.csv`` and what the jobs left on
disk (costs, wall times, GPU memory per epoch, failures); ``nnunet-archs report DIR`` redraws it from those files.
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import pandas as pd

from nnunet_archs.errors import UserError
from nnunet_archs.study.jobs import StudyLayout
from nnunet_archs.study.metrics import COLUMNS, EMPTY_CONVENTIONS, LOWER_IS_BETTER
from nnunet_archs.study.runner import DONE, FAILED, read_marker
from nnunet_archs.study.spec import StudySpec
from nnunet_archs.study.statistics import MEAN_LABEL, StudyStatistics, analyse

ALPHA = 0.05
UNITS = {"HD95": " mm"}


@dataclass
class TrainingCost:
    """What the trainings of one network took: wall time per fold, and peak GPU memory where it was measured."""

    seconds_per_fold: Dict[int, float] = field(default_factory=dict)
    peak_memory_bytes: Optional[int] = None  # None: not trained on CUDA, so not measured
    gpus: int = 0

    @property
    def gpu_hours(self) -> float:
        return sum(self.seconds_per_fold.values()) * self.gpus / 3600


def assemble(parts: List[Path], target: Path) -> Optional[pd.DataFrame]:
    """Concatenate the per-job metric CSVs into one tidy table (or read ``target`` when no parts exist)."""
    existing = [p for p in parts if p.exists()]
    if existing:
        table = pd.concat([pd.read_csv(p, dtype={"fold": str, "case": str, "label": str}) for p in existing])
        table.to_csv(target, index=False, columns=COLUMNS)
        return table
    if target.exists():
        return pd.read_csv(target, dtype={"fold": str, "case": str, "label": str})
    return None


def training_costs(spec: StudySpec, layout: StudyLayout) -> Dict[str, TrainingCost]:
    costs = {}
    for architecture in spec.architectures:
        cost = TrainingCost(gpus=spec.num_gpus if spec.device.startswith("cuda") else 0)
        peaks = []
        for fold in spec.folds:
            done = read_marker(layout.job_folder(layout.training_job(architecture, fold)), DONE)
            if done:
                cost.seconds_per_fold[fold] = done["seconds"]
            epochs = layout.epoch_log(spec, architecture, fold)
            if epochs.exists():
                peaks += [json.loads(line).get("max_memory_allocated_bytes") for line in epochs.read_text().split("\n")
                          if line.strip()]
        measured = [p for p in peaks if p is not None]
        cost.peak_memory_bytes = max(measured) if measured else None
        costs[architecture] = cost
    return costs


def failures(layout: StudyLayout) -> List[str]:
    """One line per job that failed or never ran because a job it needs failed."""
    lines = []
    if not layout.jobs.exists():
        return lines
    for folder in sorted(layout.jobs.iterdir()):
        failed = read_marker(folder, FAILED)
        if failed and not (folder / DONE).exists():
            how = "killed by a signal" if failed.get("killed") else f"exit status {failed['returncode']}"
            lines.append(f"{folder.name}: {how}; read {failed['log']}")
    return lines


def training_jobs(spec: StudySpec, layout: StudyLayout) -> List[List[str]]:
    """Every training's attempts and the executor's job ids (SLURM job ids on a cluster), from state.json."""
    state_path = layout.report / "state.json"
    if not state_path.exists():
        return []
    records = json.loads(state_path.read_text())["jobs"]
    rows = []
    for name in (layout.training_job(a, f) for a in spec.architectures for f in spec.folds):
        record = records.get(name)
        if not record or not record["attempts"]:
            continue
        done = read_marker(layout.job_folder(name), DONE)
        rows.append([name, str(len(record["attempts"])), ", ".join(
            f"{a['executor']} {a['job_id']} ({a['status']})" for a in record["attempts"]),
            f"{done['seconds']:.0f}" if done else "-"])
    return rows


def _fmt(value: float, digits: int = 3) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _signed(value: float, digits: int = 3) -> str:
    return "n/a" if math.isnan(value) else f"{value:+.{digits}f}"


def _p(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def verdict(architecture: str, baseline: str, metric: str, comparison, budget_note: str) -> str:
    """One plain-language line per architecture."""
    if comparison is None or comparison.n_pairs == 0:
        return f"{architecture} vs {baseline}: no paired cases to compare."
    unit = UNITS.get(metric, "")
    text = (f"{architecture} vs {baseline}: {_signed(comparison.mean_difference)}{unit} {metric} "
            f"({_signed(comparison.ci[0])}, {_signed(comparison.ci[1])}), p = {_p(comparison.p_holm)} (Holm), "
            f"{comparison.n_pairs} paired cases: ")
    if not math.isnan(comparison.p_holm) and comparison.p_holm < ALPHA:
        better = (comparison.mean_difference < 0) == (metric in LOWER_IS_BETTER)
        return text + f"evidence that {architecture} is {'better' if better else 'worse'} {budget_note}."
    return text + f"no evidence of a difference {budget_note}."


class Report:
    def __init__(self, spec: StudySpec, layout: StudyLayout, table: pd.DataFrame, statistics: StudyStatistics,
                 test_table: Optional[pd.DataFrame], test_statistics: Optional[StudyStatistics],
                 costs: Dict[str, dict], training: Dict[str, TrainingCost], failed: List[str], jobs: List[List[str]],
                 header: str):
        self.spec, self.layout, self.table, self.statistics = spec, layout, table, statistics
        self.test_table, self.test_statistics = test_table, test_statistics
        self.costs, self.training, self.failed, self.jobs, self.header = costs, training, failed, jobs, header

    # -- tables --------------------------------------------------------------------------------------------------
    def _cell(self, statistics: StudyStatistics, architecture: str, metric: str, with_ci: bool) -> str:
        summary = statistics.summary(architecture, metric)
        if summary is None or summary.n_cases == 0:
            return "missing"
        digits = 1 if metric == "HD95" else 3
        text = f"{_fmt(summary.mean, digits)} ± {_fmt(summary.sd, digits)}"
        if with_ci:
            text += f" ({_fmt(summary.ci[0], digits)}, {_fmt(summary.ci[1], digits)})"
        if summary.n_missing:
            text += f" [{summary.n_missing} n/a]"
        return text

    def _memory(self, architecture: str) -> str:
        cost = self.training.get(architecture)
        if cost is None or cost.peak_memory_bytes is None:
            return "n/a (not CUDA)" if not self.spec.device.startswith("cuda") else "n/a"
        return f"{cost.peak_memory_bytes / 2 ** 30:.1f} GB"

    def _time(self, architecture: str) -> str:
        cost = self.training.get(architecture)
        if cost is None or not cost.seconds_per_fold:
            return "missing"
        per_fold = np.mean(list(cost.seconds_per_fold.values())) / 60
        if cost.gpus:
            return f"{cost.gpu_hours:.2f} GPU-h ({per_fold:.1f} min/fold)"
        return f"{per_fold:.1f} min/fold"

    def main_rows(self, statistics: StudyStatistics, with_costs: bool = True) -> List[List[str]]:
        metric = self.spec.metrics[0]
        others = self.spec.metrics[1:]
        rows = []
        for architecture in self.spec.architectures:
            comparison = statistics.comparison(architecture, metric)
            if architecture == self.spec.baseline:
                delta, p = "baseline", ""
            elif comparison is None or comparison.n_pairs == 0:
                delta, p = "n/a", "n/a"
            else:
                delta = (f"{_signed(comparison.mean_difference)} ({_signed(comparison.ci[0])}, "
                         f"{_signed(comparison.ci[1])})")
                p = _p(comparison.p_holm)
            row = [architecture, self._cell(statistics, architecture, metric, True), delta, p,
                   *[self._cell(statistics, architecture, m, False) for m in others]]
            if with_costs:
                params = self.costs.get(architecture, {}).get("params")
                row += [self._memory(architecture), self._time(architecture),
                        f"{params / 1e6:.2f}" if params else "n/a"]
            rows.append(row)
        return rows

    def main_header(self, with_costs: bool = True) -> List[str]:
        metric = self.spec.metrics[0]
        header = ["architecture", f"{metric} mean ± sd (95 % CI)", f"Δ {metric} vs {self.spec.baseline} (95 % CI)",
                  "p (Holm)", *[f"{m}{UNITS.get(m, '')} mean ± sd" for m in self.spec.metrics[1:]]]
        if with_costs:
            header += ["GPU memory (training peak)", "training time", "params (M)"]
        return header

    def footing_rows(self) -> List[List[str]]:
        rows = []
        for architecture in self.spec.architectures:
            cost = self.costs.get(architecture)
            if not cost:
                rows.append([architecture] + ["missing"] * 6)
                continue
            rows.append([architecture, "x".join(map(str, cost["patch"])), str(cost["batch"]),
                         f"{cost['estimated_gb']:.3g}", cost["closest_preset"], f"{cost['gflops_per_patch']:.1f}",
                         self._memory(architecture)])
        return rows

    def label_rows(self, statistics: StudyStatistics) -> List[List[str]]:
        rows = []
        labels = sorted({s.label for s in statistics.summaries if s.label != MEAN_LABEL})
        for metric in self.spec.metrics:
            for label in labels:
                for architecture in self.spec.architectures:
                    summary = statistics.summary(architecture, metric, label)
                    comparison = statistics.comparison(architecture, metric, label)
                    rows.append([metric, label, architecture, f"{_fmt(summary.mean)} ± {_fmt(summary.sd)}",
                                 f"{_fmt(summary.sd_over_folds)}", "" if comparison is None else
                                 f"{_signed(comparison.mean_difference)} ({_signed(comparison.ci[0])}, "
                                 f"{_signed(comparison.ci[1])})", "" if comparison is None else _p(comparison.p_holm)])
        return rows

    # -- files ---------------------------------------------------------------------------------------------------
    def markdown(self) -> str:
        def table(header: List[str], rows: List[List[str]]) -> List[str]:
            return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + \
                   ["| " + " | ".join(row) + " |" for row in rows]

        budget_note = f"at this budget ({self.spec.budget})"
        metric = self.spec.metrics[0]
        lines = [self.header, "", f"### Cross-validation ({len(self.spec.folds)} folds, every case predicted by the "
                 f"fold model that did not train on it; label mean per case)", ""]
        lines += table(self.main_header(), self.main_rows(self.statistics))
        lines += ["", *[verdict(a, self.spec.baseline, metric, self.statistics.comparison(a, metric), budget_note)
                        for a in self.spec.architectures if a != self.spec.baseline], ""]
        for m in self.spec.metrics:
            shares = self.statistics.rank_first.get((m, MEAN_LABEL), {})
            lines.append(f"Rank stability ({m}): first in " + ", ".join(
                f"{a} {_fmt(100 * s, 0)} %" for a, s in shares.items()) +
                f" of {self.statistics.resamples} bootstrap resamples of the cases.")
        lines += ["", "### Footing: every network planned by its own planner at the same GPU memory target", ""]
        lines += table(["architecture", "patch", "batch", "estimated memory (GB)", "closest ResEnc preset",
                        "GFLOPs per patch (fwd)", "measured training memory"], self.footing_rows())
        lines += ["", "### Per label (sd over folds: of the per-fold means)", ""]
        lines += table(["metric", "label", "architecture", "mean ± sd over cases", "sd over folds",
                        f"Δ vs {self.spec.baseline} (95 % CI)", "p (Holm)"], self.label_rows(self.statistics))
        if self.test_statistics is not None:
            lines += ["", "### Labelled test set (imagesTs/labelsTs), ensemble of the fold models; never mixed with "
                      "the cross-validation above", ""]
            lines += table(self.main_header(False), self.main_rows(self.test_statistics, False))
        if self.failed:
            lines += ["", "### Missing results", "", *[f"- {line}" for line in self.failed]]
        if self.jobs:
            lines += ["", "### Trainings", ""]
            lines += table(["job", "attempts", "executor job ids", "seconds"], self.jobs)
        lines += ["", "### Method", "", self.method_text()]
        return "\n".join(lines) + "\n"

    def method_text(self) -> str:
        spec = self.spec
        return (f"Statistics over cases paired by case id; 95 % confidence intervals by BCa bootstrap "
                f"({self.statistics.resamples} resamples, seed {self.statistics.seed}); two-sided Wilcoxon signed-rank "
                f"tests against {spec.baseline}, Holm-corrected across the {len(spec.architectures) - 1} comparison(s) "
                f"per metric and label; rank stability = share of bootstrap resamples of the cases in which an "
                f"architecture has the best mean (ties split). NSD at {spec.nsd_tolerance_mm:g} mm and HD95 in mm use "
                f"the image spacing (MONAI). {EMPTY_CONVENTIONS} Mean over labels per case leaves NaN labels out. "
                f"torch.compile {'on' if spec.compile_enabled else 'off'} (nnU-Net's nnUNet_compile).")

    def write(self) -> Path:
        folder = self.layout.report
        (folder / "results.md").write_text(self.markdown())
        self.write_csv(folder / "results.csv")
        (folder / "results.tex").write_text(self.latex())
        self.plot_cases(folder)
        self.plot_pareto(folder)
        return folder / "results.md"

    def write_csv(self, path: Path) -> None:
        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["set", "architecture", "metric", "label", "n_cases", "n_missing", "mean", "sd", "ci_low",
                             "ci_high", "sd_over_folds", "delta_vs_baseline", "delta_ci_low", "delta_ci_high", "p",
                             "p_holm", "rank_first_share", "patch", "batch", "estimated_gb", "closest_preset", "params",
                             "gflops_per_patch", "training_peak_memory_bytes", "training_seconds_per_fold"])
            for name, statistics in (("cross-validation", self.statistics), ("test", self.test_statistics)):
                if statistics is None:
                    continue
                for s in statistics.summaries:
                    c = statistics.comparison(s.architecture, s.metric, s.label)
                    cost = self.costs.get(s.architecture, {})
                    training = self.training.get(s.architecture, TrainingCost())
                    writer.writerow([
                        name, s.architecture, s.metric, s.label, s.n_cases, s.n_missing, s.mean, s.sd, *s.ci,
                        s.sd_over_folds, *(("", "", "", "", "") if c is None else
                                           (c.mean_difference, *c.ci, c.p_value, c.p_holm)),
                        statistics.rank_first.get((s.metric, s.label), {}).get(s.architecture, ""),
                        "x".join(map(str, cost.get("patch", []))), cost.get("batch", ""), cost.get("estimated_gb", ""),
                        cost.get("closest_preset", ""), cost.get("params", ""), cost.get("gflops_per_patch", ""),
                        training.peak_memory_bytes if training.peak_memory_bytes is not None else "",
                        np.mean(list(training.seconds_per_fold.values())) if training.seconds_per_fold else ""])

    def latex(self) -> str:
        def escape(text: str) -> str:
            return (text.replace("\\", "\\textbackslash{}").replace("_", "\\_").replace("%", "\\%")
                    .replace("±", "$\\pm$").replace("Δ", "$\\Delta$").replace("&", "\\&"))
        header = self.main_header()
        lines = ["% nnunet-archs compare: include with \\usepackage{booktabs}", "\\begin{table}[t]", "\\centering",
                 f"\\caption{{{escape(self.header.splitlines()[0])}}}", "\\begin{tabular}{l" + "c" * (len(header) - 1)
                 + "}", "\\toprule", " & ".join(escape(h) for h in header) + " \\\\", "\\midrule"]
        lines += [" & ".join(escape(cell) for cell in row) + " \\\\" for row in self.main_rows(self.statistics)]
        lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
        return "\n".join(lines) + "\n"

    # -- plots ---------------------------------------------------------------------------------------------------
    def plot_cases(self, folder: Path) -> None:
        """Per-case values of every architecture (box and points), each case joined across architectures."""
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from nnunet_archs.study.statistics import case_matrix
        for metric in self.spec.metrics:
            matrix = case_matrix(self.table, metric, MEAN_LABEL).reindex(columns=self.spec.architectures)
            figure, axis = plt.subplots(figsize=(1.8 + 1.6 * len(matrix.columns), 4))
            positions = np.arange(len(matrix.columns))
            for _, values in matrix.iterrows():
                axis.plot(positions, values.to_numpy(dtype=float), color="0.8", lw=0.6, zorder=1)
            data = [matrix[c].dropna().to_numpy() for c in matrix.columns]
            axis.boxplot(data, positions=positions, widths=0.5, showfliers=False, zorder=2)
            rng = np.random.default_rng(0)  # jitter only
            for i, values in enumerate(data):
                axis.scatter(i + rng.uniform(-0.08, 0.08, len(values)), values, s=10, zorder=3)
            axis.set_xticks(positions, matrix.columns, rotation=15)
            axis.set_ylabel(f"{metric}{UNITS.get(metric, '')} per case (label mean)")
            axis.set_title(f"{metric}: cross-validation, lines join the same case")
            figure.tight_layout()
            figure.savefig(folder / f"per_case_{metric}.png", dpi=120)
            plt.close(figure)

    def plot_pareto(self, folder: Path) -> None:
        """Mean of the first metric with its CI against training memory and against training time."""
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        metric = self.spec.metrics[0]
        for name, label, value in (
                ("memory", "training memory (GB; measured peak, else the planner's estimate)", self._memory_gb),
                ("time", "training time per fold (min)", self._minutes)):
            points = [(a, value(a), self.statistics.summary(a, metric)) for a in self.spec.architectures]
            points = [(a, x, s) for a, x, s in points if x is not None and s is not None and not math.isnan(s.mean)]
            figure, axis = plt.subplots(figsize=(6, 4))
            for architecture, x, s in points:
                axis.errorbar(x, s.mean, yerr=[[s.mean - s.ci[0]], [s.ci[1] - s.mean]], fmt="o", capsize=3)
                axis.annotate(architecture, (x, s.mean), textcoords="offset points", xytext=(5, 5))
            front, best = [], -math.inf if metric not in LOWER_IS_BETTER else math.inf
            for architecture, x, s in sorted(points, key=lambda p: p[1]):
                if (s.mean > best) if metric not in LOWER_IS_BETTER else (s.mean < best):
                    best = s.mean
                    front.append((x, s.mean))
            if front:
                axis.step(*zip(*front), where="post", color="0.6", lw=1, label="Pareto front")
                axis.legend(loc="lower right")
            axis.set_xlabel(label)
            axis.set_ylabel(f"mean {metric} (95 % CI)")
            figure.tight_layout()
            figure.savefig(folder / f"pareto_{name}.png", dpi=120)
            plt.close(figure)

    def _memory_gb(self, architecture: str) -> Optional[float]:
        cost = self.training.get(architecture)
        if cost is not None and cost.peak_memory_bytes is not None:
            return cost.peak_memory_bytes / 2 ** 30
        return self.costs.get(architecture, {}).get("estimated_gb")

    def _minutes(self, architecture: str) -> Optional[float]:
        cost = self.training.get(architecture)
        return float(np.mean(list(cost.seconds_per_fold.values()))) / 60 if cost and cost.seconds_per_fold else None


def build_report(report_folder: Path, header_extra: str = "") -> Report:
    """Assemble the per-case tables, run the statistics and prepare the report of a study folder."""
    for needed in ("study.json", "layout.json"):
        if not (report_folder / needed).exists():
            raise UserError(f"{report_folder} is not a study report folder: {needed} is missing")
    spec = StudySpec.from_json((report_folder / "study.json").read_text())
    layout_data = json.loads((report_folder / "layout.json").read_text())
    layout = StudyLayout(**{k: Path(v) for k, v in layout_data.items()})
    table = assemble([layout.fold_metrics(a, f) for a in spec.architectures for f in spec.folds],
                     report_folder / "per_case.csv")
    if table is None:
        raise UserError(f"{report_folder} has no per-case metrics yet (metrics/*.csv or per_case.csv)")
    statistics = analyse(table, spec.architectures, spec.baseline, spec.metrics, spec.seed, spec.bootstrap_resamples)
    test_table = assemble([layout.test_metrics(a) for a in spec.architectures], report_folder / "per_case_test.csv")
    test_statistics = None if test_table is None else analyse(
        test_table, spec.architectures, spec.baseline, spec.metrics, spec.seed, spec.bootstrap_resamples)
    costs_path = report_folder / "costs.json"
    costs = json.loads(costs_path.read_text()) if costs_path.exists() else {}
    header = (f"Study of dataset {spec.dataset_id} ({layout.raw.name}), configuration {spec.configuration}, folds "
              f"{' '.join(map(str, spec.folds))}, GPU memory target {spec.gpu_memory_target:g} GB, budget "
              f"{spec.budget}, device {spec.device}, baseline {spec.baseline}, NSD tolerance "
              f"{spec.nsd_tolerance_mm:g} mm, seed {spec.seed}{header_extra}")
    return Report(spec, layout, table, statistics, test_table, test_statistics, costs, training_costs(spec, layout),
                  failures(layout), training_jobs(spec, layout), header)
