"""How often a study's own primary interval would cover, if its cases were the population.

BENCHMARKS.md measures the coverage of the report's intervals on four kinds of simulated per-case data; a study's
data may be of a fifth kind. So each study also treats its own paired differences as the population (their mean
is then the truth), draws samples of its size from them with replacement, recomputes the interval on each and
counts how often it holds the truth. This is a plug-in estimate, biased at small n (a resample of 10 cases holds
fewer distinct values than the population it stands for), hence labelled "if these cases were the population".
It is seeded and capped: ``SAMPLES`` samples, each interval from at most ``FLIPS`` sign patterns (all of them while
2^n <= ``FLIPS`` + 1), where the printed interval enumerates up to 20 pairs and draws 20,000 flips above.
"""
from __future__ import annotations

import math

import numpy as np

from nnunet_archs.analysis.significance import ALPHA, flip_patterns, inverted_ends, smallest_p, subset_means

SAMPLES, FLIPS = 500, 500


def coverage_if_population(differences: np.ndarray, seed: int, samples: int = SAMPLES,
                           flips: int = FLIPS) -> float:
    """Share of ``samples`` resamples of ``differences`` (NaNs dropped) whose 95 % interval of the mean difference
    (the sign-flip test inverted, ``significance``, over at most ``flips`` sign patterns, the same for every
    resample) holds their mean; NaN where the printed interval is not the inverted test's (too few differences
    for it to reject anything)."""
    d = np.asarray(differences, dtype=float)
    d = d[~np.isnan(d)]
    n = len(d)
    if n < 2 or smallest_p(n) >= ALPHA:
        return math.nan
    rng = np.random.default_rng(seed)
    resampled = d[rng.integers(0, n, (samples, n))]
    patterns, always, total = flip_patterns(n, seed, flips, exact=2 ** n <= flips + 1)
    low, high = inverted_ends(subset_means(resampled, patterns), always, total, ALPHA)
    # a point interval and the truth can differ by a rounding of the mean: compare at the data's scale
    tolerance = 1e-9 * float(np.abs(d).max())
    return float(np.mean((low - tolerance <= d.mean()) & (d.mean() <= high + tolerance)))
