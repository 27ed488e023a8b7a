"""How often the 95 % intervals a study reports contain the true value, on the kinds of per-case data studies have.

For each kind of per-case data and each number of cases (5, 10, 20, 40), simulate datasets of two networks on the
same cases whose true means are known, compute the two intervals the report prints, and count how often each holds
the truth:

- the interval of a network's mean (``intervals.mean_interval``: studentized bootstrap, BCa where its pivot
  degenerates, inside the metric's range), with how often BCa took over (and how often the sample was constant);
- the interval of the paired mean difference (``significance.paired_intervals``: the sign-flip test inverted, the
  verdict's own interval; a BCa interval at 5 cases, where that test can reject nothing).

Kinds of per-case data (two networks A and B; B's values paired with A's through the case):

- skewed continuous: Dice ~ Beta(8, 2); B = A + 0.5 (Beta(2, 8) - 0.2);
- heavy-tailed: HD95-like distances, A ~ lognormal(1, 1) mm, B = A x lognormal(-0.1, 0.5);
- worst-case failures: HD95 of a structure found at lognormal(log 5, 0.5) mm (B 0.5 mm closer), missed by A in
  10 % and by B in 15 % of cases, a miss scored at the 90 mm image diagonal;
- tied (recall): each case has 1 + Poisson(2) objects, found with a per-case probability (logit-normal around
  90 % for A, 92 % for B): recall = found / objects, most cases at 1.0;
- discrete (counts): false-positive objects per case, Poisson(0.3 u) for A and Poisson(0.4 u) for B with a
  per-case frailty u ~ Gamma(2, 1/2): mostly 0.

The true means come from 4 million draws of each kind (their Monte Carlo error, < 0.001 of the value's sd, is far
below any interval's width).

Usage: python benchmarks/coverage.py [--simulations 1000] [--resamples 2000]   (about 15 min on one core)
"""
from __future__ import annotations

import argparse
import math
import time
from collections import Counter

import numpy as np

from nnunet_archs.analysis.intervals import BCA, CONSTANT, mean_interval
from nnunet_archs.analysis.significance import paired_intervals

SIZES = (5, 10, 20, 40)
DIAGONAL = 90.0


def dice(rng: np.random.Generator, n: int):
    a = rng.beta(8, 2, n)
    return a, np.clip(a + 0.5 * (rng.beta(2, 8, n) - 0.2), 0, 1), (0.0, 1.0)


def distances(rng: np.random.Generator, n: int):
    a = rng.lognormal(1.0, 1.0, n)
    return a, a * rng.lognormal(-0.1, 0.5, n), (0.0, math.inf)


def failures(rng: np.random.Generator, n: int):
    hit = rng.lognormal(math.log(5.0), 0.5, n)
    a = np.where(rng.random(n) < 0.10, DIAGONAL, hit)
    b = np.where(rng.random(n) < 0.15, DIAGONAL, np.maximum(hit - 0.5, 0.0))
    return a, b, (0.0, DIAGONAL)


def recall(rng: np.random.Generator, n: int):
    objects = 1 + rng.poisson(2.0, n)
    case = rng.normal(0.0, 1.5, n)
    found = [rng.binomial(objects, 1 / (1 + np.exp(-(base + case)))) / objects for base in (2.2, 2.45)]
    return found[0], found[1], (0.0, 1.0)


def counts(rng: np.random.Generator, n: int):
    frailty = rng.gamma(2.0, 0.5, n)
    return rng.poisson(0.3 * frailty).astype(float), rng.poisson(0.4 * frailty).astype(float), (0.0, math.inf)


KINDS = {"skewed continuous (Dice ~ Beta(8, 2))": dice, "heavy-tailed (lognormal distances)": distances,
         "worst-case failures (HD95, 10-15 % missed)": failures, "tied (recall, most cases at 1.0)": recall,
         "discrete (false-positive counts, mostly 0)": counts}


def truths(draw) -> tuple:
    a, b, _ = draw(np.random.default_rng(0), 4_000_000)
    return float(a.mean()), float((b - a).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulations", type=int, default=1000)
    parser.add_argument("--resamples", type=int, default=2000)
    args = parser.parse_args()
    start = time.perf_counter()
    rng = np.random.default_rng(2026)
    print(f"Coverage of the report's 95 % intervals: {args.simulations} simulated datasets per row, "
          f"{args.resamples} bootstrap resamples per interval of a mean; coverage (mean width)\n")
    print("| kind of per-case data | cases | mean of a network | its method: BCa / constant | paired difference | "
          "its method |")
    print("|---|---:|---:|---:|---:|---|")
    for name, draw in KINDS.items():
        truth_mean, truth_difference = truths(draw)
        for n in SIZES:
            hits, widths, methods, difference_methods = [0, 0], [0.0, 0.0], Counter(), Counter()
            for simulation in range(args.simulations):
                a, b, bounds = draw(rng, n)
                mean = mean_interval(a, simulation, args.resamples, bounds=bounds)
                difference = paired_intervals(b - a, simulation, args.resamples, bounds)
                for i, ((low, high), truth) in enumerate(((mean.ends, truth_mean), (difference.ci, truth_difference))):
                    hits[i] += low <= truth <= high
                    widths[i] += high - low
                methods[mean.method] += 1
                difference_methods[difference.method.split(" (")[0]] += 1
            cells = [f"{hits[i] / args.simulations:.3f} ({widths[i] / args.simulations:.3g})" for i in range(2)]
            shares = f"{methods[BCA] / args.simulations:.0%} / {methods[CONSTANT] / args.simulations:.0%}"
            print(f"| {name} | {n} | {cells[0]} | {shares} | {cells[1]} | "
                  f"{', '.join(sorted(difference_methods))} |", flush=True)
    print(f"\n{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
