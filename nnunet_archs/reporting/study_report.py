"""One study's report in words: ``results.md``, with the verdict lines of the primary endpoint and the method
section. One primary endpoint decides the verdict lines and the ranking; every other metric and label is reported
as secondary, without a verdict (Holm corrects within one metric and label only, so verdicts across them would
multiply the chance of a spurious "better")."""
from __future__ import annotations

import math
from typing import List, Optional

from nnunet_archs.analysis.coverage import FLIPS, SAMPLES
from nnunet_archs.analysis.intervals import ROUGH_BELOW, ROUGH_WITH_FAILURES_BELOW
from nnunet_archs.analysis.significance import ALPHA, EXACT_UP_TO, MIN_PAIRED_CASES, POWER, SIGN_FLIPS
from nnunet_archs.analysis.statistics import ESTIMAND, PairedComparison, StudyStatistics
from nnunet_archs.analysis.table import MEAN_LABEL
from nnunet_archs.evaluation.failures import FAILURE_TEXT
from nnunet_archs.evaluation.metrics import empty_conventions, method_sentences, metric as metric_record
from nnunet_archs.reporting.results import StudyResults
from nnunet_archs.reporting.study_tables import StudyTables
from nnunet_archs.reporting.text import fmt, interval, markdown_table, p_value, signed

ROUGH_NOTE = (f"† fewer than {ROUGH_BELOW} cases, or fewer than {ROUGH_WITH_FAILURES_BELOW} where structures were "
              f"missed or invented: in simulations of such per-case data the 95 % intervals held the true value in "
              f"less than 90 % of datasets (BENCHMARKS.md, coverage of the intervals); read them as rough.")


def detectable(comparison: PairedComparison, unit: str) -> str:
    if math.isinf(comparison.detectable_difference):
        return "none (too few paired cases for the test to reach Holm's first level)"
    return f"{fmt(comparison.detectable_difference)}{unit}"


def verdict_line(comparison: Optional[PairedComparison], architecture: str, baseline: str, endpoint: str,
                 metric: str, budget_note: str, post_hoc: bool = False) -> str:
    """The primary endpoint's verdict for one architecture, in plain words: the mean difference, its 95 % interval
    (from the same test as the p-value) with that interval's coverage if the study's cases were the population."""
    if comparison is None or comparison.n_pairs == 0:
        return f"{architecture} vs {baseline}: no paired cases to compare."
    unit = metric_record(metric).unit
    coverage = "" if math.isnan(comparison.coverage) else \
        f"; coverage {comparison.coverage:.2f} if these cases were the population"
    text = (f"{'Post hoc: ' if post_hoc else ''}{architecture} vs {baseline}: mean difference "
            f"{signed(comparison.mean_difference)}{unit} {endpoint} (95 % CI {signed(comparison.ci[0])}, "
            f"{signed(comparison.ci[1])}{coverage}), p = {p_value(comparison.p_holm)} (Holm), {comparison.n_pairs} "
            f"paired cases, smallest difference detectable at {POWER * 100:.0f} % power {detectable(comparison, unit)}"
            f": ")
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


def registration_line(results: StudyResults) -> str:
    """Whether the analysis is the one the study's spec (``protocol.plan_file``) fixed when the study started."""
    protocol = results.protocol
    where = protocol.plan_file or "the study's spec"
    if not protocol.plan_hash:
        return f"Analysis not pre-registered: {where} was written before compare fixed the analysis plan in it."
    if protocol.post_hoc:
        return (f"Post hoc analysis: it differs from the plan pre-registered in {where} (hash {protocol.plan_hash}) "
                f"in {'; '.join(protocol.post_hoc)}; its verdicts are labelled post hoc.")
    return (f"Analysis as pre-registered in {where} when the study started (plan hash {protocol.plan_hash}: primary "
            f"endpoint, margins, α, failure convention, estimand and the versions of the packages that compute the "
            f"metrics and statistics).")


def sensitivity_lines(results: StudyResults, tables: StudyTables) -> List[str]:
    """The primary endpoint's verdicts under the other failure convention, and whether the conclusion depends on
    the convention."""
    chosen, other = results.statistics, results.sensitivity
    if other is None:
        return []
    metric, label = chosen.primary
    baseline, unit = results.protocol.baseline, metric_record(metric).unit
    lines = [f"Failures as a sensitivity analysis: {tables.endpoint} had failures (structures missed or invented); "
             f"scored {other.failures} instead of {chosen.failures}, i.e. {FAILURE_TEXT[other.failures]}:", ""]
    differ = []
    for architecture in (a for a in results.protocol.architectures if a != baseline):
        first, second = chosen.comparison(architecture, metric, label), other.comparison(architecture, metric, label)
        if second is None or second.n_pairs == 0:
            continue
        lines.append(f"- {architecture}: mean difference {signed(second.mean_difference)}{unit} (95 % CI "
                     f"{signed(second.ci[0])}, {signed(second.ci[1])}), p = {p_value(second.p_holm)} (Holm), "
                     f"{second.n_pairs} paired cases: {second.verdict} (scored {chosen.failures}: "
                     f"{first.verdict}).")
        if first.verdict != second.verdict:
            differ.append(architecture)
    lines += ["", f"The conclusion depends on the failure convention for {', '.join(differ)}." if differ else
              "The conclusion does not depend on the failure convention."]
    return lines


