"""The figures of a study and of several, drawn from what the statistics computed: per-case values of every
architecture, the primary endpoint against training memory and time (Pareto plots), detection by object size, and
the combined report's rank blobs and significance maps."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np
import pandas as pd

from nnunet_archs.analysis.statistics import Summary
from nnunet_archs.evaluation.metrics import metric as metric_record


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_cases(matrix: pd.DataFrame, metric: str, title: str, path: Path) -> None:
    """Per-case values (cases x architectures) as boxes and points, each case joined across architectures."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(1.8 + 1.6 * len(matrix.columns), 4))
    positions = np.arange(len(matrix.columns))
    for _, values in matrix.iterrows():
        axis.plot(positions, values.to_numpy(dtype=float), color="0.8", lw=0.6, zorder=1)
    data = [matrix[c].dropna().to_numpy() for c in matrix.columns]
    axis.boxplot(data, positions=positions, widths=0.5, showfliers=False, zorder=2)
    rng = np.random.default_rng(0)  # jitter only
    for i, values in enumerate(data):
        axis.scatter(i + rng.uniform(-0.08, 0.08, len(values)), values, s=10, zorder=3)
    axis.set_xticks(positions, matrix.columns, rotation=15)
    axis.set_ylabel(f"{metric}{metric_record(metric).unit} per case")
    axis.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_pareto(summaries: Dict[str, Optional[Summary]], costs: Dict[str, Optional[float]], metric: str,
                endpoint: str, cost_label: str, path: Path, order: Sequence[str]) -> None:
    """Each architecture's mean (95 % CI) against a cost, with the front of those no cheaper one beats."""
    plt = _pyplot()
    points = [(a, costs.get(a), summaries.get(a)) for a in order]
    points = [(a, x, s) for a, x, s in points if x is not None and s is not None and not math.isnan(s.mean)]
    figure, axis = plt.subplots(figsize=(6, 4))
    for architecture, x, s in points:
        low, high = (s.mean - s.ci[0], s.ci[1] - s.mean) if all(map(math.isfinite, s.ci)) else (0, 0)
        axis.errorbar(x, s.mean, yerr=[[low], [high]], fmt="o", capsize=3)
        axis.annotate(architecture, (x, s.mean), textcoords="offset points", xytext=(5, 5))
    higher_is_better = metric_record(metric).higher_is_better
    front, best = [], -math.inf if higher_is_better else math.inf
    for architecture, x, s in sorted(points, key=lambda p: p[1]):
        if (s.mean > best) if higher_is_better else (s.mean < best):
            best = s.mean
            front.append((x, s.mean))
    if front:
        axis.step(*zip(*front), where="post", color="0.6", lw=1, label="Pareto front")
        axis.legend(loc="lower right")
    axis.set_xlabel(cost_label)
    axis.set_ylabel(f"mean {endpoint} (95 % CI)")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_sizes(recalls: Sequence, architectures: Sequence[str], label: str, path: Path) -> None:
    """Detection recall against object size (``analysis.sizes.SizeBinRecall`` of one label), one line per network
    with its 95 % interval."""
    plt = _pyplot()
    bins = list(dict.fromkeys(r.size_bin for r in recalls))
    figure, axis = plt.subplots(figsize=(1.5 + 0.9 * len(bins), 4))
    for offset, architecture in enumerate(architectures):
        points = [(bins.index(r.size_bin), r) for r in recalls if r.architecture == architecture]
        if not points:
            continue
        x = np.array([i for i, _ in points]) + 0.06 * (offset - (len(architectures) - 1) / 2)
        recall = np.array([r.recall for _, r in points])
        low = np.array([r.recall - r.ci[0] if math.isfinite(r.ci[0]) else 0 for _, r in points])
        high = np.array([r.ci[1] - r.recall if math.isfinite(r.ci[1]) else 0 for _, r in points])
        axis.errorbar(x, recall, yerr=[low, high], fmt="o-", capsize=3, label=architecture)
    axis.set_xticks(range(len(bins)), bins, rotation=20)
    axis.set_ylim(-0.05, 1.05)
    axis.set_xlabel("reference object size (mm³; mm² in 2D)")
    axis.set_ylabel("share of reference objects found")
    axis.set_title(f"Detection by object size: label {label}")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_rank_blobs(consensus, datasets: Sequence[str], path: Path) -> None:
    """challengeR's blob plot: per dataset (and for the consensus) how often each network took each rank over
    the bootstrap resamples, a disc's area proportional to the share; the observed rank marked with a cross."""
    plt = _pyplot()
    architectures = consensus.architectures
    panels = [(name, consensus.dataset_rank_shares[name], consensus.dataset_ranks[name]) for name in datasets]
    panels.append(("consensus", consensus.rank_shares, consensus.rank))
    figure, axes = plt.subplots(1, len(panels), figsize=(1.2 + 2.2 * len(panels), 3.8), sharey=True, squeeze=False)
    for axis, (title, shares, observed) in zip(axes[0], panels):
        for x, architecture in enumerate(architectures):
            for rank, share in shares[architecture].items():
                axis.scatter(x, rank, s=600 * share, alpha=0.6, color=f"C{x}")
            axis.scatter(x, observed[architecture], marker="x", color="black", s=25)
        axis.set_xticks(range(len(architectures)), architectures, rotation=45, ha="right")
        axis.set_yticks(range(1, len(architectures) + 1))
        axis.set_title(title, fontsize=8)
        axis.set_ylim(len(architectures) + 0.6, 0.4)
    axes[0][0].set_ylabel("rank (1 = best)")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_significance(pairs: Dict[str, list], architectures: Sequence[str], path: Path) -> None:
    """Per dataset, which network the Holm-corrected paired test finds better: row better than column in dark,
    worse in light, no evidence of a difference blank."""
    plt = _pyplot()
    n = len(architectures)
    figure, axes = plt.subplots(1, len(pairs), figsize=(1.5 + 2.6 * len(pairs), 3.2), squeeze=False)
    for axis, (name, results) in zip(axes[0], pairs.items()):
        grid = np.full((n, n), 0.5)
        for result in results:
            i, j = architectures.index(result.first), architectures.index(result.second)
            if result.better:
                better, worse = (i, j) if result.better == result.first else (j, i)
                grid[better, worse], grid[worse, better] = 1.0, 0.0
        axis.imshow(grid, cmap="RdYlGn", vmin=0, vmax=1)
        axis.set_xticks(range(n), architectures, rotation=45, ha="right", fontsize=8)
        axis.set_yticks(range(n), architectures, fontsize=8)
        axis.set_title(name, fontsize=9)
    figure.suptitle("row better (green) or worse (red) than column; yellow: no evidence", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
