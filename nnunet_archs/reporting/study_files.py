"""One study's report as files other programs read: ``results.csv`` (every summary and comparison with its
costs, one row per set, architecture, metric and label), ``results.tex`` (the main table, booktabs),
``detection_by_size.csv`` and the figures."""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Optional

import pandas as pd

from nnunet_archs.analysis.costs import InferenceCost, TrainingCost
from nnunet_archs.analysis.sizes import KORN_GRAUBARD
from nnunet_archs.analysis.table import MEAN_LABEL, case_matrix
from nnunet_archs.reporting.plots import plot_cases, plot_pareto, plot_sizes
from nnunet_archs.reporting.results import StudyResults
from nnunet_archs.reporting.study_tables import StudyTables
from nnunet_archs.reporting.text import latex_escape, latex_table

# delta_*: the verdict's own estimand (the mean difference), its interval (the test inverted) and their method
CSV_HEADER = ["set", "role", "architecture", "metric", "label", "n_cases", "n_missing", "n_missed", "n_spurious",
              "mean", "sd", "ci_low", "ci_high", "ci_method", "rough_interval", "sd_over_folds", "sd_over_seeds",
              "n_training_seeds", "delta_vs_baseline", "delta_ci_low", "delta_ci_high", "delta_ci90_low",
              "delta_ci90_high", "delta_ci_method", "delta_ci_coverage_if_population", "sd_of_differences",
              "detectable_difference_80", "margin", "verdict", "seed_pair_win_share", "p", "p_holm",
              "rank_first_share", "failure_convention", "analysis", "patch", "batch",
              "estimated_gb", "closest_preset", "params", "gflops_per_patch", "training_peak_memory_bytes",
              "training_peak_reserved_bytes", "cuda_context_bytes", "nvidia_smi_equivalent_bytes",
              "training_seconds_per_training", "validation_seconds_per_case", "test_seconds_per_case",
              "test_seconds_per_case_per_model", "test_seconds_per_megavoxel", "prediction_peak_memory_bytes"]


def _cost_columns(results: StudyResults, architecture: str) -> dict:
    cost = results.costs.planned.get(architecture, {})
    training = results.costs.training.get(architecture, TrainingCost())
    inference = results.costs.inference.get(architecture, InferenceCost())
    return {"patch": "x".join(map(str, cost.get("patch", []))), "batch": cost.get("batch", ""),
            "estimated_gb": cost.get("estimated_gb", ""), "closest_preset": cost.get("closest_preset", ""),
            "params": cost.get("params", ""), "gflops_per_patch": cost.get("gflops_per_patch", ""),
            "training_peak_memory_bytes": training.peak_memory_bytes,
            "training_peak_reserved_bytes": training.peak_reserved_bytes,
            "cuda_context_bytes": training.context_bytes, "nvidia_smi_equivalent_bytes": training.nvidia_smi_bytes,
            "training_seconds_per_training": training.seconds_per_training,
            "validation_seconds_per_case": inference.validation_seconds_per_case,
            "test_seconds_per_case": inference.test_seconds_per_case,
            "test_seconds_per_case_per_model": inference.test_seconds_per_model,
            "test_seconds_per_megavoxel": inference.test_seconds_per_megavoxel,
            "prediction_peak_memory_bytes": inference.test_peak_memory_bytes}


def analysis_status(results: StudyResults) -> str:
    """``results.csv``'s ``analysis``: "pre-registered HASH", "post hoc (HASH)" or "not pre-registered"."""
    protocol = results.protocol
    if not protocol.plan_hash:
        return "not pre-registered"
    return f"post hoc ({protocol.plan_hash})" if protocol.post_hoc else f"pre-registered {protocol.plan_hash}"


