"""The rows of one study's tables, each cell as the report writes it: the primary endpoint per network, its
variation, the costs, the footing, the secondary endpoints and detection by object size."""
from __future__ import annotations

import math
from typing import List, Optional

from nnunet_archs.analysis.costs import InferenceCost, TrainingCost, jobs_side_by_side
from nnunet_archs.analysis.statistics import PairedComparison, StudyStatistics, Summary
from nnunet_archs.analysis.table import MEAN_LABEL
from nnunet_archs.evaluation.metrics import metric as metric_record
from nnunet_archs.reporting.results import StudyResults
from nnunet_archs.reporting.text import fmt, interval, p_value, signed


def endpoint_name(metric: str, label: str) -> str:
    return f"{metric} ({'label mean' if label == MEAN_LABEL else f'label {label}'})"


def failure_count(summary: Optional[Summary]) -> str:
    if summary is None or not (summary.n_missed or summary.n_spurious):
        return "none"
    return ", ".join(f"{n} {what}" for n, what in ((summary.n_missed, "missed"), (summary.n_spurious, "invented"))
                     if n)


def delta(comparison: Optional[PairedComparison]) -> str:
    if comparison is None or comparison.n_pairs == 0:
        return "n/a"
    return f"{signed(comparison.mean_difference)} {interval(comparison.ci, with_sign=True)}" + \
        ("†" if comparison.rough else "")


def cell(summary: Optional[Summary], metric: str, with_ci: bool) -> str:
    if summary is None or summary.n_cases == 0:  # no rows at all, or not applicable in every case
        return f"not applicable in all {summary.n_missing} cases" if summary and summary.n_missing else "missing"
    digits = metric_record(metric).digits
    text = f"{fmt(summary.mean, digits)} ± {fmt(summary.sd, digits)}"
    if with_ci:
        text += f" {interval(summary.ci, digits)}" + ("†" if summary.rough else "")
    if summary.n_missing:
        text += f" [{summary.n_missing} n/a]"
    return text


def gigabytes(value: Optional[int]) -> str:
    return "n/a" if value is None else f"{value / 2 ** 30:.2f} GB"


def seconds(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.2f}"


