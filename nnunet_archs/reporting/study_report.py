"""One study's report in words: ``results.md``, with the verdict lines of the primary endpoint and the method
section. One primary endpoint decides the verdict lines and the ranking; every other metric and label is reported
as secondary, without a verdict (Holm corrects within one metric and label only, so verdicts across them would
multiply the chance of a spurious "better")."""
from __future__ import annotations

import math
from typing import List, Optional

from nnunet_archs.analysis.significance import ALPHA, POWER
from nnunet_archs.analysis.statistics import MIN_PAIRED_CASES, SMALL_SAMPLE, PairedComparison
from nnunet_archs.analysis.table import MEAN_LABEL
from nnunet_archs.evaluation.failures import FAILURE_TEXT
from nnunet_archs.evaluation.metrics import empty_conventions, method_sentences, metric as metric_record
from nnunet_archs.reporting.results import StudyResults
from nnunet_archs.reporting.study_tables import StudyTables
from nnunet_archs.reporting.text import fmt, interval, markdown_table, p_value, signed

SMALL_SAMPLE_NOTE = (f"† fewer than {SMALL_SAMPLE} cases: in simulations of skewed per-case values the 95 % "
                     f"intervals covered the true mean less often than 95 % (BENCHMARKS.md, coverage of the "
                     f"intervals); read them as rough.")


def verdict_line(comparison: Optional[PairedComparison], architecture: str, baseline: str, endpoint: str,
                 metric: str, budget_note: str) -> str:
    """The primary endpoint's verdict for one architecture, in plain words."""
    if comparison is None or comparison.n_pairs == 0:
        return f"{architecture} vs {baseline}: no paired cases to compare."
    unit = metric_record(metric).unit
    text = (f"{architecture} vs {baseline}: {signed(comparison.mean_difference)}{unit} {endpoint} (95 % CI "
            f"{signed(comparison.ci[0])}, {signed(comparison.ci[1])}), p = {p_value(comparison.p_holm)} (Holm), "
            f"{comparison.n_pairs} paired cases, smallest difference detectable at {POWER * 100:.0f} % power "
            f"{fmt(comparison.detectable_difference)}{unit}: ")
    margin = f"±{comparison.margin:g}{unit}" if comparison.margin is not None else None
    if comparison.verdict == "too few cases":
        return text + f"too few paired cases to conclude (a verdict needs {MIN_PAIRED_CASES})."
    if comparison.verdict in ("better", "worse"):
        nuance = f", though by less than the {margin} margin (90 % CI inside it)" if comparison.within_margin else ""
        return text + f"evidence that {architecture} is {comparison.verdict} {budget_note}{nuance}."
    if comparison.verdict == "equivalent":
        return text + f"equivalent within {margin} (its 90 % CI {interval(comparison.ci90, with_sign=True)} lies " \
                      f"inside the margin) {budget_note}."
    if margin:
        return text + f"no evidence of a difference {budget_note}, and not shown equivalent within {margin} (90 % " \
                      f"CI {interval(comparison.ci90, with_sign=True)})."
    return text + f"no evidence of a difference {budget_note} (to test equivalence, give --margin {metric}=DELTA)."


def method_text(results: StudyResults) -> str:
    protocol, statistics = results.protocol, results.statistics
    metric, label = statistics.primary
    seeds = protocol.training_seeds
    margins = ", ".join(f"{m} ±{d:g}{metric_record(m).unit}" for m, d in protocol.margins.items()) or "none given"
    versions = ""
    if results.costs.machine:
        last = results.costs.machine[-1]
        versions = (" Trained with " + ", ".join(f"{k} {v}" for k, v in last["versions"].items()) +
                    f" on {last['device']}, {last['threads_per_training'] or 'all'} CPU thread(s) per training "
                    f"(environment.json).")
    failure = FAILURE_TEXT[statistics.failures]
    return (
        f"Per case: each label's value, a failure's HD95 {failure}, averaged over the labels a case has (NaN labels "
        f"left out) and then over the {len(seeds)} training seed(s) ({' '.join(map(str, seeds))}; "
        f"nnUNetTrainerBudget_seed<S>, seeded before the network is initialised and the data loaders made). "
        f"Statistics over cases paired by case id; 95 % confidence intervals by studentized bootstrap "
        f"({statistics.resamples} resamples, bootstrap seed {statistics.seed}); two-sided Wilcoxon signed-rank tests "
        f"against {protocol.baseline}, Holm-corrected across the {len(protocol.architectures) - 1} comparison(s) of "
        f"one metric and label. The verdict is given for the primary endpoint "
        f"({StudyTables(results).endpoint}) only: better or worse when the corrected p < {ALPHA:g}, else "
        f"equivalent when the 90 % interval of the difference lies inside the margin (two one-sided tests at "
        f"5 %; margins: {margins}), else inconclusive; no verdict from fewer than {MIN_PAIRED_CASES} paired "
        f"cases. Smallest detectable difference: the true mean difference a two-sided paired t-test at "
        f"α = {ALPHA:g} (unadjusted) finds with {POWER * 100:.0f} % power, from the number of paired cases and "
        f"the observed sd of the differences (noncentral t). Spread over training seeds: sd of each network's mean "
        f"per seed; the seed-pair share counts the pairs (its seed, the baseline's seed) in which its mean is "
        f"better. Rank stability = share of bootstrap resamples of the cases in which an architecture has the "
        f"best mean (ties split). {method_sentences(protocol.nsd_tolerance_mm, protocol.match_iou)} "
        f"{empty_conventions(failure)} "
        f"torch.compile {'on' if protocol.compile_enabled else 'off'} (nnU-Net's nnUNet_compile).{versions}")


