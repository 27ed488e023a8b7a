"""Confidence intervals of a mean from per-case values.

Studentized bootstrap (bootstrap-t) intervals: in simulations of small samples of skewed per-case values
(``benchmarks/coverage.py``, BENCHMARKS.md) they held their nominal coverage where BCa and percentile intervals fell
short.
"""
from __future__ import annotations

import math
from typing import Tuple

import numpy as np


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