class StudyTables:
    """Rows of one study's tables; the primary endpoint is ``statistics.primary``."""

    def __init__(self, results: StudyResults):
        self.results, self.protocol, self.statistics = results, results.protocol, results.statistics
        self.metric, self.label = results.statistics.primary
        self.endpoint = endpoint_name(self.metric, self.label)

    def memory(self, architecture: str) -> str:
        cost = self.results.costs.training.get(architecture)
        if cost is None or cost.peak_memory_bytes is None:
            return "n/a (not CUDA)" if not self.protocol.on_cuda else "n/a"
        return f"{cost.peak_memory_bytes / 2 ** 30:.1f} GB"

    def time(self, architecture: str) -> str:
        cost = self.results.costs.training.get(architecture)
        if cost is None or cost.seconds_per_training is None:
            return "missing"
        minutes = cost.seconds_per_training / 60
        if cost.gpus:
            return f"{cost.gpu_hours:.2f} GPU-h ({minutes:.1f} min/training)"
        return f"{minutes:.1f} min/training"

    def verdict(self, comparison: Optional[PairedComparison]) -> str:
        """The verdict's cell, "(post hoc)" where the report's analysis is not the pre-registered one."""
        if comparison is None or not comparison.verdict:
            return "n/a"
        text = f"equivalent (±{comparison.margin:g})" if comparison.verdict == "equivalent" else comparison.verdict
        return text + (" (post hoc)" if self.protocol.post_hoc else "")

    def main_header(self, test_set: bool = False) -> List[str]:
        header = ["architecture", f"{self.endpoint} mean ± sd (95 % CI)",
                  f"Δ {self.metric} vs {self.protocol.baseline} (95 % CI)", "p (Holm)"]
        header += ["failures"] if test_set else ["verdict", "failures", "GPU memory (training peak)",
                                                 "training time", "params (M)"]
        return header

    def main_rows(self, statistics: StudyStatistics, test_set: bool = False) -> List[List[str]]:
        rows = []
        for architecture in self.protocol.architectures:
            summary = statistics.summary(architecture, self.metric, self.label)
            comparison = statistics.comparison(architecture, self.metric, self.label)
            if architecture == self.protocol.baseline:
                difference, p, verdict = "baseline", "", "baseline"
            else:
                difference = delta(comparison)
                p = "n/a" if comparison is None else p_value(comparison.p_holm)
                verdict = self.verdict(comparison)
            row = [architecture, cell(summary, self.metric, True), difference, p]
            if test_set:
                row += [failure_count(summary)]
            else:
                params = self.results.costs.planned.get(architecture, {}).get("params")
                row += [verdict, failure_count(summary), self.memory(architecture), self.time(architecture),
                        f"{params / 1e6:.2f}" if params else "n/a"]
            rows.append(row)
        return rows

    def variation_rows(self) -> List[List[str]]:
        """The primary endpoint's spread over cases, folds and training seeds."""
        rows = []
        for architecture in self.protocol.architectures:
            summary = self.statistics.summary(architecture, self.metric, self.label)
            comparison = self.statistics.comparison(architecture, self.metric, self.label)
            share = None if comparison is None else comparison.seed_win_share
            rows.append([architecture, fmt(summary.sd), fmt(summary.sd_over_folds), fmt(summary.sd_over_seeds),
                         ", ".join(f"{s}: {fmt(v)}" for s, v in summary.seed_means.items()),
                         "baseline" if architecture == self.protocol.baseline else
                         "n/a (one training seed)" if share is None else f"{share:.0%}"])
        return rows

    def cost_rows(self) -> List[List[str]]:
        """Training and inference cost per network, each figure as measured (n/a where it was not)."""
        rows = []
        for architecture in self.protocol.architectures:
            training = self.results.costs.training.get(architecture, TrainingCost())
            inference = self.results.costs.inference.get(architecture, InferenceCost())
            smi = gigabytes(training.nvidia_smi_bytes)
            if training.nvidia_smi_bytes is None and training.context_note:
                smi = f"n/a ({training.context_note})"
            rows.append([architecture, self.time(architecture), gigabytes(training.peak_memory_bytes),
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
        side_by_side = jobs_side_by_side(self.results.costs.machine)
        if side_by_side > 1 and not self.protocol.on_cuda:
            notes.append(f"Jobs ran up to {side_by_side} at a time on this CPU: each had a share of the cores, so "
                         f"every time here is longer than the same job alone would take.")
        return notes

    def footing_rows(self) -> List[List[str]]:
        rows = []
        for architecture in self.protocol.architectures:
            cost = self.results.costs.planned.get(architecture)
            if not cost:
                rows.append([architecture] + ["missing"] * 6)
                continue
            rows.append([architecture, "x".join(map(str, cost["patch"])), str(cost["batch"]),
                         f"{cost['estimated_gb']:.3g}", cost["closest_preset"], f"{cost['gflops_per_patch']:.1f}",
                         self.memory(architecture)])
        return rows

    def secondary_rows(self) -> List[List[str]]:
        rows = []
        labels = [MEAN_LABEL] + sorted({s.label for s in self.statistics.summaries if s.label != MEAN_LABEL})
        architectures = self.protocol.architectures
        for metric in self.protocol.metrics:
            for label in labels:
                summaries = [self.statistics.summary(a, metric, label) for a in architectures]
                if (metric, label) == (self.metric, self.label) or not any(s.n_cases or s.n_missing
                                                                            for s in summaries):
                    continue  # the primary endpoint is above; a metric this label was not measured on (objects)
                for architecture in architectures:
                    summary = self.statistics.summary(architecture, metric, label)
                    comparison = self.statistics.comparison(architecture, metric, label)
                    rows.append([metric, label, architecture, cell(summary, metric, True),
                                 failure_count(summary), fmt(summary.sd_over_folds),
                                 "" if comparison is None else delta(comparison),
                                 "" if comparison is None else p_value(comparison.p_holm)])
        return rows

    def size_rows(self) -> List[List[str]]:
        """Per label and size bin: the reference objects, and each architecture's share of them found."""
        sizes = self.results.sizes
        cells = {(s.label, s.size_bin, s.architecture): s for s in sizes}
        rows = []
        for label, size in dict.fromkeys((s.label, s.size_bin) for s in sizes):
            counts = {s.n_objects for s in sizes if (s.label, s.size_bin) == (label, size)}
            rows.append([label, size, "/".join(map(str, sorted(counts)))] + [
                f"{fmt(cells[key].recall, 3)} {interval(cells[key].ci, 3)}" if key in cells else "n/a"
                for key in ((label, size, a) for a in self.protocol.architectures)])
        return rows

    def rank_key(self, architecture: str):
        summary = self.statistics.summary(architecture, self.metric, self.label)
        mean = summary.mean if summary is not None and not math.isnan(summary.mean) else math.nan
        if math.isnan(mean):
            return (1, 0.0)
        return (0, -mean if metric_record(self.metric).higher_is_better else mean)
