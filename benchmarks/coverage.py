"""How often the 95 % intervals a study reports contain the true mean, on small samples of skewed per-case values.

For each number of cases (5, 10, 20, 40) and each scenario, simulate datasets whose true mean is known, compute
the interval ``compare`` reports (``statistics.bootstrap_ci``: studentized bootstrap) and, beside it, scipy's BCa
bootstrap (what the study reported before) and the t-interval, and count how often each covers the truth. The
scenarios: per-case Dice ~ Beta(8, 2) (mean 0.8, skewed towards failures), paired differences of two networks
whose per-case Dice differ by 0.5 x (Beta(2, 8) - 0.2) (mean 0, skewed), and per-case Dice with 15 % of cases
missed (Dice ~ Beta(1, 20)): the hard case, where a small sample often holds no miss at all.

Usage: python benchmarks/coverage.py [--simulations 2000] [--resamples 2000]   (under a minute on 2 cores)
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import stats

from nnunet_archs.analysis.intervals import bootstrap_ci

SIZES = (5, 10, 20, 40)


def dice(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.beta(8, 2, n)


def paired_differences(rng: np.random.Generator, n: int) -> np.ndarray:
    a = rng.beta(8, 2, n)
    return (a + 0.5 * (rng.beta(2, 8, n) - 0.2)) - a


def dice_with_misses(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.where(rng.random(n) < 0.15, rng.beta(1, 20, n), rng.beta(8, 2, n))


SCENARIOS = {"Dice ~ Beta(8, 2)": (dice, 0.8), "paired difference, skewed": (paired_differences, 0.0),
             "Dice with 15 % misses": (dice_with_misses, 0.85 * 0.8 + 0.15 / 21)}


def intervals(values: np.ndarray, seed: int, resamples: int) -> dict:
    bca = stats.bootstrap((values,), np.mean, n_resamples=resamples, method="BCa",
                          random_state=np.random.default_rng(seed)).confidence_interval
    t = stats.ttest_1samp(values, 0).confidence_interval(0.95)
    return {"reported (studentized bootstrap)": bootstrap_ci(values, seed, resamples), "BCa": (bca.low, bca.high),
            "t-interval": (t.low, t.high)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulations", type=int, default=2000)
    parser.add_argument("--resamples", type=int, default=2000)
    args = parser.parse_args()
    start = time.perf_counter()
    rng = np.random.default_rng(2026)
    print(f"Coverage of 95 % intervals of the mean: {args.simulations} simulated datasets per row, {args.resamples} "
          f"bootstrap resamples per interval; coverage (mean width)\n")
    methods = ["reported (studentized bootstrap)", "BCa", "t-interval"]
    print("| scenario | cases | " + " | ".join(methods) + " |")
    print("|---|---:|" + "---:|" * len(methods))
    for name, (draw, truth) in SCENARIOS.items():
        for n in SIZES:
            hits, widths = {m: 0 for m in methods}, {m: 0.0 for m in methods}
            for simulation in range(args.simulations):
                values = draw(rng, n)
                while np.ptp(values) == 0:  # every interval of a constant sample is that constant
                    values = draw(rng, n)
                for method, (low, high) in intervals(values, simulation, args.resamples).items():
                    hits[method] += low <= truth <= high
                    widths[method] += high - low
            print(f"| {name} | {n} | " + " | ".join(
                f"{hits[m] / args.simulations:.3f} ({widths[m] / args.simulations:.3f})" for m in methods) + " |",
                flush=True)
    print(f"\n{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
