"""The study's statistics on hand-made per-case tables with known answers."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from nnunet_archs.analysis.intervals import mean_interval
from nnunet_archs.analysis.significance import SIGN_FLIPS, detectable_difference, holm, sign_flip_test, smallest_p
from nnunet_archs.analysis.statistics import analyse, rank_first_shares


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
    assert comparison.p_value == smallest_p(40) == 2 / (SIGN_FLIPS + 1)  # no Monte Carlo flip reaches the sum
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


def test_sign_flip_known_exact_values():
    # ten positive differences: only the observed signs and none flipped reach the observed sum, p = 2 / 2**10
    assert sign_flip_test(np.arange(1.0, 11.0), 0).p_value == 2 / 2 ** 10
    assert sign_flip_test(np.zeros(8), 0).p_value == 1.0 and sign_flip_test(np.zeros(8), 0).interval() == (0.0, 0.0)
    # all -1: the interval of the mean is the point -1, an honest answer
    assert sign_flip_test(-np.ones(10), 0).interval() == (-1.0, -1.0)


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
    assert first.comparison("B", "Dice").ci != other.comparison("B", "Dice").ci  # 25 pairs: Monte Carlo flips
    assert first.summaries == again.summaries
    assert mean_interval(np.arange(10.0), 1, 200) == mean_interval(np.arange(10.0), 1, 200)


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


def paired_table(a, b, metric="Dice", label="small", seeds=("0",), extra=None) -> pd.DataFrame:
    """Architectures A and B on the same cases; ``extra`` columns (failure, worst_case) per B row."""
    rows = []
    for seed in seeds:
        for name, values in (("A", a), ("B", b)):
            for i, value in enumerate(values):
                row = {"architecture": name, "seed": seed, "fold": str(i % 2), "case": f"case{i:03d}", "label": label,
                       "metric": metric, "value": value, "failure": "", "worst_case": math.nan}
                if name == "B" and extra:
                    row.update(extra[i])
                rows.append(row)
    return pd.DataFrame(rows)


def test_a_missed_structure_is_worse_on_hd95_than_a_found_one():
    """B misses the structure in every case (its HD95 is NaN, the worst case is the 90 mm diagonal); A finds it at
    3-5 mm. Left out (the old convention), the misses would make B look perfect: every B case would be NaN."""
    found = list(np.linspace(3.0, 5.0, 12))
    missed = [{"failure": "missed", "worst_case": 90.0}] * 12
    data = paired_table(found, [math.nan] * 12, metric="HD95", extra=missed)
    worst = analyse(data, ["A", "B"], "A", ["HD95"], seed=0, resamples=500, primary=("HD95", "mean"))
    assert worst.summary("B", "HD95").mean == 90.0 and worst.summary("B", "HD95").n_missed == 12
    comparison = worst.comparison("B", "HD95")
    assert comparison.mean_difference == pytest.approx(90.0 - np.mean(found)) and comparison.verdict == "worse"
    assert worst.rank_first[("HD95", "mean")] == {"A": 1.0, "B": 0.0}
    excluded = analyse(data, ["A", "B"], "A", ["HD95"], seed=0, resamples=500, failures="exclude")
    assert excluded.summary("B", "HD95").n_cases == 0 and excluded.summary("B", "HD95").n_missing == 12


def test_both_empty_stays_not_applicable_under_either_convention():
    data = paired_table([1.0, 2.0, math.nan], [1.5, 2.5, math.nan], metric="HD95")  # case 3: nothing to find
    result = analyse(data, ["A", "B"], "A", ["HD95"], seed=0, resamples=200)
    assert result.summary("A", "HD95").n_missing == 1 and result.comparison("B", "HD95").n_pairs == 2


@pytest.mark.parametrize("margin, verdict", [(0.02, "equivalent"), (0.0005, "inconclusive"), (None, "inconclusive")])
def test_equivalence_inside_and_outside_the_margin(margin, verdict):
    rng = np.random.default_rng(4)
    a = rng.uniform(0.6, 0.9, 30)
    b = a + rng.normal(0, 0.002, 30)  # no real difference, measured to about +-0.001
    result = analyse(paired_table(a, b), ["A", "B"], "A", ["Dice"], seed=0, resamples=1000,
                     margins={} if margin is None else {"Dice": margin})
    comparison = result.comparison("B", "Dice")
    assert comparison.verdict == verdict and comparison.p_holm >= 0.05
    assert comparison.ci90[0] > comparison.ci[0] and comparison.ci90[1] < comparison.ci[1]  # 90 % inside 95 %
    assert comparison.within_margin == (verdict == "equivalent")


def test_a_clear_difference_is_better_even_inside_a_wide_margin_and_few_cases_give_no_verdict():
    a = np.linspace(0.5, 0.8, 12)
    b = a + 0.01 + np.linspace(-0.001, 0.001, 12)
    result = analyse(paired_table(a, b), ["A", "B"], "A", ["Dice"], seed=0, resamples=500, margins={"Dice": 0.05})
    comparison = result.comparison("B", "Dice")
    assert comparison.verdict == "better" and comparison.within_margin  # better, by less than the margin
    few = analyse(paired_table(a[:9], b[:9]), ["A", "B"], "A", ["Dice"], seed=0, resamples=500)
    assert few.comparison("B", "Dice").verdict == "too few cases"


def test_only_the_primary_endpoint_gets_a_verdict():
    a = np.linspace(0.5, 0.8, 12)
    data = pd.concat([paired_table(a, a + 0.05, label="large"), paired_table(a, a + 0.05, label="small")])
    result = analyse(data, ["A", "B"], "A", ["Dice"], seed=0, resamples=200, primary=("Dice", "small"))
    assert result.comparison("B", "Dice", "small").verdict == "better"
    assert result.comparison("B", "Dice", "large").verdict == "" and result.comparison("B", "Dice").verdict == ""


def test_the_spread_over_training_seeds_and_the_seed_pair_share():
    """Seed 0 and seed 1 of A are 0.6 and 0.8 on every case, of B 0.7 and 0.7: per-case values average to 0.7
    both, the sd over A's seed means is sd([0.6, 0.8]), and B beats A in 2 of the 4 seed pairs."""
    rows = []
    for architecture, per_seed in (("A", {"0": 0.6, "1": 0.8}), ("B", {"0": 0.7, "1": 0.7})):
        for seed, value in per_seed.items():
            rows += [{"architecture": architecture, "seed": seed, "fold": str(i % 2), "case": f"c{i}", "label": "x",
                      "metric": "Dice", "value": value} for i in range(12)]
    result = analyse(pd.DataFrame(rows), ["A", "B"], "A", ["Dice"], seed=0, resamples=200)
    summary = result.summary("A", "Dice")
    assert summary.mean == pytest.approx(0.7) and summary.seed_means == pytest.approx({"0": 0.6, "1": 0.8})
    assert summary.sd_over_seeds == pytest.approx(np.std([0.6, 0.8], ddof=1))
    assert result.summary("B", "Dice").sd_over_seeds == 0
    assert result.comparison("B", "Dice").seed_win_share == pytest.approx(0.5)
    assert result.comparison("B", "Dice").mean_difference == pytest.approx(0.0)
    assert result.seeds == ["0", "1"]


