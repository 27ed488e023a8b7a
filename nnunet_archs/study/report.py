"""The study's report: tables (``results.md``, ``results.csv``, ``results.tex`` with a booktabs table), per-case
plots and Pareto plots. It renders what ``statistics`` computed from ``per_case.csv`` and what the jobs left on
disk (``records``: costs, wall times, GPU memory per epoch, failed jobs); ``nnunet-archs report DIR`` redraws it
from those files.

One primary endpoint decides the verdict lines and the ranking; every other metric and label is reported as
secondary, without a verdict (Holm corrects within one metric and label only, so verdicts across them would
multiply the chance of a spurious "better").
"""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Dict, List, Optional

import pandas as pd

from nnunet_archs.errors import UserError
from nnunet_archs.study.jobs import StudyLayout
from nnunet_archs.study.metrics import EMPTY_CONVENTIONS, FAILURE_TEXT, LOWER_IS_BETTER, MEAN_LABEL
from nnunet_archs.study.plots import UNITS, plot_cases, plot_pareto, plot_sizes
from nnunet_archs.study.records import (InferenceCost, TrainingCost, assemble, assemble_objects, failures,
                                        inference_costs, jobs_side_by_side, training_costs, training_jobs)
from nnunet_archs.study.spec import StudySpec
from nnunet_archs.study.statistics import (ALPHA, MIN_PAIRED_CASES, POWER, SMALL_SAMPLE, PairedComparison,
                                           SizeBinRecall, StudyStatistics, Summary, analyse, case_matrix,
                                           detection_by_size, normalise, scored)

SMALL_SAMPLE_NOTE = (f"† fewer than {SMALL_SAMPLE} cases: in simulations of skewed per-case values the 95 % "
                     f"intervals covered the true mean less often than 95 % (BENCHMARKS.md, coverage of the "
                     f"intervals); read them as rough.")


def _fmt(value: Optional[float], digits: int = 3) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _signed(value: float, digits: int = 3) -> str:
    return "n/a" if math.isnan(value) else f"{value:+.{digits}f}"


