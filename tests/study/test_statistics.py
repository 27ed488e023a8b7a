"""The study's statistics on hand-made per-case tables with known answers."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from nnunet_archs.study.statistics import analyse, bootstrap_ci, holm, rank_first_shares, wilcoxon_p


def table(columns: dict, metric: str = "Dice", label: str = "small", folds: int = 2) -> pd.DataFrame:
    """A tidy per-case table: one row per (architecture, case), cases spread over ``folds`` folds."""
    rows = []
    for architecture, values in columns.items():
        for i, value in enumerate(values):
            rows.append({"architecture": architecture, "fold": str(i % folds), "case": f"case{i:03d}", "label": label,
                         "metric": metric, "value": value})
    return pd.DataFrame(rows)


def test_identical_columns_give_no_difference_and_split_rank():
    values = np.random.default_rng(1).uniform(0.5, 0.9, 30)
    result = analyse(table({"A": values, "B": values}), ["A", "B"], "A", ["Dice"], seed=0, resamples=500)
    comparison = result.comparison("B", "Dice")
    assert comparison.mean_difference == 0 and comparison.ci == (0.0, 0.0)
    assert comparison.p_value == 1.0 and comparison.p_holm == 1.0
    assert result.rank_first[("Dice", "mean")] == {"A": 0.5, "B": 0.5}


def test_shifted_column_gives_the_shift_inside_its_ci_and_a_small_p():
    rng = np.random.default_rng(2)
    base = rng.uniform(0.5, 0.8, 40)
    shifted = base + 0.05 + rng.normal(0, 0.01, 40)
    result = analyse(table({"A": base, "B": shifted}), ["A", "B"], "A", ["Dice"], seed=0, resamples=1000)
    comparison = result.comparison("B", "Dice")
    assert comparison.ci[0] < 0.05 < comparison.ci[1]
    assert abs(comparison.mean_difference - 0.05) < 0.01
    assert comparison.p_value < 1e-6
    assert result.rank_first[("Dice", "mean")]["B"] == 1.0
    summary = result.summary("A", "Dice")
    assert summary.n_cases == 40 and summary.ci[0] < summary.mean < summary.ci[1]
    assert summary.mean == pytest.approx(base.mean()) and summary.sd == pytest.approx(base.std(ddof=1))
    assert set(summary.fold_means) == {"0", "1"}
    assert summary.sd_over_folds == pytest.approx(np.std([base[0::2].mean(), base[1::2].mean()], ddof=1))


def test_lower_is_better_for_hd95_and_nan_cases_are_left_out_and_counted():
    a = [3.0, 4.0, 5.0, 6.0, math.nan]
    b = [1.0, 2.0, 3.0, 4.0, 2.0]
    result = analyse(table({"A": a, "B": b}, metric="HD95"), ["A", "B"], "A", ["HD95"], seed=0, resamples=200)
    assert result.rank_first[("HD95", "mean")]["B"] == 1.0
    assert result.summary("A", "HD95").n_missing == 1
    assert result.comparison("B", "HD95").n_pairs == 4 and result.comparison("B", "HD95").mean_difference == -2.0


def test_wilcoxon_known_exact_value():
    # ten positive differences with distinct ranks: exact two-sided p = 2 / 2**10
    assert wilcoxon_p(np.arange(1.0, 11.0)) == pytest.approx(2 / 2 ** 10)
    assert wilcoxon_p(np.zeros(8)) == 1.0


def test_holm_adjustment_and_ordering():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.01]) == pytest.approx([0.5, 0.02])
    adjusted = holm([0.2, math.nan, 0.001])
    assert math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.002) and adjusted[0] == pytest.approx(0.2)


def test_seed_reproducibility():
    rng = np.random.default_rng(3)
    data = table({"A": rng.uniform(0, 1, 25), "B": rng.uniform(0, 1, 25), "C": rng.uniform(0, 1, 25)})
    first = analyse(data, ["A", "B", "C"], "A", ["Dice"], seed=7, resamples=300)
    again = analyse(data, ["A", "B", "C"], "A", ["Dice"], seed=7, resamples=300)
    other = analyse(data, ["A", "B", "C"], "A", ["Dice"], seed=8, resamples=300)
    assert first.comparisons == again.comparisons and first.rank_first == again.rank_first
    assert first.comparison("B", "Dice").ci != other.comparison("B", "Dice").ci
    assert bootstrap_ci(np.arange(10.0), 1, 200) == bootstrap_ci(np.arange(10.0), 1, 200)


def test_label_mean_averages_the_labels_of_each_case():
    rows = pd.concat([table({"A": [0.2, 0.4], "B": [0.2, 0.4]}, label="large"),
                      table({"A": [0.6, math.nan], "B": [0.8, 1.0]}, label="small")])
    result = analyse(rows, ["A", "B"], "A", ["Dice"], seed=0, resamples=200)
    assert result.summary("A", "Dice").mean == pytest.approx(np.mean([0.4, 0.4]))  # case 1: only "large" counts
    assert result.summary("B", "Dice").mean == pytest.approx(np.mean([0.5, 0.7]))
    assert result.summary("A", "Dice", "small").n_missing == 1


def test_rank_first_shares_ties_are_split():
    matrix = pd.DataFrame({"A": [1.0, 1.0], "B": [1.0, 1.0], "C": [0.0, 0.0]})
    assert rank_first_shares(matrix, True, 0, 100) == pytest.approx({"A": 0.5, "B": 0.5, "C": 0.0})


def test_missing_columns_and_unknown_baseline_are_clear_errors():
    data = table({"A": [0.5, 0.6]})
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['metric'\]"):
        analyse(data.drop(columns="metric"), ["A"], "A", ["Dice"], 0, 200)
    with pytest.raises(ValueError, match="baseline 'Z' is not among"):
        analyse(data, ["A"], "Z", ["Dice"], 0, 200)
