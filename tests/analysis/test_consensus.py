"""The consensus of several datasets on constructed case matrices with known rankings, the significance map, the
suitability warning and the challengeR export."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nnunet_archs.analysis.consensus import (Endpoint, challenger_rows, consensus, pairwise, places, ranks,
                                             suitability)

NETWORKS = ["A", "B", "C"]


def endpoint(name: str, means, n: int = 30, noise: float = 0.01, seed: int = 0, lower_is_better: bool = False,
             folds: float = 0.005) -> Endpoint:
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.5, 0.7, n)  # case difficulty, shared by the networks (paired)
    matrix = pd.DataFrame({a: base + m + rng.normal(0, noise, n) for a, m in zip(NETWORKS, means)},
                          index=pd.Index([f"{name}_{i}" for i in range(n)], name="case"))
    return Endpoint(name, matrix, lower_is_better, sd_over_folds=folds)


def test_ranks_share_ties_and_follow_the_direction():
    assert ranks({"A": 0.9, "B": 0.8, "C": 0.8}, lower_is_better=False) == {"A": 1.0, "B": 2.5, "C": 2.5}
    assert ranks({"A": 3.0, "B": 1.0, "C": 2.0}, lower_is_better=True) == {"A": 3.0, "B": 1.0, "C": 2.0}


def test_a_network_best_on_every_dataset_is_first_in_every_resample():
    datasets = [endpoint("D1", [0.1, 0.0, -0.1]), endpoint("D2", [0.2, 0.05, 0.0], seed=1),
                endpoint("D3", [-2.0, 0.0, 1.0], seed=2, lower_is_better=True)]  # HD95-like: A lowest is best
    result = consensus(datasets, NETWORKS, seed=0, resamples=300)
    assert result.rank == {"A": 1.0, "B": 2.0, "C": 3.0} and result.mean_rank["A"] == 1.0
    assert result.first_share == {"A": 1.0, "B": 0.0, "C": 0.0}
    assert result.rank_shares["A"] == {1: 1.0} and result.dataset_rank_shares["D2"]["C"] == {3: 1.0}


def test_two_networks_tied_on_one_dataset_and_apart_on_another():
    tied = endpoint("D1", [0.0, 0.0, -0.3], noise=0.0)  # A and B identical on every case
    apart = endpoint("D2", [0.2, 0.0, -0.3], seed=1)
    result = consensus([tied, apart], NETWORKS, seed=0, resamples=200)
    assert result.dataset_ranks["D1"]["A"] == result.dataset_ranks["D1"]["B"] == 1.5
    assert result.mean_rank == pytest.approx({"A": 1.25, "B": 1.75, "C": 3.0}) and result.rank["A"] == 1.0
    comparisons = {(p.first, p.second): p for p in pairwise(tied, NETWORKS, seed=0, resamples=200)}
    assert comparisons[("A", "B")].better == "" and comparisons[("A", "B")].p_value == 1.0
    assert comparisons[("A", "C")].better == "A" and comparisons[("B", "C")].better == "B"


def test_tied_networks_share_the_places_they_tie_for():
    """Two networks tied at rank 1.5 hold half a first and half a second place each: every place's column of the
    rank distribution sums to 100 % (rounding 1.5 down counted both first: 200 %)."""
    assert places({"A": 1.5, "B": 1.5, "C": 3.0}) == {"A": {1: 0.5, 2: 0.5}, "B": {1: 0.5, 2: 0.5}, "C": {3: 1.0}}
    assert places({"A": 2.0, "B": 2.0, "C": 2.0})["B"] == pytest.approx({1: 1 / 3, 2: 1 / 3, 3: 1 / 3})
    tied = endpoint("D1", [0.0, 0.0, -0.3], noise=0.0)
    result = consensus([tied], NETWORKS, seed=0, resamples=100)
    for place in (1, 2, 3):
        assert sum(result.rank_shares[a].get(place, 0.0) for a in NETWORKS) == pytest.approx(1.0)
    assert result.rank_shares["A"] == {1: 0.5, 2: 0.5} and result.first_share["A"] == 0.5


def test_no_pair_is_called_different_from_fewer_than_ten_cases():
    """Six cases, one network ahead in every one: p = 2 / 2**6 = 0.031 < 0.05, and still no call, as one study
    gives no verdict from fewer than 10 paired cases."""
    pairs = pairwise(endpoint("D", [0.3, 0.0, 0.0], n=6), NETWORKS, seed=0, resamples=200)
    first = pairs[0]
    assert first.p_value == 2 / 2 ** 6 and first.too_few and first.better == ""
    assert first.ci[0] > 0 and first.ci_method.startswith("sign-flip test inverted")


def test_holm_runs_over_every_pair_of_a_dataset():
    pairs = pairwise(endpoint("D", [0.05, 0.0, 0.0], n=12), NETWORKS, seed=0, resamples=200)
    assert [(p.first, p.second) for p in pairs] == [("A", "B"), ("A", "C"), ("B", "C")]
    smallest = min(p.p_value for p in pairs)
    assert min(p.p_holm for p in pairs) == pytest.approx(min(1.0, 3 * smallest))


def test_a_dataset_that_cannot_separate_the_networks_is_flagged():
    base = np.linspace(0.5, 0.7, 10)
    wobble = np.resize([0.03, -0.03], 10)  # the networks differ case by case, by nothing on average
    flat = Endpoint("flat", pd.DataFrame({"A": base, "B": base + wobble, "C": base - wobble}), False,
                    sd_over_folds=0.02)
    verdict = suitability(flat, pairwise(flat, NETWORKS, seed=0, resamples=300))
    assert not verdict.any_difference and verdict.between_networks < verdict.over_folds
    assert verdict.cannot_separate
    clear = endpoint("clear", [0.3, 0.0, -0.3], noise=0.01)
    assert not suitability(clear, pairwise(clear, NETWORKS, seed=0, resamples=300)).cannot_separate


def test_the_challenger_export_reads_back(tmp_path):
    data = endpoint("D1", [0.1, 0.0, -0.1], n=5)
    rows = challenger_rows("D1", data.matrix, "HD95", "mean", lower_is_better=True)
    rows.to_csv(tmp_path / "challenger.csv", index=False)
    back = pd.read_csv(tmp_path / "challenger.csv")
    assert list(back.columns) == ["task", "case", "algorithm", "value", "metric", "label", "smaller_is_better"]
    assert len(back) == 5 * 3 and set(back["algorithm"]) == set(NETWORKS) and back["smaller_is_better"].all()
    pivot = back.pivot(index="case", columns="algorithm", values="value")
    assert np.allclose(pivot.loc[data.matrix.index, NETWORKS].to_numpy(), data.matrix.to_numpy())
