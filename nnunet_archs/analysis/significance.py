"""Tests of paired differences and what a study of its size can detect: Wilcoxon's signed-rank test, Holm's
correction over a family of comparisons, and the smallest difference a paired t-test detects at a given power."""
from __future__ import annotations

import math
import warnings
from typing import List, Sequence

import numpy as np
from scipy import optimize, stats

ALPHA = 0.05
POWER = 0.8


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