def _statistics_text(results: StudyResults, statistics: StudyStatistics) -> str:
    protocol = results.protocol
    family = len(protocol.architectures) - 1
    return (
        f"Statistics over cases paired by case id. The verdict's estimand: the {ESTIMAND}, not a typical case. It "
        f"is tested by the two-sided sign-flip (randomization) test of the mean difference against "
        f"{protocol.baseline} (exact over the 2^n sign patterns up to {EXACT_UP_TO} paired cases, else "
        f"{SIGN_FLIPS} Monte Carlo sign flips, seed {statistics.seed}), Holm-corrected across the {family} "
        f"comparison(s) of one metric and label; its 95 % and 90 % intervals are the differences this test does not "
        f"reject at 5 % and 10 % (Hartigan's subset means; unadjusted): an interval excludes 0 exactly when the "
        f"unadjusted test rejects, so a Holm-corrected 'better' or 'worse' has its mean difference and its interval "
        f"on its side. With 5 paired cases or fewer, where that test can reject nothing, the interval of the "
        f"difference is the one of a mean (results.csv: delta_ci_method). Intervals of a mean: studentized bootstrap "
        f"({statistics.resamples} resamples, bootstrap seed {statistics.seed}), BCa bootstrap where a resample is "
        f"constant (tied or discrete values), kept inside the metric's range (HD95: up to the largest image "
        f"diagonal recorded; results.csv: ci_method). The verdict is given for the primary endpoint "
        f"({StudyTables(results).endpoint}) only: better or worse when the corrected p < {ALPHA:g}, else "
        f"equivalent when the 90 % interval of the difference lies inside the margin (two one-sided tests at 5 %), "
        f"else inconclusive; no verdict from fewer than {MIN_PAIRED_CASES} paired cases. Coverage if these cases "
        f"were the population: the share of {SAMPLES} resamples of the study's own paired differences (with "
        f"replacement, their mean taken as the truth) whose 95 % interval (at most {FLIPS} sign flips) holds that "
        f"mean; a plug-in estimate, biased at small n (BENCHMARKS.md has the coverage simulated on five kinds of "
        f"per-case data). Smallest detectable difference: the true mean difference a two-sided paired t-test at "
        f"α / {family} (Holm's first step) finds with {POWER * 100:.0f} % power, from the number of paired cases "
        f"and the observed sd of the differences (noncentral t; the sign-flip test has the t-test's asymptotic "
        f"efficiency); none where the sign-flip test cannot reach that level at all.")


def method_text(results: StudyResults) -> str:
    protocol, statistics = results.protocol, results.statistics
    seeds = protocol.training_seeds
    margins = ", ".join(f"{m} ±{d:g}{metric_record(m).unit}" for m, d in protocol.margins.items()) or "none given"
    versions = ""
    if results.costs.machine:
        last = results.costs.machine[-1]
        versions = (" Trained with " + ", ".join(f"{k} {v}" for k, v in last["versions"].items()) +
                    f" on {last['device']}, {last['threads_per_training'] or 'all'} CPU thread(s) per training "
                    f"(environment.json).")
    failure = FAILURE_TEXT[statistics.failures]
    sizes = (" Detection by object size: the share of the reference objects found, with Clopper-Pearson's exact "
             "95 % interval at the effective number of objects (Korn and Graubard 1998: objects / the design effect "
             "of their clustering in cases, 1 when none or all are found)." if results.sizes else "")
    return (
        f"Per case: each label's value, a failure's HD95 {failure}, averaged over the labels a case has (NaN labels "
        f"left out) and then over the {len(seeds)} training seed(s) ({' '.join(map(str, seeds))}; "
        f"nnUNetTrainerBudget_seed<S>, seeded before the network is initialised and the data loaders made). "
        f"{_deep_supervision_text(protocol.without_deep_supervision)}"
        f"{_statistics_text(results, statistics)} Margins: {margins}. Spread over training seeds: sd of each "
        f"network's mean per seed; the seed-pair share counts the pairs (its seed, the baseline's seed) in which its "
        f"mean is better. Rank stability = share of bootstrap resamples of the cases in which an architecture has "
        f"the best mean (ties split).{sizes} {method_sentences(protocol.nsd_tolerance_mm, protocol.match_iou)} "
        f"{empty_conventions(failure)} "
        f"torch.compile {'on' if protocol.compile_enabled else 'off'} (nnU-Net's nnUNet_compile).{versions}")


def _deep_supervision_text(networks) -> str:
    if not networks:
        return ""
    return (f"{', '.join(networks)} trained without deep supervision, as its authors trained it "
            f"(nnUNetTrainerBudgetNoDeepSupervision_seed<S>: nnU-Net's loss on the full-resolution output only). ")


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
    lines += ["", *[verdict_line(statistics.comparison(a, metric, label), a, baseline, endpoint, metric, budget_note,
                                 bool(protocol.post_hoc)) for a in protocol.architectures if a != baseline]]
    if any(s.rough for s in statistics.summaries if s.n_cases):
        lines += ["", ROUGH_NOTE]
    if results.sensitivity is not None:
        lines += ["", *sensitivity_lines(results, tables)]
    lines += ["", registration_line(results)]
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
                  "all training seeds pooled; 95 % CI: Clopper-Pearson at the effective number of objects, "
                  "Korn-Graubard)", ""]
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
