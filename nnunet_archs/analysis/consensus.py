"""Several datasets, one ranking: pure functions from per-dataset case matrices (cases x architectures of one
endpoint) to a consensus ranking with its uncertainty, all pairwise comparisons per dataset, and whether a dataset
can separate the networks at all.

The rules, as challengeR's ``consensus()`` (Wiesenfarth et al., Sci Rep 2021) states them:

- within a dataset, *mean-then-rank*: the networks are ranked by their mean over cases (ties share the average
  rank);
- across datasets, *mean rank*: the consensus ranks the networks by their mean rank over the datasets;
- uncertainty: the cases of every dataset are resampled with replacement (the datasets stay), the ranking redone;
  the report gives how often each network ranks first and the distribution of its consensus rank (networks tied
  at an average rank share the places they tie for: two tied for first count half first, half second).

Pairwise comparisons are made between all networks of a dataset with the single study's test, effect and interval
(``significance``: the mean difference, its sign-flip test and the interval inverting it), Holm over all pairs of
that dataset: other p-values than a single study's, which compares each network with its baseline only. As in one
study, no pair is called different from fewer than ``MIN_PAIRED_CASES`` paired cases.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Dict, List, Sequence, Tuple

import numpy as np
import pandas as pd
from scipy import stats

from nnunet_archs.analysis.intervals import UNBOUNDED
from nnunet_archs.analysis.significance import ALPHA, MIN_PAIRED_CASES, holm, paired_intervals


@dataclass
class Endpoint:
    """One dataset's cases x architectures on its endpoint, and the spreads its study reported."""

    name: str
    matrix: pd.DataFrame
    lower_is_better: bool
    sd_over_folds: float = math.nan  # mean over the networks of the sd of their per-fold means
    sd_over_seeds: float = math.nan  # ... of their per-training-seed means
    bounds: Tuple[float, float] = UNBOUNDED  # the metric's range in this study (Metric.study_range)

    @property
    def complete(self) -> pd.DataFrame:
        """The cases every architecture has a value for: rankings compare the networks on the same cases."""
        return self.matrix.dropna()


@dataclass
class PairwiseResult:
    first: str
    second: str
    n_pairs: int
    mean_difference: float  # first - second
    ci: Tuple[float, float]
    p_value: float
    p_holm: float = math.nan
    better: str = ""  # the architecture the test finds better, "" when there is no evidence of a difference
    ci_method: str = ""

    @property
    def too_few(self) -> bool:
        return self.n_pairs < MIN_PAIRED_CASES


@dataclass
class Suitability:
    """Can this dataset separate the networks? The spread between their means against the spreads over folds and
    training seeds, and whether any pair differs."""

    between_networks: float
    over_folds: float
    over_seeds: float
    any_difference: bool

    @property
    def cannot_separate(self) -> bool:
        return not self.any_difference and self.between_networks < self.over_folds


@dataclass
class Consensus:
    architectures: List[str]
    dataset_ranks: Dict[str, Dict[str, float]]  # dataset -> architecture -> rank
    mean_rank: Dict[str, float]
    rank: Dict[str, float]  # consensus rank (1 = best)
    first_share: Dict[str, float] = field(default_factory=dict)  # share of resamples in which it ranks first
    rank_shares: Dict[str, Dict[int, float]] = field(default_factory=dict)  # consensus place -> share
    dataset_rank_shares: Dict[str, Dict[str, Dict[int, float]]] = field(default_factory=dict)  # the blob plot's


def ranks(means: Dict[str, float], lower_is_better: bool) -> Dict[str, float]:
    """Rank 1 for the best mean, ties sharing the average rank."""
    names = list(means)
    values = np.array([means[n] for n in names])
    return dict(zip(names, map(float, stats.rankdata(values if lower_is_better else -values, method="average"))))


def consensus_ranks(dataset_ranks: Dict[str, Dict[str, float]]) -> Tuple[Dict[str, float], Dict[str, float]]:
    """(mean rank over the datasets, the consensus rank of that mean)."""
    architectures = list(next(iter(dataset_ranks.values())))
    mean_rank = {a: float(np.mean([r[a] for r in dataset_ranks.values()])) for a in architectures}
    return mean_rank, ranks(mean_rank, lower_is_better=True)


def places(rank: Dict[str, float]) -> Dict[str, Dict[int, float]]:
    """Each network's share of the places 1, 2, ...: a network alone at rank r holds place r; k networks tied at an
    average rank share the k places they tie for equally (two tied at 1.5 hold 1/2 of places 1 and 2 each)."""
    held = {}
    for name, r in rank.items():
        tied = sum(other == r for other in rank.values())
        first = int(round(r - (tied - 1) / 2))
        held[name] = {place: 1 / tied for place in range(first, first + tied)}
    return held


