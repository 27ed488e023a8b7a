"""Statistics of a study, as pure functions from the tidy per-case table to small result objects (no file I/O;
every random draw comes from the seed passed in, so a rerun gives the same numbers).

Per-case values: each row's value, or for a failure (a structure missed or invented) its worst case under the
``worst`` convention (``metrics.FAILURE_CONVENTIONS``); for label ``"mean"`` the mean over the labels a case has
(NaN labels left out, as nnU-Net's foreground mean); then the mean over the training seeds. Every case thus has
one value per architecture, and cases are what the statistics resample:

- per architecture, metric and label: mean and standard deviation over cases, a 95 % confidence interval of the
  mean, the standard deviation of the per-fold means and of the per-seed means (training variance), and the
  failures counted;
- against the baseline, paired over cases: the mean difference with 95 % and 90 % confidence intervals, the
  Wilcoxon signed-rank p-value Holm-corrected across the architectures compared with the baseline (one family
  per metric and label), the smallest difference the study could detect at 80 % power, and with two or more
  training seeds how often the architecture beats the baseline across pairs of seeds;
- a verdict for the primary endpoint only (better / worse / equivalent within a margin / inconclusive, or too few
  cases to conclude), so that verdicts do not multiply across metrics and labels;
- rank stability (the idea of challengeR, Wiesenfarth et al., Sci Rep 2021): how often each architecture ranks
  first when the cases are resampled with replacement;
- from the objects table: detection recall per object-size bin, with an interval from resampling the cases.

Confidence intervals are studentized bootstrap (bootstrap-t) intervals of the mean: in simulations of small
samples of skewed per-case values (``benchmarks/coverage.py``, BENCHMARKS.md) they held their nominal coverage
where BCa and percentile intervals fell short; below ``SMALL_SAMPLE`` cases the report marks every interval as
rough.
"""
from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd
from scipy import optimize, stats

from nnunet_archs.errors import UserError
from nnunet_archs.study.metrics import (COLUMNS, LOWER_IS_BETTER, MEAN_LABEL, MISSED, REQUIRED_COLUMNS, SPURIOUS,
                                        check_failure_convention)
from nnunet_archs.study.objects import SIZE_EDGES_MM3, size_bin

ALPHA = 0.05
POWER = 0.8
# a verdict needs at least this many paired cases; intervals from fewer than SMALL_SAMPLE cases are flagged
MIN_PAIRED_CASES = 10
SMALL_SAMPLE = 20


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
    sd_difference: float = math.nan
    detectable_difference: float = math.nan  # at 80 % power, two-sided alpha 5 % (paired t-test)
    seed_win_share: Optional[float] = None  # with >= 2 seeds: share of seed pairs in which it beats the baseline
    margin: Optional[float] = None
    verdict: str = ""  # the primary endpoint's only

    @property
    def within_margin(self) -> bool:
        """Equivalence by two one-sided tests at 5 %: the 90 % interval lies inside (-margin, +margin)."""
        return self.margin is not None and -self.margin < self.ci90[0] and self.ci90[1] < self.margin


@dataclass
class StudyStatistics:
    baseline: str
    seed: int
    resamples: int
    primary: Tuple[str, str] = ("Dice", MEAN_LABEL)
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


def normalise(table: pd.DataFrame) -> pd.DataFrame:
    """The table with every column of ``metrics.COLUMNS`` (an older table: training seed 0, no failures) and
    identifiers as strings."""
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise UserError(f"the per-case table lacks column(s) {missing}; it needs {REQUIRED_COLUMNS}")
    defaults = {"seed": "0", "failure": "", "worst_case": math.nan}
    table = table.assign(**{c: v for c, v in defaults.items() if c not in table.columns})
    table = table.assign(fold=table["fold"].astype(str), seed=table["seed"].astype(str),
                         failure=table["failure"].fillna("").astype(str), label=table["label"].astype(str),
                         case=table["case"].astype(str))
    return table[COLUMNS]


def scored(table: pd.DataFrame, failures: str) -> pd.DataFrame:
    """``table`` with a ``score`` column: the value, or under ``worst`` a failure's worst-case value."""
    check_failure_convention(failures)
    score = table["value"].astype(float)
    if failures == "worst":
        fill = score.isna() & (table["failure"] != "") & table["worst_case"].notna()
        score = score.mask(fill, table["worst_case"].astype(float))
    return table.assign(score=score)


def _rows(table: pd.DataFrame, metric: str, label: str) -> pd.DataFrame:
    rows = table[table["metric"] == metric]
    return rows if label == MEAN_LABEL else rows[rows["label"] == label]