def _p(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def _interval(ci, digits: int = 3, signed: bool = False) -> str:
    show = _signed if signed else _fmt
    return f"({show(ci[0], digits)}, {show(ci[1], digits)})"


def endpoint_name(metric: str, label: str) -> str:
    return f"{metric} ({'label mean' if label == MEAN_LABEL else f'label {label}'})"


def failure_count(summary: Optional[Summary]) -> str:
    if summary is None or not (summary.n_missed or summary.n_spurious):
        return "none"
    return ", ".join(f"{n} {what}" for n, what in ((summary.n_missed, "missed"), (summary.n_spurious, "invented"))
                     if n)


def verdict_line(comparison: Optional[PairedComparison], architecture: str, baseline: str, endpoint: str,
                 metric: str, budget_note: str) -> str:
    """The primary endpoint's verdict for one architecture, in plain words."""
    if comparison is None or comparison.n_pairs == 0:
        return f"{architecture} vs {baseline}: no paired cases to compare."
    unit = UNITS.get(metric, "")
    text = (f"{architecture} vs {baseline}: {_signed(comparison.mean_difference)}{unit} {endpoint} (95 % CI "
            f"{_signed(comparison.ci[0])}, {_signed(comparison.ci[1])}), p = {_p(comparison.p_holm)} (Holm), "
            f"{comparison.n_pairs} paired cases, smallest difference detectable at {POWER * 100:.0f} % power "
            f"{_fmt(comparison.detectable_difference)}{unit}: ")
    margin = f"±{comparison.margin:g}{unit}" if comparison.margin is not None else None
    if comparison.verdict == "too few cases":
        return text + f"too few paired cases to conclude (a verdict needs {MIN_PAIRED_CASES})."
    if comparison.verdict in ("better", "worse"):
        nuance = f", though by less than the {margin} margin (90 % CI inside it)" if comparison.within_margin else ""
        return text + f"evidence that {architecture} is {comparison.verdict} {budget_note}{nuance}."
    if comparison.verdict == "equivalent":
        return text + f"equivalent within {margin} (its 90 % CI {_interval(comparison.ci90, signed=True)} lies " \
                      f"inside the margin) {budget_note}."
    if margin:
        return text + f"no evidence of a difference {budget_note}, and not shown equivalent within {margin} (90 % " \
                      f"CI {_interval(comparison.ci90, signed=True)})."
    return text + f"no evidence of a difference {budget_note} (to test equivalence, give --margin {metric}=DELTA)."


class Report:
    def __init__(self, spec: StudySpec, layout: StudyLayout, table: pd.DataFrame, statistics: StudyStatistics,
                 test_statistics: Optional[StudyStatistics], costs: Dict[str, dict],
                 training: Dict[str, TrainingCost], failed: List[str], jobs: List[List[str]], header: str,
                 machine: List[dict], sizes: List[SizeBinRecall], inference: Dict[str, InferenceCost]):
        self.spec, self.layout, self.table, self.statistics = spec, layout, table, statistics
        self.test_statistics, self.costs, self.training = test_statistics, costs, training
        self.failed, self.jobs, self.header, self.machine, self.sizes = failed, jobs, header, machine, sizes
        self.inference = inference
        self.metric, self.label = statistics.primary
        self.endpoint = endpoint_name(self.metric, self.label)

    # -- cells ---------------------------------------------------------------------------------------------------
    def _cell(self, summary: Optional[Summary], metric: str, with_ci: bool) -> str:
        if summary is None or summary.n_cases == 0:  # no rows at all, or not applicable in every case
            return f"not applicable in all {summary.n_missing} cases" if summary and summary.n_missing else "missing"
        digits = 1 if metric == "HD95" else 3
        text = f"{_fmt(summary.mean, digits)} ± {_fmt(summary.sd, digits)}"
        if with_ci:
            text += f" {_interval(summary.ci, digits)}" + ("†" if summary.n_cases < SMALL_SAMPLE else "")
        if summary.n_missing:
            text += f" [{summary.n_missing} n/a]"
        return text

    def _delta(self, comparison: Optional[PairedComparison]) -> str:
        if comparison is None or comparison.n_pairs == 0:
            return "n/a"
        return f"{_signed(comparison.mean_difference)} {_interval(comparison.ci, signed=True)}" + \
            ("†" if comparison.n_pairs < SMALL_SAMPLE else "")

    def _memory(self, architecture: str) -> str:
        cost = self.training.get(architecture)
        if cost is None or cost.peak_memory_bytes is None:
            return "n/a (not CUDA)" if not self.spec.device.startswith("cuda") else "n/a"
        return f"{cost.peak_memory_bytes / 2 ** 30:.1f} GB"

    def _time(self, architecture: str) -> str:
        cost = self.training.get(architecture)
        if cost is None or cost.seconds_per_training is None:
            return "missing"
        minutes = cost.seconds_per_training / 60
        if cost.gpus:
            return f"{cost.gpu_hours:.2f} GPU-h ({minutes:.1f} min/training)"
        return f"{minutes:.1f} min/training"

    def _verdict_cell(self, comparison: Optional[PairedComparison]) -> str:
        if comparison is None or not comparison.verdict:
            return "n/a"
        if comparison.verdict == "equivalent":
            return f"equivalent (±{comparison.margin:g})"
        return comparison.verdict

    # -- tables --------------------------------------------------------------------------------------------------
    def main_header(self, test_set: bool = False) -> List[str]:
        header = ["architecture", f"{self.endpoint} mean ± sd (95 % CI)",
                  f"Δ {self.metric} vs {self.spec.baseline} (95 % CI)", "p (Holm)"]
        header += ["failures"] if test_set else ["verdict", "failures", "GPU memory (training peak)",
                                                 "training time", "params (M)"]
        return header

    def main_rows(self, statistics: StudyStatistics, test_set: bool = False) -> List[List[str]]:
        rows = []
        for architecture in self.spec.architectures:
            summary = statistics.summary(architecture, self.metric, self.label)
            comparison = statistics.comparison(architecture, self.metric, self.label)
            if architecture == self.spec.baseline:
                delta, p, verdict = "baseline", "", "baseline"
            else:
                delta = self._delta(comparison)
                p = "n/a" if comparison is None else _p(comparison.p_holm)
                verdict = self._verdict_cell(comparison)
            row = [architecture, self._cell(summary, self.metric, True), delta, p]
            if test_set:
                row += [failure_count(summary)]
            else:
                params = self.costs.get(architecture, {}).get("params")
                row += [verdict, failure_count(summary), self._memory(architecture), self._time(architecture),
                        f"{params / 1e6:.2f}" if params else "n/a"]
            rows.append(row)
        return rows

    def variation_rows(self) -> List[List[str]]:
        """The primary endpoint's spread over cases, folds and training seeds."""
        rows = []
        for architecture in self.spec.architectures:
            summary = self.statistics.summary(architecture, self.metric, self.label)
            comparison = self.statistics.comparison(architecture, self.metric, self.label)
            share = None if comparison is None else comparison.seed_win_share
            rows.append([architecture, _fmt(summary.sd), _fmt(summary.sd_over_folds), _fmt(summary.sd_over_seeds),
                         ", ".join(f"{s}: {_fmt(v)}" for s, v in summary.seed_means.items()),
                         "baseline" if architecture == self.spec.baseline else
                         "n/a (one training seed)" if share is None else f"{share:.0%}"])
        return rows

    def cost_rows(self) -> List[List[str]]:
        """Training and inference cost per network, each figure as measured (n/a where it was not)."""
        def gigabytes(value: Optional[int]) -> str:
            return "n/a" if value is None else f"{value / 2 ** 30:.2f} GB"

        def seconds(value: Optional[float]) -> str:
            return "n/a" if value is None else f"{value:.2f}"
        rows = []
        for architecture in self.spec.architectures:
            training = self.training.get(architecture, TrainingCost())
            inference = self.inference.get(architecture, InferenceCost())
            smi = gigabytes(training.nvidia_smi_bytes)
            if training.nvidia_smi_bytes is None and training.context_note:
                smi = f"n/a ({training.context_note})"
            rows.append([architecture, self._time(architecture), gigabytes(training.peak_memory_bytes),
                         gigabytes(training.peak_reserved_bytes), smi,
                         seconds(inference.validation_seconds_per_case),
                         "n/a" if inference.test_seconds_per_case is None else
                         f"{inference.test_seconds_per_case:.2f} ({inference.test_models} models; "
                         f"{inference.test_seconds_per_model:.2f} per model)",
                         seconds(inference.test_seconds_per_megavoxel),
                         gigabytes(inference.test_peak_memory_bytes)])
        return rows

    def cost_notes(self) -> List[str]:
        notes = ["Training memory: allocated peak = torch.cuda.max_memory_allocated (what nnU-Net logs), reserved "
                 "peak = torch.cuda.max_memory_reserved (the caching allocator's hold), nvidia-smi equivalent = "
                 "reserved peak + the CUDA context NVML measured (what papers quote, e.g. nnU-Net Revisited); none "
                 "of them is measured on a CPU. Cross-validation prediction: nnU-Net's final validation in each "
                 "training, wall time per case (mirroring as trained, export included). Test set: `nnunet-archs "
                 "predict` (nnUNetv2_predict's predictor), median time per case of the fold ensemble on the device, "
                 "preprocessing and export excluded; per model = per case / models; per megavoxel of the "
                 "preprocessed image."]
        side_by_side = jobs_side_by_side(self.machine)
        if side_by_side > 1 and not self.spec.device.startswith("cuda"):
            notes.append(f"Jobs ran up to {side_by_side} at a time on this CPU: each had a share of the cores, so "
                         f"every time here is longer than the same job alone would take.")
        return notes

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

    def secondary_rows(self) -> List[List[str]]:
        rows = []
        labels = [MEAN_LABEL] + sorted({s.label for s in self.statistics.summaries if s.label != MEAN_LABEL})
        for metric in self.spec.metrics:
            for label in labels:
                summaries = [self.statistics.summary(a, metric, label) for a in self.spec.architectures]
                if (metric, label) == (self.metric, self.label) or not any(s.n_cases or s.n_missing
                                                                            for s in summaries):
                    continue  # the primary endpoint is above; a metric this label was not measured on (objects)
                for architecture in self.spec.architectures:
                    summary = self.statistics.summary(architecture, metric, label)
                    comparison = self.statistics.comparison(architecture, metric, label)
                    rows.append([metric, label, architecture, self._cell(summary, metric, True),
                                 failure_count(summary), _fmt(summary.sd_over_folds),
                                 "" if comparison is None else self._delta(comparison),
                                 "" if comparison is None else _p(comparison.p_holm)])
        return rows

    def size_rows(self) -> List[List[str]]:
        """Per label and size bin: the reference objects, and each architecture's share of them found."""
        cells = {(s.label, s.size_bin, s.architecture): s for s in self.sizes}
        rows = []
        for label, size in dict.fromkeys((s.label, s.size_bin) for s in self.sizes):
            counts = {s.n_objects for s in self.sizes if (s.label, s.size_bin) == (label, size)}
            rows.append([label, size, "/".join(map(str, sorted(counts)))] + [
                f"{_fmt(cells[key].recall, 2)} {_interval(cells[key].ci, 2)}" if key in cells else "n/a"
                for key in ((label, size, a) for a in self.spec.architectures)])
        return rows

    # -- files ---------------------------------------------------------------------------------------------------
    def markdown(self) -> str:
        def table(header: List[str], rows: List[List[str]]) -> List[str]:
            return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + \
                   ["| " + " | ".join(row) + " |" for row in rows]

        budget_note = f"at this budget ({self.spec.budget})"
        seeds = len(self.spec.training_seeds)
        lines = [self.header, "", f"### Cross-validation ({len(self.spec.folds)} folds x {seeds} training "
                 f"seed{'s' if seeds > 1 else ''}, every case predicted by the fold models that did not train on it; "
                 f"primary endpoint {self.endpoint})", ""]
        lines += table(self.main_header(), self.main_rows(self.statistics))
        lines += ["", *[verdict_line(self.statistics.comparison(a, self.metric, self.label), a, self.spec.baseline,
                                     self.endpoint, self.metric, budget_note)
                        for a in self.spec.architectures if a != self.spec.baseline]]
        if any(s.n_cases < SMALL_SAMPLE for s in self.statistics.summaries if s.n_cases):
            lines += ["", SMALL_SAMPLE_NOTE]
        shares = self.statistics.rank_first.get((self.metric, self.label), {})
        ranked = sorted(self.spec.architectures, key=lambda a: self._rank_key(a))
        lines += ["", "Ranking by the primary endpoint: " + ", ".join(
            f"{i + 1}. {a} (first in {_fmt(100 * shares.get(a, math.nan), 0)} % of "
            f"{self.statistics.resamples} bootstrap resamples of the cases)" for i, a in enumerate(ranked)) + "."]
        lines += ["", "### Variation of the primary endpoint: cases, folds and training seeds", ""]
        lines += table(["architecture", "sd over cases", "sd over folds", "sd over training seeds",
                        "mean per training seed", f"beats {self.spec.baseline} across training-seed pairs"],
                       self.variation_rows())
        lines += ["", "### Cost: training and inference", ""]
        lines += table(["architecture", "training time", "training GPU memory: allocated peak", "reserved peak",
                        "nvidia-smi equivalent", "cross-validation prediction (s/case)",
                        "test-set prediction (s/case)", "test s per megavoxel", "prediction GPU peak"],
                       self.cost_rows())
        lines += ["", *self.cost_notes()]
        lines += ["", "### Footing: every network planned by its own planner at the same GPU memory target", ""]
        lines += table(["architecture", "patch", "batch", "estimated memory (GB)", "closest ResEnc preset",
                        "GFLOPs per patch (fwd)", "measured training memory"], self.footing_rows())
        lines += ["", "### Secondary endpoints: reported, not tested for a verdict (Holm corrects within each metric "
                  "and label only; sd over folds: of the per-fold means)", ""]
        lines += table(["metric", "label", "architecture", "mean ± sd (95 % CI)", "failures", "sd over folds",
                        f"Δ vs {self.spec.baseline} (95 % CI)", "p (Holm)"], self.secondary_rows())
        for metric in self.spec.metrics:
            shares = self.statistics.rank_first.get((metric, MEAN_LABEL), {})
            if (metric, MEAN_LABEL) != (self.metric, self.label) and not all(math.isnan(s) for s in shares.values()):
                lines.append(f"\nRank stability ({metric}, secondary): first in " + ", ".join(
                    f"{a} {_fmt(100 * s, 0)} %" for a, s in shares.items()) +
                    f" of {self.statistics.resamples} bootstrap resamples of the cases.")
        if self.sizes:
            lines += ["", "### Detection by object size: share of the reference objects found (cross-validation, "
                      "all training seeds pooled; 95 % CI from resampling the cases)", ""]
            lines += table(["label", "object size (mm³; mm² in 2D)", "reference objects", *self.spec.architectures],
                           self.size_rows())
        if self.test_statistics is not None:
            lines += ["", "### Labelled test set (imagesTs/labelsTs), ensemble of each training seed's fold models; "
                      "never mixed with the cross-validation above", ""]
            lines += table(self.main_header(test_set=True), self.main_rows(self.test_statistics, test_set=True))
        if self.failed:
            lines += ["", "### Missing results", "", *[f"- {line}" for line in self.failed]]
        if self.jobs:
            lines += ["", "### Trainings", ""]
            lines += table(["job", "attempts", "executor job ids", "seconds"], self.jobs)
        lines += ["", "### Method", "", self.method_text()]
        return "\n".join(lines) + "\n"

    def _rank_key(self, architecture: str):
        summary = self.statistics.summary(architecture, self.metric, self.label)
        mean = summary.mean if summary is not None and not math.isnan(summary.mean) else math.nan
        if math.isnan(mean):
            return (1, 0.0)
        return (0, mean if self.metric in LOWER_IS_BETTER else -mean)

    def method_text(self) -> str:
        spec, statistics = self.spec, self.statistics
        margins = ", ".join(f"{m} ±{d:g}{UNITS.get(m, '')}" for m, d in spec.margins.items()) or "none given"
        versions = ""
        if self.machine:
            last = self.machine[-1]
            versions = (" Trained with " + ", ".join(f"{k} {v}" for k, v in last["versions"].items()) +
                        f" on {last['device']}, {last['threads_per_training'] or 'all'} CPU thread(s) per training "
                        f"(environment.json).")
        return (
            f"Per case: each label's value, a failure's HD95 {FAILURE_TEXT[statistics.failures]}, averaged over the "
            f"labels a case has (NaN labels left out) and then over the {len(spec.training_seeds)} training seed(s) "
            f"({' '.join(map(str, spec.training_seeds))}; nnUNetTrainerBudget_seed<S>, seeded before the network is "
            f"initialised and the data loaders made). Statistics over cases paired by case id; 95 % confidence "
            f"intervals by studentized bootstrap ({statistics.resamples} resamples, bootstrap seed {statistics.seed}); "
            f"two-sided Wilcoxon signed-rank tests against {spec.baseline}, Holm-corrected across the "
            f"{len(spec.architectures) - 1} comparison(s) of one metric and label. The verdict is given for the "
            f"primary endpoint ({self.endpoint}) only: better or worse when the corrected p < {ALPHA:g}, else "
            f"equivalent when the 90 % interval of the difference lies inside the margin (two one-sided tests at "
            f"5 %; margins: {margins}), else inconclusive; no verdict from fewer than {MIN_PAIRED_CASES} paired "
            f"cases. Smallest detectable difference: the true mean difference a two-sided paired t-test at "
            f"α = {ALPHA:g} (unadjusted) finds with {POWER * 100:.0f} % power, from the number of paired cases and "
            f"the observed sd of the differences (noncentral t). Spread over training seeds: sd of each network's mean "
            f"per seed; the seed-pair share counts the pairs (its seed, the baseline's seed) in which its mean is "
            f"better. Rank stability = share of bootstrap resamples of the cases in which an architecture has the "
            f"best mean (ties split). NSD at {spec.nsd_tolerance_mm:g} mm and HD95 in mm use the image spacing "
            f"(MONAI); voxels of the ignore label are left out of both masks. Objects: the connected components of "
            f"a label (26-connected in 3D, 8 in 2D), matched one to one by optimal assignment at IoU > "
            f"{spec.match_iou:g}; DetectionRecall = matched / reference objects, DetectionPrecision = matched / "
            f"predicted objects, DetectionF1 = 2 matched / (reference + predicted objects), FalsePositiveObjects = "
            f"unmatched predicted objects per case (no object on either side: not applicable). "
            f"{EMPTY_CONVENTIONS.format(hd95=FAILURE_TEXT[statistics.failures])} "
            f"torch.compile {'on' if spec.compile_enabled else 'off'} (nnU-Net's nnUNet_compile).{versions}")

    def write(self) -> Path:
        folder = self.layout.report
        (folder / "results.md").write_text(self.markdown())
        self.write_csv(folder / "results.csv")
        if self.sizes:
            pd.DataFrame([{"architecture": s.architecture, "label": s.label, "size_bin_mm3": s.size_bin,
                           "reference_objects": s.n_objects, "cases": s.n_cases, "recall": s.recall,
                           "ci_low": s.ci[0], "ci_high": s.ci[1]} for s in self.sizes]).to_csv(
                folder / "detection_by_size.csv", index=False)
        (folder / "results.tex").write_text(self.latex())
        self.plot(folder)
        return folder / "results.md"

    CSV_HEADER = ["set", "role", "architecture", "metric", "label", "n_cases", "n_missing", "n_missed", "n_spurious",
                  "mean", "sd", "ci_low", "ci_high", "small_sample", "sd_over_folds", "sd_over_seeds",
                  "n_training_seeds", "delta_vs_baseline", "delta_ci_low", "delta_ci_high", "delta_ci90_low",
                  "delta_ci90_high", "sd_of_differences", "detectable_difference_80", "margin", "verdict",
                  "seed_pair_win_share", "p", "p_holm", "rank_first_share", "failure_convention", "patch", "batch",
                  "estimated_gb", "closest_preset", "params", "gflops_per_patch", "training_peak_memory_bytes",
                  "training_peak_reserved_bytes", "cuda_context_bytes", "nvidia_smi_equivalent_bytes",
                  "training_seconds_per_training", "validation_seconds_per_case", "test_seconds_per_case",
                  "test_seconds_per_case_per_model", "test_seconds_per_megavoxel", "prediction_peak_memory_bytes"]

    def write_csv(self, path: Path) -> None:
        with open(path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, self.CSV_HEADER, restval="")
            writer.writeheader()
            for name, statistics in (("cross-validation", self.statistics), ("test", self.test_statistics)):
                if statistics is None:
                    continue
                for s in statistics.summaries:
                    c = statistics.comparison(s.architecture, s.metric, s.label)
                    cost = self.costs.get(s.architecture, {})
                    training = self.training.get(s.architecture, TrainingCost())
                    inference = self.inference.get(s.architecture, InferenceCost())
                    row = {"set": name, "role": "primary" if (s.metric, s.label) == statistics.primary else
                           "secondary", "architecture": s.architecture, "metric": s.metric, "label": s.label,
                           "n_cases": s.n_cases, "n_missing": s.n_missing, "n_missed": s.n_missed,
                           "n_spurious": s.n_spurious, "mean": s.mean, "sd": s.sd, "ci_low": s.ci[0],
                           "ci_high": s.ci[1], "small_sample": s.n_cases < SMALL_SAMPLE,
                           "sd_over_folds": s.sd_over_folds, "sd_over_seeds": s.sd_over_seeds,
                           "n_training_seeds": len(s.seed_means),
                           "rank_first_share": statistics.rank_first.get((s.metric, s.label), {}).get(s.architecture,
                                                                                                       ""),
                           "failure_convention": statistics.failures,
                           "patch": "x".join(map(str, cost.get("patch", []))),
                           "batch": cost.get("batch", ""), "estimated_gb": cost.get("estimated_gb", ""),
                           "closest_preset": cost.get("closest_preset", ""), "params": cost.get("params", ""),
                           "gflops_per_patch": cost.get("gflops_per_patch", ""),
                           "training_peak_memory_bytes": training.peak_memory_bytes,
                           "training_peak_reserved_bytes": training.peak_reserved_bytes,
                           "cuda_context_bytes": training.context_bytes,
                           "nvidia_smi_equivalent_bytes": training.nvidia_smi_bytes,
                           "training_seconds_per_training": training.seconds_per_training,
                           "validation_seconds_per_case": inference.validation_seconds_per_case,
                           "test_seconds_per_case": inference.test_seconds_per_case,
                           "test_seconds_per_case_per_model": inference.test_seconds_per_model,
                           "test_seconds_per_megavoxel": inference.test_seconds_per_megavoxel,
                           "prediction_peak_memory_bytes": inference.test_peak_memory_bytes}
                    if c is not None:
                        row.update({"delta_vs_baseline": c.mean_difference, "delta_ci_low": c.ci[0],
                                    "delta_ci_high": c.ci[1], "delta_ci90_low": c.ci90[0], "delta_ci90_high": c.ci90[1],
                                    "sd_of_differences": c.sd_difference,
                                    "detectable_difference_80": c.detectable_difference, "margin": c.margin,
                                    "verdict": c.verdict, "seed_pair_win_share": c.seed_win_share, "p": c.p_value,
                                    "p_holm": c.p_holm})
                    writer.writerow({k: "" if v is None else v for k, v in row.items()})

    def latex(self) -> str:
        def escape(text: str) -> str:
            return (text.replace("\\", "\\textbackslash{}").replace("_", "\\_").replace("%", "\\%")
                    .replace("±", "$\\pm$").replace("Δ", "$\\Delta$").replace("&", "\\&").replace("†", "$^\\dagger$"))
        header = self.main_header()
        lines = ["% nnunet-archs compare: include with \\usepackage{booktabs}", "\\begin{table}[t]", "\\centering",
                 f"\\caption{{{escape(self.header.splitlines()[0])}}}", "\\begin{tabular}{l" + "c" * (len(header) - 1)
                 + "}", "\\toprule", " & ".join(escape(h) for h in header) + " \\\\", "\\midrule"]
        lines += [" & ".join(escape(cell) for cell in row) + " \\\\" for row in self.main_rows(self.statistics)]
        lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
        return "\n".join(lines) + "\n"

    def plot(self, folder: Path) -> None:
        architectures = self.spec.architectures
        for metric in self.spec.metrics:
            matrix = case_matrix(self.table, metric, MEAN_LABEL).reindex(columns=architectures)
            plot_cases(matrix, metric, f"{metric} (label mean): cross-validation, lines join the same case",
                       folder / f"per_case_{metric}.png")
        summaries = {a: self.statistics.summary(a, self.metric, self.label) for a in architectures}
        memory = {a: self.training[a].peak_memory_bytes / 2 ** 30 if a in self.training and
                  self.training[a].peak_memory_bytes is not None else self.costs.get(a, {}).get("estimated_gb")
                  for a in architectures}
        minutes = {a: self.training[a].seconds_per_training / 60 if a in self.training and
                   self.training[a].seconds_per_training is not None else None for a in architectures}
        plot_pareto(summaries, memory, self.metric, self.endpoint, "training memory (GB; measured peak, else the "
                    "planner's estimate)", folder / "pareto_memory.png", architectures)
        plot_pareto(summaries, minutes, self.metric, self.endpoint, "training time per training (min)",
                    folder / "pareto_time.png", architectures)
        prediction = {a: cost.test_seconds_per_model if cost.test_seconds_per_model is not None else
                      cost.validation_seconds_per_case for a, cost in self.inference.items()}
        plot_pareto(summaries, prediction, self.metric, self.endpoint, "prediction time per case and model (s; "
                    "test set, else cross-validation)", folder / "pareto_inference.png", architectures)
        for label in dict.fromkeys(s.label for s in self.sizes):
            plot_sizes([s for s in self.sizes if s.label == label], architectures, label,
                       folder / f"detection_by_size_{label}.png")


def check_report_folder(report_folder: Path) -> None:
    for needed in ("study.json", "layout.json"):
        if not (report_folder / needed).exists():
            raise UserError(f"{report_folder} is not a study report folder: {needed} is missing")


def build_report(report_folder: Path, header_extra: str = "", failures_convention: Optional[str] = None) -> Report:
    """Assemble the per-case tables, run the statistics and prepare the report of a study folder;
    ``failures_convention`` overrides the study's (``report --failures``) without evaluating again."""
    check_report_folder(report_folder)
    spec = StudySpec.from_json((report_folder / "study.json").read_text())
    layout_data = json.loads((report_folder / "layout.json").read_text())
    layout = StudyLayout(**{k: Path(v) for k, v in layout_data.items()})
    convention = failures_convention or spec.failures
    options = dict(primary=(spec.primary_metric, spec.primary_label), margins=spec.margins, failures=convention)
    table = assemble([layout.fold_metrics(a, f, s) for a in spec.architectures for s in spec.training_seeds
                      for f in spec.folds], report_folder / "per_case.csv")
    if table is None:
        raise UserError(f"{report_folder} has no per-case metrics yet (metrics/*.csv or per_case.csv)")
    statistics = analyse(table, spec.architectures, spec.baseline, spec.metrics, spec.seed, spec.bootstrap_resamples,
                         **options)
    test_table = assemble([layout.test_metrics(a, s) for a in spec.architectures for s in spec.training_seeds],
                          report_folder / "per_case_test.csv")
    test_statistics = None if test_table is None else analyse(
        test_table, spec.architectures, spec.baseline, spec.metrics, spec.seed, spec.bootstrap_resamples, **options)
    costs_path = report_folder / "costs.json"
    costs = json.loads(costs_path.read_text()) if costs_path.exists() else {}
    objects = assemble_objects([layout.fold_metrics(a, f, s) for a in spec.architectures for s in spec.training_seeds
                                for f in spec.folds], report_folder / "per_object.csv")
    sizes = [] if objects is None else detection_by_size(objects, spec.architectures, spec.seed,
                                                         spec.bootstrap_resamples)
    machine_path = report_folder / "environment.json"
    machine = json.loads(machine_path.read_text())["sessions"] if machine_path.exists() else []
    header = (f"Study of dataset {spec.dataset_id} ({layout.raw.name}), configuration {spec.configuration}, folds "
              f"{' '.join(map(str, spec.folds))}, training seeds {' '.join(map(str, spec.training_seeds))}, GPU "
              f"memory target {spec.gpu_memory_target:g} GB, budget {spec.budget}, device {spec.device}, baseline "
              f"{spec.baseline}, primary endpoint {endpoint_name(spec.primary_metric, spec.primary_label)}, NSD "
              f"tolerance {spec.nsd_tolerance_mm:g} mm, failures scored {convention}, bootstrap seed "
              f"{spec.seed}{header_extra}")
    return Report(spec, layout, scored(normalise(table), convention), statistics, test_statistics, costs,
                  training_costs(spec, layout), failures(layout), training_jobs(spec, layout), header, machine, sizes,
                  inference_costs(spec, layout))
