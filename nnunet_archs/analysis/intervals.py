"""Confidence intervals of a mean from per-case values, finite and inside the metric's range.

The studentized bootstrap (bootstrap-t) held its nominal coverage on small samples of skewed continuous values
(``benchmarks/coverage.py``, BENCHMARKS.md), but its pivot degenerates on tied or discrete values: a resample whose
values are all equal has sd 0 and an infinite t, and with a recall at 1.0 in most cases or false-positive counts
mostly 0 so many resamples are constant that a quantile of t is infinite. Then the interval is scipy's BCa
bootstrap (its quantiles stay inside the resampled means), else the percentile interval where BCa's corrections
are undefined. Either way the ends are clipped to the metric's range in the study
(``evaluation.metrics.Metric.study_range``): no recall above 1, no count below 0. Each interval names its method.

The report marks an interval † (rough) where the coverage table (``benchmarks/coverage.py``, BENCHMARKS.md
section 9) has a kind of per-case data like its own covered less than 0.90 at that many cases, twice the nominal
5 % misses (``rough``).
"""
from __future__ import annotations

import math
import warnings
from typing import NamedTuple, Tuple

import numpy as np
from scipy import stats

# the † rule, from the coverage table: below 0.90 at 5 cases on tied, discrete and heavy-tailed data (0.69-0.92),
# and with a share of worst-case failures (structures missed or invented) at 5 to 20 cases (0.53-0.87; 0.96 at 40)
ROUGH_BELOW, ROUGH_WITH_FAILURES_BELOW = 10, 40
STUDENTIZED, BCA, PERCENTILE, CONSTANT = "studentized bootstrap", "BCa bootstrap", "percentile bootstrap", "constant"
UNBOUNDED = (-math.inf, math.inf)


class Interval(NamedTuple):
    low: float
    high: float
    method: str

    @property
    def ends(self) -> Tuple[float, float]:
        return self.low, self.high


def rough(n: int, failures: bool) -> bool:
    """Whether an interval from ``n`` cases (``failures``: some of them a structure missed or invented) is marked
    rough (†): the coverage table had a kind of data like it below 0.90 coverage at that many cases."""
    return n < (ROUGH_WITH_FAILURES_BELOW if failures else ROUGH_BELOW)


def clipped(low: float, high: float, bounds: Tuple[float, float]) -> Tuple[float, float]:
    return float(min(max(low, bounds[0]), bounds[1])), float(max(min(high, bounds[1]), bounds[0]))


def _studentized(values: np.ndarray, samples: np.ndarray, confidence: float) -> Tuple[float, float]:
    """The mean minus the resampled t-statistics' quantiles times the standard error. A resample whose values are
    all equal has t = 0 at the sample's mean and an infinite t elsewhere; where such resamples reach a quantile the
    pivot has degenerated and the ends are infinite."""
    n = len(values)
    mean, standard_error = values.mean(), values.std(ddof=1) / math.sqrt(n)
    means, sds = samples.mean(1), samples.std(1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(sds > 0, (means - mean) / (sds / math.sqrt(n)),
                     np.where(np.isclose(means, mean, rtol=0, atol=1e-12), 0.0, np.sign(means - mean) * np.inf))
    tail = (1 - confidence) / 2
    low, high = np.quantile(t, [tail, 1 - tail], method="inverted_cdf")
    return float(mean - high * standard_error), float(mean - low * standard_error)


def _bca(values: np.ndarray, seed: int, resamples: int, confidence: float) -> Tuple[float, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns that BCa is undefined for degenerate resamples: NaN, handled
        result = stats.bootstrap((values,), np.mean, n_resamples=resamples, confidence_level=confidence,
                                 method="BCa", random_state=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def mean_interval(values: np.ndarray, seed: int, resamples: int, confidence: float = 0.95,
                  bounds: Tuple[float, float] = UNBOUNDED, start: str = STUDENTIZED) -> Interval:
    """The ``confidence`` interval of the mean of ``values`` (NaNs dropped) inside ``bounds``: studentized bootstrap,
    BCa where its pivot degenerates, percentile where BCa is undefined; a constant sample's is that constant.
    ``start``: the first method to try (the one of a wider interval of the same sample, so the two nest)."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    n = len(values)
    if n < 2:
        return Interval(math.nan, math.nan, "")
    if np.ptp(values) == 0:
        return Interval(float(values[0]), float(values[0]), CONSTANT)
    samples = values[np.random.default_rng(seed).integers(0, n, (resamples, n))]
    tail = (1 - confidence) / 2
    methods = {STUDENTIZED: lambda: _studentized(values, samples, confidence),
               BCA: lambda: _bca(values, seed, resamples, confidence),
               PERCENTILE: lambda: tuple(map(float, np.quantile(samples.mean(1), [tail, 1 - tail])))}
    for method in list(methods)[list(methods).index(start) if start in methods else 0:]:
        ends = methods[method]()
        if np.all(np.isfinite(ends)):
            break
    return Interval(*clipped(*ends, bounds), method)


def difference_bounds(bounds: Tuple[float, float]) -> Tuple[float, float]:
    """The range of a difference of two values in ``bounds``."""
    return bounds[0] - bounds[1], bounds[1] - bounds[0]
