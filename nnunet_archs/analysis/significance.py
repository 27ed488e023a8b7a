"""Tests of paired differences, their intervals, and what a study of its size can detect.

One estimand, one test, one interval: the verdict is about the *mean* per-case difference (failures scored: what a
user gets on average), tested with the two-sided sign-flip (randomization) test of the mean, and its 95 % and 90 %
intervals are the differences that same test does not reject. Under the hypothesis "mean difference = θ" the
differences minus θ are as likely with each sign flipped; the test compares their sum with its 2^n sign-flipped
versions (exact enumeration up to ``EXACT_UP_TO`` pairs, seeded Monte Carlo draws above). Studentizing changes
nothing here: for sign flips the t statistic is a monotone function of the sum (the sum of squares is the same in
every flip), so this is the studentized sign-flip test too (Janssen, Stat Probab Lett 1997: asymptotically valid for
the mean without symmetry).

The inversion is exact, after Hartigan (JASA 1969): flipping the set F of the differences d - θ makes the sum no
smaller exactly when the mean of d over F is <= θ, so the one-sided p-values at every θ are counts of the subset
means of d. The interval's ends are order statistics of those means, computed with the same counts as the p-value:
the interval excludes 0 exactly when the test rejects at its level, contains the mean, never leaves
[min d, max d] (so never the metric's range), and is a point for data that are all one value.

Holm's correction runs over a family of comparisons; the verdict uses the corrected p, the printed intervals are
unadjusted (so a rejected comparison's interval excludes 0 all the more).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, NamedTuple, Sequence, Tuple

import numpy as np
from scipy import optimize, stats

from nnunet_archs.analysis.intervals import UNBOUNDED, difference_bounds, mean_interval

ALPHA = 0.05
POWER = 0.8
# a verdict needs at least this many paired cases
MIN_PAIRED_CASES = 10
# exact enumeration of the 2^n sign patterns up to this many pairs (2^20: 1M subset means, ~50 ms); Monte Carlo above
EXACT_UP_TO = 20
SIGN_FLIPS = 20000  # Monte Carlo draws: the p-value's Monte Carlo sd is 0.0015 at p = 0.05
EXACT, MONTE_CARLO = "sign-flip test inverted (exact)", f"sign-flip test inverted ({SIGN_FLIPS} Monte Carlo flips)"


def inverted_ends(means: np.ndarray, always: int, total: int, level: float) -> Tuple[np.ndarray, np.ndarray]:
    """The ends of the interval of the differences θ the two-sided sign-flip test at ``level`` does not reject, for
    each row of ``means`` (a sample's subset means over the same sign patterns; ``always``, ``total``: as
    ``SignFlip``). An end is infinite when no θ is rejected on that side (n <= 5 at 5 %: 2 / 2^n >= 5 %)."""
    count = means.shape[-1]
    tail = level / 2  # p < level exactly when the smaller one-sided p < level / 2 (halving is exact)
    # the j-th smallest mean is the lowest θ whose upper p reaches the tail: (always + j + 1) / total >= tail, the
    # same expression as the p-value's, so the interval excludes 0 exactly when the test rejects
    reach = (always + np.arange(1, count + 1)) / total
    j = int(np.searchsorted(reach, tail, side="left"))
    if always / total >= tail or j >= count:
        return np.full(means.shape[:-1], -np.inf), np.full(means.shape[:-1], np.inf)
    ordered = np.partition(means, [j, count - 1 - j], axis=-1)
    return ordered[..., j], ordered[..., count - 1 - j]


@dataclass(frozen=True)
class SignFlip:
    """The sign-flip test of one sample of paired differences: ``means`` are the means of d over the flipped sets
    (the non-empty ones: every subset when exact, the drawn ones otherwise), ``always`` the sign patterns that count
    at every θ (the observed one, and drawn empty flips), ``total`` the patterns in the reference distribution."""

    n: int
    mean: float
    means: np.ndarray
    always: int
    total: int
    exact: bool

    @property
    def p_value(self) -> float:
        """Two-sided p of "mean difference = 0": twice the smaller one-sided p (scipy's convention), at most 1."""
        if self.n == 0:
            return math.nan
        upper = (self.always + int(np.count_nonzero(self.means <= 0))) / self.total  # P(flipped sum >= observed)
        lower = (self.always + int(np.count_nonzero(self.means >= 0))) / self.total
        return min(1.0, 2 * min(upper, lower))

    def interval(self, level: float = ALPHA) -> Tuple[float, float]:
        """The differences θ the two-sided test at ``level`` does not reject: the 1 - ``level`` interval (closed)."""
        if self.n == 0:
            return math.nan, math.nan
        low, high = inverted_ends(self.means, self.always, self.total, level)
        return float(low), float(high)

    @property
    def method(self) -> str:
        return EXACT if self.exact else MONTE_CARLO


def _snapped(means: np.ndarray, scale) -> np.ndarray:
    """Subset means rounded to 12 digits of the data's ``scale`` (its largest absolute value): means equal in exact
    arithmetic (0.1 + 0.2 - 0.3 and 0) are then equal in floating point too, so ties count as ties in the p-value
    and the interval alike."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(scale > 0, np.round(means / scale, 12) * scale, means)


def subset_means(samples: np.ndarray, patterns: np.ndarray) -> np.ndarray:
    """The mean of each row of ``samples`` (m x n) over each flipped set, a row of ``patterns`` (k x n, none
    empty)."""
    return _snapped(samples @ patterns.T.astype(float) / patterns.sum(1), np.abs(samples).max(1, keepdims=True))


def flip_patterns(n: int, seed: int, draws: int, exact: bool) -> Tuple[np.ndarray, int, int]:
    """The flipped sets as rows of a boolean matrix, with (``always``, ``total``) as ``SignFlip`` has them: every
    non-empty subset of n when ``exact``, else ``draws`` sets drawn from ``seed`` (empty draws counted, not kept)."""
    if exact:
        return (np.arange(1, 2 ** n)[:, None] >> np.arange(n)) & 1 == 1, 1, 2 ** n
    flipped = np.random.default_rng(seed).random((draws, n)) < 0.5
    kept = flipped.any(1)
    return flipped[kept], 1 + int((~kept).sum()), draws + 1


def sign_flip_test(differences: np.ndarray, seed: int, draws: int = SIGN_FLIPS,
                   exact_up_to: int = EXACT_UP_TO) -> SignFlip:
    """The sign-flip test of the mean of ``differences`` (NaNs dropped): every sign pattern up to ``exact_up_to``
    values, else ``draws`` patterns drawn from ``seed``."""
    d = np.asarray(differences, dtype=float)
    d = d[~np.isnan(d)]
    n = len(d)
    if n > exact_up_to:
        patterns, always, total = flip_patterns(n, seed, draws, exact=False)
        return SignFlip(n, float(d.mean()), subset_means(d[None], patterns)[0], always, total, False)
    sums, sizes = np.zeros(1), np.zeros(1, dtype=np.int64)
    for value in d:  # every subset, built by doubling (2^20 means in memory, not a 2^20 x 20 matrix)
        sums, sizes = np.concatenate([sums, sums + value]), np.concatenate([sizes, sizes + 1])
    means = _snapped(sums[1:] / sizes[1:], float(np.abs(d).max()) if n else 0.0)
    return SignFlip(n, float(d.mean()) if n else math.nan, means, 1, 2 ** n, True)


class PairedIntervals(NamedTuple):
    """The test of the paired differences and its 95 % and 90 % intervals, with the method that gave them."""

    test: SignFlip
    ci: Tuple[float, float]
    ci90: Tuple[float, float]
    method: str


def paired_intervals(differences: np.ndarray, seed: int, resamples: int, bounds: Tuple[float, float] = UNBOUNDED,
                     draws: int = SIGN_FLIPS, exact_up_to: int = EXACT_UP_TO) -> PairedIntervals:
    """The sign-flip test of the mean difference and its inverted 95 % and 90 % intervals; with too few pairs for
    the test to reject anything at 5 % (at most 5: an infinite inverted interval) both intervals are the bootstrap
    intervals of the mean difference (``intervals.mean_interval``; no verdict comes from so few pairs) inside the
    range of a difference of two values in ``bounds`` (the metric's range)."""
    test = sign_flip_test(differences, seed, draws, exact_up_to)
    if test.n < 2:
        return PairedIntervals(test, (math.nan, math.nan), (math.nan, math.nan), "")
    ci, ci90 = test.interval(ALPHA), test.interval(2 * ALPHA)
    if np.all(np.isfinite(ci + ci90)):
        return PairedIntervals(test, ci, ci90, test.method)
    limits = difference_bounds(bounds)
    wide = mean_interval(differences, seed, resamples, 1 - ALPHA, limits)
    narrow = mean_interval(differences, seed, resamples, 1 - 2 * ALPHA, limits, start=wide.method)
    return PairedIntervals(test, wide.ends, narrow.ends, f"{wide.method} (too few pairs for the sign-flip test to "
                                                         f"reject)")


def smallest_p(n: int) -> float:
    """The smallest two-sided p the sign-flip test reaches with ``n`` pairs (every difference of one sign)."""
    return 2 / 2 ** n if n <= EXACT_UP_TO else 2 / (SIGN_FLIPS + 1)


def holm(p_values: Sequence[float]) -> List[float]:
    """Holm's step-down adjustment (family-wise error), NaNs passed through and not counted in the family."""
    indexed = sorted((p, i) for i, p in enumerate(p_values) if not math.isnan(p))
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(indexed):
        running = max(running, min(1.0, (len(indexed) - rank) * p))
        adjusted[i] = running
    return adjusted


def detectable_difference(n: int, sd: float, family: int = 1, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest true mean difference the study's test detects with ``power``, given ``n`` pairs whose differences
    have standard deviation ``sd`` and ``family`` comparisons under Holm: a two-sided paired t-test at
    ``alpha / family`` (Holm's first step, the strictest; exact, from the noncentral t distribution). The sign-flip
    test of the mean has the t-test's asymptotic power (relative efficiency 1); with so few pairs that it cannot
    reach ``alpha / family`` at all, no difference is detectable (infinite)."""
    if n < 2 or not sd >= 0 or math.isnan(sd):
        return math.nan
    level = alpha / max(family, 1)
    if smallest_p(n) >= level:
        return math.inf
    if sd == 0:
        return 0.0
    df, critical = n - 1, stats.t.ppf(1 - level / 2, n - 1)

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