def markdown(results: StudyResults) -> str:
    """``results.md``."""
    tables = StudyTables(results)
    protocol, statistics = results.protocol, results.statistics
    metric, label, endpoint, baseline = tables.metric, tables.label, tables.endpoint, protocol.baseline
    budget_note = f"at this budget ({protocol.budget})"
    seeds = len(protocol.training_seeds)
    lines = [protocol.header, "", f"### Cross-validation ({len(protocol.folds)} folds x {seeds} training "
             f"seed{'s' if seeds > 1 else ''}, every case predicted by the fold models that did not train on it; "
             f"primary endpoint {endpoint})", ""]
    lines += markdown_table(tables.main_header(), tables.main_rows(statistics))
    lines += ["", *[verdict_line(statistics.comparison(a, metric, label), a, baseline, endpoint, metric, budget_note)
                    for a in protocol.architectures if a != baseline]]
    if any(s.n_cases < SMALL_SAMPLE for s in statistics.summaries if s.n_cases):
        lines += ["", SMALL_SAMPLE_NOTE]
    shares = statistics.rank_first.get((metric, label), {})
    ranked = sorted(protocol.architectures, key=tables.rank_key)
    lines += ["", "Ranking by the primary endpoint: " + ", ".join(
        f"{i + 1}. {a} (first in {fmt(100 * shares.get(a, math.nan), 0)} % of "
        f"{statistics.resamples} bootstrap resamples of the cases)" for i, a in enumerate(ranked)) + "."]
    lines += ["", "### Variation of the primary endpoint: cases, folds and training seeds", ""]
    lines += markdown_table(["architecture", "sd over cases", "sd over folds", "sd over training seeds",
                             "mean per training seed", f"beats {baseline} across training-seed pairs"],
                            tables.variation_rows())
    lines += ["", "### Cost: training and inference", ""]
    lines += markdown_table(["architecture", "training time", "training GPU memory: allocated peak", "reserved peak",
                             "nvidia-smi equivalent", "cross-validation prediction (s/case)",
                             "test-set prediction (s/case)", "test s per megavoxel", "prediction GPU peak"],
                            tables.cost_rows())
    lines += ["", *tables.cost_notes()]
    lines += ["", "### Footing: every network planned by its own planner at the same GPU memory target", ""]
    lines += markdown_table(["architecture", "patch", "batch", "estimated memory (GB)", "closest ResEnc preset",
                             "GFLOPs per patch (fwd)", "measured training memory"], tables.footing_rows())
    lines += ["", "### Secondary endpoints: reported, not tested for a verdict (Holm corrects within each metric "
              "and label only; sd over folds: of the per-fold means)", ""]
    lines += markdown_table(["metric", "label", "architecture", "mean ± sd (95 % CI)", "failures", "sd over folds",
                             f"Δ vs {baseline} (95 % CI)", "p (Holm)"], tables.secondary_rows())
    lines += _rank_stability(results)
    if results.sizes:
        lines += ["", "### Detection by object size: share of the reference objects found (cross-validation, "
                  "all training seeds pooled; 95 % CI from resampling the cases)", ""]
        lines += markdown_table(["label", "object size (mm³; mm² in 2D)", "reference objects",
                                 *protocol.architectures], tables.size_rows())
    if results.test_statistics is not None:
        lines += ["", "### Labelled test set (imagesTs/labelsTs), ensemble of each training seed's fold models; "
                  "never mixed with the cross-validation above", ""]
        lines += markdown_table(tables.main_header(test_set=True),
                                tables.main_rows(results.test_statistics, test_set=True))
    if results.failed:
        lines += ["", "### Missing results", "", *[f"- {line}" for line in results.failed]]
    if results.trainings:
        lines += ["", "### Trainings", ""]
        lines += markdown_table(["job", "attempts", "executor job ids", "seconds"], results.trainings)
    lines += ["", "### Method", "", method_text(results)]
    return "\n".join(lines) + "\n"


def _rank_stability(results: StudyResults) -> List[str]:
    """A line per secondary metric that has rank shares (at the label mean)."""
    statistics, lines = results.statistics, []
    for metric in results.protocol.metrics:
        shares = statistics.rank_first.get((metric, MEAN_LABEL), {})
        if (metric, MEAN_LABEL) != statistics.primary and not all(math.isnan(s) for s in shares.values()):
            lines.append(f"\nRank stability ({metric}, secondary): first in " + ", ".join(
                f"{a} {fmt(100 * s, 0)} %" for a, s in shares.items()) +
                f" of {statistics.resamples} bootstrap resamples of the cases.")
    return lines