def results_csv(results: StudyResults) -> str:
    """``results.csv``: the cross-validation's rows, then the test set's."""
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, CSV_HEADER, restval="")
    writer.writeheader()
    for name, statistics in (("cross-validation", results.statistics), ("test", results.test_statistics)):
        if statistics is None:
            continue
        for s in statistics.summaries:
            c = statistics.comparison(s.architecture, s.metric, s.label)
            row = {"set": name, "role": "primary" if (s.metric, s.label) == statistics.primary else "secondary",
                   "architecture": s.architecture, "metric": s.metric, "label": s.label, "n_cases": s.n_cases,
                   "n_missing": s.n_missing, "n_missed": s.n_missed, "n_spurious": s.n_spurious, "mean": s.mean,
                   "sd": s.sd, "ci_low": s.ci[0], "ci_high": s.ci[1], "ci_method": s.ci_method,
                   "rough_interval": s.rough,
                   "sd_over_folds": s.sd_over_folds, "sd_over_seeds": s.sd_over_seeds,
                   "n_training_seeds": len(s.seed_means),
                   "rank_first_share": statistics.rank_first.get((s.metric, s.label), {}).get(s.architecture, ""),
                   "failure_convention": statistics.failures, "analysis": analysis_status(results),
                   **_cost_columns(results, s.architecture)}
            if c is not None:
                row.update({"delta_vs_baseline": c.mean_difference, "delta_ci_low": c.ci[0], "delta_ci_high": c.ci[1],
                            "delta_ci90_low": c.ci90[0], "delta_ci90_high": c.ci90[1], "delta_ci_method": c.ci_method,
                            "delta_ci_coverage_if_population": "" if math.isnan(c.coverage) else c.coverage,
                            "sd_of_differences": c.sd_difference, "detectable_difference_80": c.detectable_difference,
                            "margin": c.margin, "verdict": c.verdict, "seed_pair_win_share": c.seed_win_share,
                            "p": c.p_value, "p_holm": c.p_holm})
            writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return text.getvalue()


def results_latex(results: StudyResults) -> str:
    """``results.tex``: the main table of the cross-validation."""
    tables = StudyTables(results)
    return latex_table("% nnunet-archs compare: include with \\usepackage{booktabs}",
                       latex_escape(results.protocol.header.splitlines()[0]),
                       [latex_escape(h) for h in tables.main_header()],
                       [[latex_escape(cell) for cell in row] for row in tables.main_rows(results.statistics)])


def sizes_csv(results: StudyResults) -> Optional[str]:
    """``detection_by_size.csv``, when objects were counted."""
    if not results.sizes:
        return None
    return pd.DataFrame([{"architecture": s.architecture, "label": s.label, "size_bin_mm3": s.size_bin,
                          "reference_objects": s.n_objects, "cases": s.n_cases, "recall": s.recall,
                          "ci_low": s.ci[0], "ci_high": s.ci[1], "design_effect": s.design_effect,
                          "ci_method": KORN_GRAUBARD}
                         for s in results.sizes]).to_csv(index=False)


def draw_figures(results: StudyResults, folder: Path) -> None:
    """Per-case plots of every metric, Pareto plots of the primary endpoint against memory, training time and
    prediction time, and detection by object size, into ``folder``."""
    tables, protocol, costs = StudyTables(results), results.protocol, results.costs
    architectures = protocol.architectures
    for metric in protocol.metrics:
        matrix = case_matrix(results.table, metric, MEAN_LABEL).reindex(columns=architectures)
        plot_cases(matrix, metric, f"{metric} (label mean): cross-validation, lines join the same case",
                   folder / f"per_case_{metric}.png")
    summaries = {a: results.statistics.summary(a, tables.metric, tables.label) for a in architectures}
    memory = {a: costs.training[a].peak_memory_bytes / 2 ** 30 if a in costs.training and
              costs.training[a].peak_memory_bytes is not None else costs.planned.get(a, {}).get("estimated_gb")
              for a in architectures}
    minutes = {a: costs.training[a].seconds_per_training / 60 if a in costs.training and
               costs.training[a].seconds_per_training is not None else None for a in architectures}
    plot_pareto(summaries, memory, tables.metric, tables.endpoint, "training memory (GB; measured peak, else the "
                "planner's estimate)", folder / "pareto_memory.png", architectures)
    plot_pareto(summaries, minutes, tables.metric, tables.endpoint, "training time per training (min)",
                folder / "pareto_time.png", architectures)
    prediction = {a: cost.test_seconds_per_model if cost.test_seconds_per_model is not None else
                  cost.validation_seconds_per_case for a, cost in costs.inference.items()}
    plot_pareto(summaries, prediction, tables.metric, tables.endpoint, "prediction time per case and model (s; "
                "test set, else cross-validation)", folder / "pareto_inference.png", architectures)
    for label in dict.fromkeys(s.label for s in results.sizes):
        plot_sizes([s for s in results.sizes if s.label == label], architectures, label,
                   folder / f"detection_by_size_{label}.png")