def seed_case_values(table: pd.DataFrame, metric: str, label: str) -> pd.Series:
    """Score per (architecture, seed, fold, case): the label's, or the mean over a case's labels."""
    return _rows(table, metric, label).groupby(["architecture", "seed", "fold", "case"])["score"].mean()


def case_matrix(table: pd.DataFrame, metric: str, label: str) -> pd.DataFrame:
    """Cases x architectures for one metric and label of a ``scored`` table, averaged over training seeds."""
    values = seed_case_values(table, metric, label).groupby(["architecture", "fold", "case"]).mean()
    return values.reset_index().pivot(index="case", columns="architecture", values="score")


def bootstrap_ci(values: np.ndarray, seed: int, resamples: int, confidence: float = 0.95) -> Tuple[float, float]:
    """Studentized bootstrap (bootstrap-t) interval of the mean: the mean minus the resampled t-statistics'
    quantiles times the standard error. A constant sample's interval is that constant; a resample whose values
    are all equal has t = 0 at the sample's mean and an infinite t elsewhere."""
    values = values[~np.isnan(values)]
    n = len(values)
    if n < 2:
        return math.nan, math.nan
    if np.ptp(values) == 0:
        return float(values[0]), float(values[0])
    rng = np.random.default_rng(seed)
    samples = values[rng.integers(0, n, (resamples, n))]
    mean, standard_error = values.mean(), values.std(ddof=1) / math.sqrt(n)
    means, sds = samples.mean(1), samples.std(1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(sds > 0, (means - mean) / (sds / math.sqrt(n)),
                     np.where(np.isclose(means, mean, rtol=0, atol=1e-12), 0.0, np.sign(means - mean) * np.inf))
    tail = (1 - confidence) / 2
    low, high = np.quantile(t, [tail, 1 - tail], method="inverted_cdf")
    return float(mean - high * standard_error), float(mean - low * standard_error)


def wilcoxon_p(differences: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value; 1 when every difference is zero (no evidence of any)."""
    if len(differences) == 0:
        return math.nan
    if np.all(differences == 0):
        return 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's note that ties make the exact distribution approximate
        return float(stats.wilcoxon(differences).pvalue)


def holm(p_values: Sequence[float]) -> List[float]:
    """Holm's step-down adjustment (family-wise error), NaNs passed through and not counted in the family."""
    indexed = sorted((p, i) for i, p in enumerate(p_values) if not math.isnan(p))
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(indexed):
        running = max(running, min(1.0, (len(indexed) - rank) * p))
        adjusted[i] = running
    return adjusted


def detectable_difference(n: int, sd: float, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest true mean difference a two-sided paired t-test at ``alpha`` detects with ``power``, given
    ``n`` pairs whose differences have standard deviation ``sd`` (exact, from the noncentral t distribution)."""
    if n < 2 or not sd >= 0 or math.isnan(sd):
        return math.nan
    if sd == 0:
        return 0.0
    df, critical = n - 1, stats.t.ppf(1 - alpha / 2, n - 1)

    def shortfall(effect: float) -> float:
        shift = effect * math.sqrt(n)
        # the far tail is negligible for a positive shift; scipy's noncentral t returns NaN there for some shifts
        far_tail = np.nan_to_num(stats.nct.cdf(-critical, df, shift))
        return stats.nct.sf(critical, df, shift) + far_tail - power
    # the normal approximation's effect size, doubled until the power exceeds the goal (a bracket for the root)
    upper = (critical + stats.norm.ppf(power)) / math.sqrt(n)
    while shortfall(upper) < 0:
        upper *= 2
    return float(optimize.brentq(shortfall, 0.0, upper) * sd)


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
    rng = np.random.default_rng(seed)
    shares = np.zeros(values.shape[1])
    for _ in range(resamples):
        means = values[rng.integers(0, len(values), len(values))].mean(0)
        best = means.max() if higher_is_better else means.min()
        winners = np.isclose(means, best, rtol=0, atol=1e-12)
        shares += winners / winners.sum()
    return {a: float(s / resamples) for a, s in zip(complete.columns, shares)}


def _summary(table: pd.DataFrame, architecture: str, metric: str, label: str, column: pd.Series,
             folds: pd.Series, seed: int, resamples: int) -> Summary:
    values = column.to_numpy(dtype=float)
    fold_means = column.groupby(folds.reindex(column.index)).mean().dropna()
    per_seed = seed_case_values(table[table["architecture"] == architecture], metric, label)
    seed_means = per_seed.groupby("seed").mean().dropna() if not per_seed.empty else pd.Series(dtype=float)
    failures = _rows(table[table["architecture"] == architecture], metric, label)["failure"]
    return Summary(architecture, metric, label, int(column.notna().sum()), int(column.isna().sum()),
                   float(np.nanmean(values)) if column.notna().any() else math.nan,
                   float(np.nanstd(values, ddof=1)) if column.notna().sum() > 1 else math.nan,
                   bootstrap_ci(values, seed, resamples), {str(k): float(v) for k, v in fold_means.items()},
                   float(fold_means.std(ddof=1)) if len(fold_means) > 1 else math.nan,
                   {str(k): float(v) for k, v in seed_means.items()},
                   float(seed_means.std(ddof=1)) if len(seed_means) > 1 else math.nan,
                   int((failures == MISSED).sum()), int((failures == SPURIOUS).sum()))


def analyse(table: pd.DataFrame, architectures: Sequence[str], baseline: str, metrics: Sequence[str], seed: int,
            resamples: int = 2000, primary: Tuple[str, str] = ("Dice", MEAN_LABEL),
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
    for metric in metrics:
        higher_is_better = metric not in LOWER_IS_BETTER
        for label in labels:
            matrix = case_matrix(table, metric, label).reindex(columns=list(architectures))
            folds = table[table["metric"] == metric].drop_duplicates("case").set_index("case")["fold"]
            summaries = {a: _summary(table, a, metric, label, matrix[a], folds, seed, resamples)
                         for a in architectures}
            result.summaries += summaries.values()
            family = []
            for architecture in architectures:
                if architecture == baseline:
                    continue
                pairs = matrix[[baseline, architecture]].dropna()
                differences = (pairs[architecture] - pairs[baseline]).to_numpy(dtype=float)
                sd = float(differences.std(ddof=1)) if len(differences) > 1 else math.nan
                family.append(PairedComparison(
                    architecture, baseline, metric, label, len(differences),
                    float(differences.mean()) if len(differences) else math.nan,
                    bootstrap_ci(differences, seed, resamples), wilcoxon_p(differences),
                    ci90=bootstrap_ci(differences, seed, resamples, 0.90), sd_difference=sd,
                    detectable_difference=detectable_difference(len(differences), sd),
                    seed_win_share=seed_win_share(summaries[architecture].seed_means,
                                                  summaries[baseline].seed_means, higher_is_better),
                    margin=margins.get(metric)))
            for comparison, adjusted in zip(family, holm([c.p_value for c in family])):
                comparison.p_holm = adjusted
                if (metric, label) == tuple(primary):
                    comparison.verdict = decide(comparison, not higher_is_better)
            result.comparisons += family
            if label == MEAN_LABEL or (metric, label) == tuple(primary):
                result.rank_first[(metric, label)] = rank_first_shares(matrix, higher_is_better, seed, resamples)
    return result


@dataclass
class SizeBinRecall:
    """Detection recall of one architecture and label over the reference objects of one size bin (all training
    seeds pooled), with a 95 % percentile interval from resampling the cases."""

    architecture: str
    label: str
    size_bin: str
    n_objects: int
    n_cases: int
    recall: float
    ci: Tuple[float, float]


def detection_by_size(objects: pd.DataFrame, architectures: Sequence[str], seed: int,
                      resamples: int) -> List[SizeBinRecall]:
    """Per label and size bin (``objects.SIZE_EDGES_MM3``, in order), each architecture's share of the reference
    objects it found; a bin without objects for an architecture is left out (not applicable)."""
    references = objects[objects["side"] == "reference"]
    if references.empty:
        return []
    references = references.assign(bin=references["size_mm3"].astype(float).map(size_bin),
                                   matched=references["matched"].astype(str).str.lower() == "true",
                                   case=references["case"].astype(str))
    order = {name: i for i, name in enumerate(size_bin(low) for low in SIZE_EDGES_MM3[:-1])}
    result = []
    for (label, name), group in sorted(references.groupby(["label", "bin"]), key=lambda g: (g[0][0], order[g[0][1]])):
        for architecture in architectures:
            per_case = group[group["architecture"] == architecture].groupby("case")["matched"].agg(["sum", "count"])
            if per_case.empty:
                continue
            found, counts = per_case["sum"].to_numpy(float), per_case["count"].to_numpy(float)
            rng = np.random.default_rng(seed)
            draws = rng.integers(0, len(per_case), (resamples, len(per_case)))
            shares = found[draws].sum(1) / counts[draws].sum(1)
            low, high = np.quantile(shares, [0.025, 0.975]) if len(per_case) > 1 else (math.nan, math.nan)
            result.append(SizeBinRecall(architecture, str(label), name, int(counts.sum()), len(per_case),
                                        float(found.sum() / counts.sum()), (float(low), float(high))))
    return result