@pytest.mark.parametrize("n, effect", [(10, 0.996), (20, 0.660), (40, 0.454)])
def test_detectable_difference_matches_the_paired_t_test_power_tables(n, effect):
    """Cohen's dz a two-sided paired t-test at alpha 0.05 detects with 80 % power (G*Power 3.1: 0.996, 0.660,
    0.454), times the sd of the differences."""
    assert detectable_difference(n, 0.1) == pytest.approx(effect * 0.1, abs=5e-4)
    assert detectable_difference(n, 0.0) == 0.0 and math.isnan(detectable_difference(1, 0.1))


def test_detectable_difference_at_holms_first_step_and_where_the_test_cannot_reject():
    """Two comparisons: the paired t-test at alpha / 2 detects the figure with 80 % power (simulated here: 20,000
    normal samples of 20 pairs); 5 pairs reach no p below 2 / 2**5 = 0.0625, so nothing is detectable; 6 pairs
    reach 0.031, below 0.05 but not below 0.025."""
    effect = detectable_difference(20, 1.0, family=2)
    assert effect > detectable_difference(20, 1.0)
    samples = np.random.default_rng(0).normal(effect, 1.0, (20000, 20))
    t = samples.mean(1) / (samples.std(1, ddof=1) / math.sqrt(20))
    assert np.mean(np.abs(t) > stats.t.ppf(1 - 0.025 / 2, 19)) == pytest.approx(0.8, abs=0.01)
    assert detectable_difference(5, 0.1) == math.inf and math.isfinite(detectable_difference(6, 0.1))
    assert detectable_difference(6, 0.1, family=2) == math.inf


def test_studentized_interval_agrees_with_the_t_interval_on_large_normal_samples():
    values = np.random.default_rng(5).normal(0.7, 0.1, 400)
    low, high, method = mean_interval(values, 0, 4000)
    t = stats.ttest_1samp(values, 0).confidence_interval(0.95)
    assert low == pytest.approx(t.low, abs=0.002) and high == pytest.approx(t.high, abs=0.002)
    assert method == "studentized bootstrap"


def test_coarse_coverage_of_the_reported_interval():
    """The 95 % interval of a mean of 10 skewed per-case values (Beta(8, 2), true mean 0.8) covers it in about 95 %
    of 300 simulated datasets (benchmarks/coverage.py measures 2,000 per sample size and kind of data)."""
    rng = np.random.default_rng(6)
    covered = [lo <= 0.8 <= hi for lo, hi, _ in (mean_interval(rng.beta(8, 2, 10), i, 500) for i in range(300))]
    assert 0.92 <= np.mean(covered) <= 0.99
