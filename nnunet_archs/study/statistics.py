"""Statistics of a study, as pure functions from the tidy per-case table to small result objects (no file I/O;
every random draw comes from the seed passed in, so a rerun gives the same numbers).

- per architecture and metric: mean and standard deviation over cases, a 95 % bootstrap confidence interval of
  the mean, and the standard deviation of the per-fold means;
- against the baseline, paired over cases: the mean difference with a 95 % bootstrap (BCa) confidence interval
  and the Wilcoxon signed-rank p-value, Holm-corrected across the architectures compared with the baseline (one
  family per metric and label);
- rank stability (the idea of challengeR, Wiesenfarth et al., Sci Rep 2021): how often each architecture ranks
  first when the cases are resampled with replacement.

Per-case values are the label's value, or for label ``"mean"`` the mean over the labels a case has (NaN labels
left out, as nnU-Net's foreground mean). Cases where a value is NaN for either side of a comparison are left out
of that comparison and counted.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd
from scipy import stats

from nnunet_archs.errors import UserError
from nnunet_archs.study.metrics import COLUMNS, LOWER_IS_BETTER

MEAN_LABEL = "mean"


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


@dataclass
class StudyStatistics:
    baseline: str
    seed: int
    resamples: int
    summaries: List[Summary] = field(default_factory=list)
    comparisons: List[PairedComparison] = field(default_factory=list)
    rank_first: Dict[Tuple[str, str], Dict[str, float]] = field(default_factory=dict)  # (metric, label) -> share

    def summary(self, architecture: str, metric: str, label: str = MEAN_LABEL) -> Optional[Summary]:
        return next((s for s in self.summaries if (s.architecture, s.metric, s.label) == (architecture, metric, label)),
                    None)

    def comparison(self, architecture: str, metric: str, label: str = MEAN_LABEL) -> Optional[PairedComparison]:
        return next((c for c in self.comparisons
                     if (c.architecture, c.metric, c.label) == (architecture, metric, label)), None)


def check_table(table: pd.DataFrame) -> None:
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise UserError(f"the per-case table lacks column(s) {missing}; it needs {COLUMNS}")


def case_matrix(table: pd.DataFrame, metric: str, label: str) -> pd.DataFrame:
    """Cases x architectures for one metric and label (``"mean"``: mean over a case's labels)."""
    rows = table[table["metric"] == metric]
    if label != MEAN_LABEL:
        rows = rows[rows["label"] == label]
    grouped = rows.groupby(["architecture", "fold", "case"], sort=False)["value"].mean().reset_index()
    matrix = grouped.pivot(index="case", columns="architecture", values="value")
    return matrix


def bootstrap_ci(values: np.ndarray, seed: int, resamples: int) -> Tuple[float, float]:
    """95 % BCa bootstrap interval of the mean; a constant sample's interval is that constant."""
    values = values[~np.isnan(values)]
    if len(values) < 2:
        return math.nan, math.nan
    if np.ptp(values) == 0:
        return float(values[0]), float(values[0])
    result = stats.bootstrap((values,), np.mean, n_resamples=resamples, confidence_level=0.95, method="BCa",
                             random_state=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


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


def analyse(table: pd.DataFrame, architectures: Sequence[str], baseline: str, metrics: Sequence[str], seed: int,
            resamples: int = 2000) -> StudyStatistics:
    """Everything the report shows, for each metric and each label plus the label mean."""
    check_table(table)
    if baseline not in architectures:
        raise UserError(f"baseline {baseline!r} is not among the architectures {list(architectures)}")
    table = table.assign(fold=table["fold"].astype(str))
    result = StudyStatistics(baseline, seed, resamples)
    labels = [MEAN_LABEL] + sorted(table["label"].astype(str).unique())
    for metric in metrics:
        for label in labels:
            matrix = case_matrix(table, metric, label).reindex(columns=list(architectures))
            folds = table[table["metric"] == metric].drop_duplicates("case").set_index("case")["fold"]
            for architecture in architectures:
                column = matrix[architecture]
                values = column.to_numpy(dtype=float)
                fold_means = column.groupby(folds.reindex(column.index)).mean().dropna()
                result.summaries.append(Summary(
                    architecture, metric, label, int(column.notna().sum()), int(column.isna().sum()),
                    float(np.nanmean(values)) if column.notna().any() else math.nan,
                    float(np.nanstd(values, ddof=1)) if column.notna().sum() > 1 else math.nan,
                    bootstrap_ci(values, seed, resamples), {str(k): float(v) for k, v in fold_means.items()},
                    float(fold_means.std(ddof=1)) if len(fold_means) > 1 else math.nan))
            family = []
            for architecture in architectures:
                if architecture == baseline:
                    continue
                pairs = matrix[[baseline, architecture]].dropna()
                differences = (pairs[architecture] - pairs[baseline]).to_numpy(dtype=float)
                family.append(PairedComparison(
                    architecture, baseline, metric, label, len(differences),
                    float(differences.mean()) if len(differences) else math.nan,
                    bootstrap_ci(differences, seed, resamples), wilcoxon_p(differences)))
            for comparison, adjusted in zip(family, holm([c.p_value for c in family])):
                comparison.p_holm = adjusted
            result.comparisons += family
            result.rank_first[(metric, label)] = rank_first_shares(matrix, metric not in LOWER_IS_BETTER, seed,
                                                                   resamples)
    return result
