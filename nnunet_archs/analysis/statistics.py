"""Statistics of one study, as pure functions from the tidy per-case table (``table``) to small result objects
(no file I/O; every random draw comes from the seed passed in, so a rerun gives the same numbers):

- per architecture, metric and label: mean and standard deviation over cases, a 95 % confidence interval of the
  mean inside the metric's range (``intervals``), the standard deviation of the per-fold means and of the per-seed
  means (training variance), and the failures counted;
- against the baseline, paired over cases, one estimand (``ESTIMAND``): the mean difference, its two-sided
  sign-flip test Holm-corrected across the architectures compared with the baseline (one family per metric and
  label), and its 95 % and 90 % intervals by inverting that test (``significance``), the smallest difference the
  study could detect at 80 % power, and with two or more training seeds how often the architecture beats the
  baseline across pairs of seeds;
- a verdict for the primary endpoint only (better / worse / equivalent within a margin / inconclusive, or too few
  cases to conclude), so that verdicts do not multiply across metrics and labels; "better" and "worse" have their
  effect and their interval on their side by construction; for the primary endpoint also the coverage of its
  interval if the study's cases were the population (``coverage``), and, for a metric scored at the worst case on
  failure, the verdict under the other failure convention (``failure_sensitivity``);
- rank stability (the idea of challengeR, Wiesenfarth et al., Sci Rep 2021): how often each architecture ranks
  first when the cases are resampled with replacement.

The report marks an interval as rough (†) where the coverage table says so (``intervals.rough``).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from nnunet_archs.analysis.coverage import coverage_if_population
from nnunet_archs.analysis.intervals import mean_interval, rough
from nnunet_archs.analysis.significance import (ALPHA, MIN_PAIRED_CASES, detectable_difference, holm,
                                                paired_intervals)
from nnunet_archs.analysis.table import MEAN_LABEL, case_matrix, label_rows, normalise, scored, seed_case_values
from nnunet_archs.errors import UserError
from nnunet_archs.evaluation.failures import FAILURE_CONVENTIONS, MISSED, SPURIOUS
from nnunet_archs.evaluation.metrics import DEFAULT_PRIMARY, metric as metric_record

# what the verdict is about: the test, the effect and the interval all concern this one quantity
ESTIMAND = "mean per-case difference, failures scored as the convention says (what a user gets on average)"


@dataclass
class Summary:
    architecture: str
    metric: str
    label: str
    n_cases: int
    n_missing: int
    mean: float
    sd: float
    ci: Tuple[float, float]
    fold_means: Dict[str, float]
    sd_over_folds: float
    seed_means: Dict[str, float] = field(default_factory=dict)
    sd_over_seeds: float = math.nan
    n_missed: int = 0  # rows (case, seed[, label]) where the reference has the structure and the prediction not
    n_spurious: int = 0  # ... and the reverse
    ci_method: str = ""

    @property
    def rough(self) -> bool:
        """Its interval is marked † (``intervals.rough``)."""
        return rough(self.n_cases, self.n_missed + self.n_spurious > 0)


@dataclass
class PairedComparison:
    architecture: str
    baseline: str
    metric: str
    label: str
    n_pairs: int
    mean_difference: float
    ci: Tuple[float, float]
    p_value: float
    p_holm: float = math.nan
    ci90: Tuple[float, float] = (math.nan, math.nan)
    ci_method: str = ""  # of both intervals
    sd_difference: float = math.nan
    detectable_difference: float = math.nan  # at 80 % power and Holm's first step (significance)
    seed_win_share: Optional[float] = None  # with >= 2 seeds: share of seed pairs in which it beats the baseline
    margin: Optional[float] = None
    verdict: str = ""  # the primary endpoint's only
    coverage: float = math.nan  # the primary endpoint's only: of the 95 % interval, if the cases were the population
    with_failures: bool = False  # either network missed or invented a structure in this endpoint

    @property
    def rough(self) -> bool:
        """Its intervals are marked † (``intervals.rough``)."""
        return rough(self.n_pairs, self.with_failures)

    @property
    def within_margin(self) -> bool:
        """Equivalence by two one-sided tests at 5 %: the 90 % interval lies inside (-margin, +margin)."""
        return self.margin is not None and -self.margin < self.ci90[0] and self.ci90[1] < self.margin


@dataclass
class StudyStatistics:
    baseline: str
    seed: int
    resamples: int
    primary: Tuple[str, str] = (DEFAULT_PRIMARY, MEAN_LABEL)
    failures: str = "worst"
    summaries: List[Summary] = field(default_factory=list)
    comparisons: List[PairedComparison] = field(default_factory=list)
    rank_first: Dict[Tuple[str, str], Dict[str, float]] = field(default_factory=dict)  # (metric, label) -> share
    seeds: List[str] = field(default_factory=list)

    def summary(self, architecture: str, metric: str, label: str = MEAN_LABEL) -> Optional[Summary]:
        return next((s for s in self.summaries if (s.architecture, s.metric, s.label) == (architecture, metric, label)),
                    None)

    def comparison(self, architecture: str, metric: str, label: str = MEAN_LABEL) -> Optional[PairedComparison]:
        return next((c for c in self.comparisons
                     if (c.architecture, c.metric, c.label) == (architecture, metric, label)), None)


def seed_win_share(ours: Dict[str, float], theirs: Dict[str, float], higher_is_better: bool) -> Optional[float]:
    """Share of (our seed, their seed) pairs whose mean is better than theirs (ties count half); None with fewer
    than two seeds on either side."""
    if len(ours) < 2 or len(theirs) < 2:
        return None
    wins = [0.5 if a == b else float((a > b) == higher_is_better) for a, b in itertools.product(ours.values(),
                                                                                               theirs.values())]
    return float(np.mean(wins))


def decide(comparison: PairedComparison, lower_is_better: bool, alpha: float = ALPHA) -> str:
    """The primary endpoint's verdict: better or worse when the Holm-corrected test rejects equality, else
    equivalent when the 90 % interval lies inside the margin (two one-sided tests at 5 %), else inconclusive;
    never from fewer than ``MIN_PAIRED_CASES`` paired cases."""
    if comparison.n_pairs == 0:
        return "no paired cases"
    if comparison.n_pairs < MIN_PAIRED_CASES:
        return "too few cases"
    if comparison.p_holm < alpha:
        return "better" if (comparison.mean_difference < 0) == lower_is_better else "worse"
    return "equivalent" if comparison.within_margin else "inconclusive"


def rank_first_shares(matrix: pd.DataFrame, higher_is_better: bool, seed: int, resamples: int) -> Dict[str, float]:
    """Share of bootstrap resamples of the cases in which each architecture has the best mean (ties split)."""
    complete = matrix.dropna()
    if complete.empty:
        return {a: math.nan for a in matrix.columns}
    values = complete.to_numpy()
    means = values[np.random.default_rng(seed).integers(0, len(values), (resamples, len(values)))].mean(1)
    best = means.max(1, keepdims=True) if higher_is_better else means.min(1, keepdims=True)
    winners = np.isclose(means, best, rtol=0, atol=1e-12)
    # summed in resample order (cumsum), as a loop over the resamples would: the same shares to the last bit
    shares = np.cumsum(winners / winners.sum(1, keepdims=True), axis=0)[-1]
    return {a: float(s / resamples) for a, s in zip(complete.columns, shares)}


def _summary(table: pd.DataFrame, architecture: str, metric: str, label: str, column: pd.Series,
             folds: pd.Series, seed: int, resamples: int, bounds: Tuple[float, float]) -> Summary:
    values = column.to_numpy(dtype=float)
    fold_means = column.groupby(folds.reindex(column.index)).mean().dropna()
    per_seed = seed_case_values(table[table["architecture"] == architecture], metric, label)
    seed_means = per_seed.groupby("seed").mean().dropna() if not per_seed.empty else pd.Series(dtype=float)
    failures = label_rows(table[table["architecture"] == architecture], metric, label)["failure"]
    interval = mean_interval(values, seed, resamples, bounds=bounds)
    return Summary(architecture, metric, label, int(column.notna().sum()), int(column.isna().sum()),
                   float(np.nanmean(values)) if column.notna().any() else math.nan,
                   float(np.nanstd(values, ddof=1)) if column.notna().sum() > 1 else math.nan,
                   interval.ends, {str(k): float(v) for k, v in fold_means.items()},
                   float(fold_means.std(ddof=1)) if len(fold_means) > 1 else math.nan,
                   {str(k): float(v) for k, v in seed_means.items()},
                   float(seed_means.std(ddof=1)) if len(seed_means) > 1 else math.nan,
                   int((failures == MISSED).sum()), int((failures == SPURIOUS).sum()), interval.method)


def _compare(architecture: str, baseline: str, metric: str, label: str, differences: np.ndarray, family: int,
             seed: int, resamples: int, bounds: Tuple[float, float]) -> PairedComparison:
    """The paired comparison of one architecture with the baseline (before Holm's correction)."""
    paired = paired_intervals(differences, seed, resamples, bounds)
    sd = float(differences.std(ddof=1)) if len(differences) > 1 else math.nan
    return PairedComparison(architecture, baseline, metric, label, len(differences), paired.test.mean, paired.ci,
                            paired.test.p_value, ci90=paired.ci90, ci_method=paired.method, sd_difference=sd,
                            detectable_difference=detectable_difference(len(differences), sd, family))


def analyse(table: pd.DataFrame, architectures: Sequence[str], baseline: str, metrics: Sequence[str], seed: int,
            resamples: int = 2000, primary: Tuple[str, str] = (DEFAULT_PRIMARY, MEAN_LABEL),
            margins: Optional[Dict[str, float]] = None, failures: str = "worst") -> StudyStatistics:
    """Everything the report shows, for each metric and each label plus the label mean; the verdict for the
    ``primary`` (metric, label) only, with the equivalence ``margins`` per metric (in its unit)."""
    table = scored(normalise(table), failures)
    if baseline not in architectures:
        raise UserError(f"baseline {baseline!r} is not among the architectures {list(architectures)}")
    margins = margins or {}
    result = StudyStatistics(baseline, seed, resamples, tuple(primary), failures,
                             seeds=sorted(table["seed"].unique(), key=lambda s: (len(s), s)))
    labels = [MEAN_LABEL] + sorted(table["label"].unique())
    others = [a for a in architectures if a != baseline]
    for metric in metrics:
        record = metric_record(metric)
        rows = table[table["metric"] == metric]
        bounds = record.study_range(rows["worst_case"].astype(float))
        folds = rows.drop_duplicates("case").set_index("case")["fold"]
        for label in labels:
            matrix = case_matrix(table, metric, label).reindex(columns=list(architectures))
            summaries = {a: _summary(table, a, metric, label, matrix[a], folds, seed, resamples, bounds)
                         for a in architectures}
            result.summaries += summaries.values()
            family = []
            for architecture in others:
                pairs = matrix[[baseline, architecture]].dropna()
                differences = (pairs[architecture] - pairs[baseline]).to_numpy(dtype=float)
                comparison = _compare(architecture, baseline, metric, label, differences, len(others), seed,
                                      resamples, bounds)
                comparison.seed_win_share = seed_win_share(summaries[architecture].seed_means,
                                                           summaries[baseline].seed_means, record.higher_is_better)
                comparison.margin = margins.get(metric)
                comparison.with_failures = any(summaries[a].n_missed + summaries[a].n_spurious
                                               for a in (architecture, baseline))
                if (metric, label) == tuple(primary):
                    comparison.coverage = coverage_if_population(differences, seed)
                family.append(comparison)
            for comparison, adjusted in zip(family, holm([c.p_value for c in family])):
                comparison.p_holm = adjusted
                if (metric, label) == tuple(primary):
                    comparison.verdict = decide(comparison, record.lower_is_better)
            result.comparisons += family
            if label == MEAN_LABEL or (metric, label) == tuple(primary):
                result.rank_first[(metric, label)] = rank_first_shares(matrix, record.higher_is_better, seed,
                                                                       resamples)
    return result


def other_convention(failures: str) -> str:
    return next(c for c in FAILURE_CONVENTIONS if c != failures)


def failure_sensitivity(table: pd.DataFrame, architectures: Sequence[str], baseline: str, seed: int,
                        resamples: int, primary: Tuple[str, str], margins: Optional[Dict[str, float]] = None,
                        failures: str = "worst") -> Optional[StudyStatistics]:
    """The primary endpoint's statistics under the other failure convention, when its metric has one (it is
    scored at the worst case on failure) and a failure occurred in its rows; else None."""
    metric, label = primary
    rows = label_rows(normalise(table), metric, label)
    if not metric_record(metric).worst_case_on_failure or not (rows["failure"] != "").any():
        return None
    return analyse(table, architectures, baseline, [metric], seed, resamples, primary, margins,
                   other_convention(failures))