def _count(counts: Dict[int, float], held: Dict[int, float]) -> None:
    for place, share in held.items():
        counts[place] = counts.get(place, 0.0) + share


def _shares(counts: Dict, total: int) -> Dict:
    return {k: v / total for k, v in sorted(counts.items())}


def consensus(endpoints: Sequence[Endpoint], architectures: Sequence[str], seed: int,
              resamples: int) -> Consensus:
    """The consensus ranking and its bootstrap uncertainty (cases resampled within every dataset)."""
    architectures = list(architectures)
    values = {e.name: e.complete[architectures].to_numpy(dtype=float) for e in endpoints}
    observed = {e.name: ranks(dict(zip(architectures, values[e.name].mean(0))), e.lower_is_better)
                for e in endpoints}
    mean_rank, rank = consensus_ranks(observed)
    result = Consensus(architectures, observed, mean_rank, rank)
    rng = np.random.default_rng(seed)
    first = {a: 0.0 for a in architectures}
    rank_counts = {a: {} for a in architectures}
    dataset_counts = {e.name: {a: {} for a in architectures} for e in endpoints}
    for _ in range(resamples):
        resampled = {}
        for e in endpoints:
            cases = values[e.name]
            means = cases[rng.integers(0, len(cases), len(cases))].mean(0)
            resampled[e.name] = ranks(dict(zip(architectures, means)), e.lower_is_better)
            for a, held in places(resampled[e.name]).items():
                _count(dataset_counts[e.name][a], held)
        _, again = consensus_ranks(resampled)
        for a, held in places(again).items():
            first[a] += held.get(1, 0.0)
            _count(rank_counts[a], held)
    result.first_share = {a: first[a] / resamples for a in architectures}
    result.rank_shares = {a: _shares(rank_counts[a], resamples) for a in architectures}
    result.dataset_rank_shares = {d: {a: _shares(c, resamples) for a, c in counts.items()}
                                  for d, counts in dataset_counts.items()}
    return result


def pairwise(endpoint: Endpoint, architectures: Sequence[str], seed: int, resamples: int,
             alpha: float = ALPHA) -> List[PairwiseResult]:
    """Every pair of architectures on the dataset's paired cases, Holm-corrected over all its pairs; a pair is
    called different only from ``MIN_PAIRED_CASES`` paired cases on."""
    results = []
    for first, second in itertools.combinations(architectures, 2):
        pairs = endpoint.matrix[[first, second]].dropna()
        differences = (pairs[first] - pairs[second]).to_numpy(dtype=float)
        paired = paired_intervals(differences, seed, resamples, endpoint.bounds)
        results.append(PairwiseResult(first, second, len(differences), paired.test.mean, paired.ci,
                                      paired.test.p_value, ci_method=paired.method))
    for result, adjusted in zip(results, holm([r.p_value for r in results])):
        result.p_holm = adjusted
        if adjusted < alpha and not result.too_few:
            first_better = (result.mean_difference < 0) == endpoint.lower_is_better
            result.better = result.first if first_better else result.second
    return results


def suitability(endpoint: Endpoint, pairs: Sequence[PairwiseResult]) -> Suitability:
    """The spread between the networks' means (sd) against the study's spreads over folds and seeds."""
    means = endpoint.complete.mean(axis=0)
    any_difference = any(not (r.ci[0] <= 0 <= r.ci[1]) for r in pairs if r.n_pairs)
    return Suitability(float(means.std(ddof=1)) if len(means) > 1 else math.nan, endpoint.sd_over_folds,
                       endpoint.sd_over_seeds, any_difference)


def challenger_rows(task: str, table: pd.DataFrame, metric: str, label: str, lower_is_better: bool) -> pd.DataFrame:
    """The long format challengeR reads (task, case, algorithm, value) for one endpoint of one dataset's case
    matrix, with the endpoint and whether smaller is better. ``as.challenge(by = "task")`` needs each (case,
    algorithm) once per task: the rows of one endpoint of every dataset go together (``task``: the dataset)."""
    long = table.reset_index().melt(id_vars="case", var_name="algorithm", value_name="value")
    return long.assign(task=task, metric=metric, label=label, smaller_is_better=lower_is_better)[
        ["task", "case", "algorithm", "value", "metric", "label", "smaller_is_better"]]
