"""The combined report of several studies: ``combined.md``, ``combined.csv``, ``results.tex`` with a column per
dataset, ``challenger_<metric>_<label>.csv`` for R users of challengeR (one file per endpoint, one task per
dataset in it: ``as.challenge(by = "task")`` needs each case and algorithm once per task, and one direction per
file), and the figures (the blob plot of the rank distributions and the significance maps), from a
``CombinedResults``. The same rules as one study's report: no pair called different from fewer than
``MIN_PAIRED_CASES`` paired cases, † on rough intervals (``intervals.rough``)."""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import List

import pandas as pd

from nnunet_archs.analysis.intervals import ROUGH_BELOW, ROUGH_WITH_FAILURES_BELOW, rough
from nnunet_archs.analysis.significance import MIN_PAIRED_CASES
from nnunet_archs.reporting.plots import plot_rank_blobs, plot_significance
from nnunet_archs.reporting.results import CombinedResults
from nnunet_archs.reporting.text import latex_escape, latex_table, markdown_table


def _fmt(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3f}"


def _dagger(is_rough: bool) -> str:
    return "†" if is_rough else ""


def _failures(summary) -> bool:
    return summary.n_missed + summary.n_spurious > 0


def _pair_row(pair, study) -> List[str]:
    """A pair's row: its mean difference and interval († as one study marks it), the corrected p and the call."""
    marked = _dagger(rough(pair.n_pairs, any(_failures(study.summaries[a]) for a in (pair.first, pair.second))))
    return [f"{pair.first} vs {pair.second}", str(pair.n_pairs),
            f"{pair.mean_difference:+.3f} ({pair.ci[0]:+.3f}, {pair.ci[1]:+.3f}){marked}",
            "< 0.001" if pair.p_holm < 0.001 else f"{pair.p_holm:.3f}", _better(pair)]


def _better(pair) -> str:
    if pair.too_few:
        return f"too few paired cases (a difference needs {MIN_PAIRED_CASES})"
    return pair.better or "no evidence of a difference"


def markdown(results: CombinedResults) -> str:
    """``combined.md``."""
    c, studies, architectures = results.consensus, results.studies, results.architectures
    lines = [f"Combined report of {len(studies)} studies of {', '.join(architectures)} on "
             f"{', '.join(s.name for s in studies)}.", ""]
    lines += (["The studies differ in (so read a comparison across datasets with that in mind):", "",
               *[f"- {line}" for line in results.differences]] if results.differences else
              ["The studies were run with the same settings."])
    lines += ["", "### Per dataset: each study's primary endpoint, mean (95 % CI) and rank", ""]
    header = ["architecture"] + [f"{s.name}: {s.primary}" for s in studies] + \
        ["mean rank", "consensus rank", "ranked first in"]
    rows = []
    for a in sorted(architectures, key=lambda a: c.rank[a]):
        cells = [f"{s.summaries[a].mean:.3f} ({s.summaries[a].ci[0]:.3f}, {s.summaries[a].ci[1]:.3f})"
                 f"{_dagger(s.summaries[a].rough)} #{c.dataset_ranks[s.name][a]:g}" for s in studies]
        rows.append([a, *cells, f"{c.mean_rank[a]:.2f}", f"{c.rank[a]:g}", f"{100 * c.first_share[a]:.0f} %"])
    lines += markdown_table(header, rows)
    lines += ["", f"Ranking rules (as challengeR's consensus): within a dataset mean-then-rank (the networks "
              f"ranked by their mean over the cases every network has, ties sharing the average rank); across "
              f"datasets the mean rank. Uncertainty: {results.resamples} bootstrap resamples of the cases within "
              f"every dataset (bootstrap seed {results.seed}); 'ranked first in' is the share of resamples in which "
              f"a network has the best consensus rank, networks tied at an average rank sharing the places they tie "
              f"for (two tied for first: half a first and half a second place each).", "",
              "### Distribution of the consensus rank", ""]
    ranks = range(1, len(architectures) + 1)
    lines += markdown_table(["architecture"] + [f"rank {k}" for k in ranks],
                            [[a] + [f"{100 * c.rank_shares[a].get(k, 0):.0f} %" for k in ranks]
                             for a in architectures])
    lines += ["", "### All pairwise comparisons per dataset", "",
              "As in one study: the mean difference on each dataset's paired cases, the two-sided sign-flip test of "
              "it and its 95 % interval inverting that test, Holm-corrected over all pairs of that dataset (other "
              f"p-values than a single study's, which compares each network with its baseline only); no pair called "
              f"different from fewer than {MIN_PAIRED_CASES} paired cases."]
    for study in studies:
        lines += ["", f"{study.name} ({study.primary}):", ""]
        lines += markdown_table(["pair", "paired cases", "Δ first - second (95 % CI)", "p (Holm)", "better"],
                                [_pair_row(p, study) for p in results.pairs[study.name]])
    lines += ["", "### Can each dataset separate the networks?", ""]
    lines += markdown_table(["dataset", "cases", "sd between the networks' means", "sd over folds",
                             "sd over training seeds", "a pair differs (95 % CI without 0)"],
                            [[s.name, str(len(s.endpoint.complete)),
                              *(_fmt(v) for v in (fit.between_networks, fit.over_folds, fit.over_seeds)),
                              "yes" if fit.any_difference else "no"]
                             for s in studies for fit in [results.suitability[s.name]]])
    warnings = [f"Warning: {s.name} cannot separate the networks at its {len(s.endpoint.complete)} cases: every "
                f"pairwise interval contains 0 and the spread between the networks ({fit.between_networks:.3f}) is "
                f"smaller than the spread over folds ({fit.over_folds:.3f}); its ranks are noise, consider leaving it "
                f"out of the consensus."
                for s in studies for fit in [results.suitability[s.name]] if fit.cannot_separate]
    lines += ["", *warnings] if warnings else []
    if any(s.summaries[a].rough for s in studies for a in architectures):
        lines += ["", f"† fewer than {ROUGH_BELOW} cases, or fewer than {ROUGH_WITH_FAILURES_BELOW} where structures "
                      f"were missed or invented: read the interval as rough, as in one study (BENCHMARKS.md, "
                      f"coverage of the intervals)."]
    return "\n".join(lines) + "\n"


def csv_rows(results: CombinedResults) -> List[dict]:
    """``combined.csv``: one row per dataset and architecture."""
    c = results.consensus
    return [{"dataset": s.name, "folder": str(s.folder), "endpoint": s.primary, "architecture": a,
             "n_cases": s.summaries[a].n_cases, "mean": s.summaries[a].mean, "sd": s.summaries[a].sd,
             "ci_low": s.summaries[a].ci[0], "ci_high": s.summaries[a].ci[1], "rank": c.dataset_ranks[s.name][a],
             "mean_rank": c.mean_rank[a], "consensus_rank": c.rank[a], "first_share": c.first_share[a]}
            for s in results.studies for a in results.architectures]


def latex(results: CombinedResults) -> str:
    """``results.tex``: mean ± sd per dataset and the consensus rank."""
    studies, rank = results.studies, results.consensus.rank
    caption = (f"{latex_escape(', '.join(results.architectures))} on {len(studies)} datasets: mean $\\pm$ sd of each "
               f"study's primary endpoint, and the consensus rank")
    header = ["architecture", *[latex_escape(f"{s.name} ({s.primary})") for s in studies], "consensus rank"]
    rows = [[latex_escape(x) for x in [a, *[f"{s.summaries[a].mean:.3f} ± {s.summaries[a].sd:.3f}" for s in studies],
                                       f"{rank[a]:g}"]]
            for a in sorted(results.architectures, key=lambda a: rank[a])]
    return latex_table("% nnunet-archs report (combined): include with \\usepackage{booktabs}", caption, header, rows)


def challenger_name(metric: str, label: str) -> str:
    """The challengeR file of one endpoint: ``challenger_<metric>_<label>.csv``."""
    return f"challenger_{metric}_{re.sub(r'[^A-Za-z0-9]+', '-', label)}.csv"


def write_combined(results: CombinedResults, output: Path) -> Path:
    """Every file of the combined report into the new folder ``output``; returns its ``combined.md``."""
    output.mkdir(parents=True)
    (output / "combined.md").write_text(markdown(results))
    pd.DataFrame(csv_rows(results)).to_csv(output / "combined.csv", index=False)
    (output / "results.tex").write_text(latex(results))
    challenger = pd.concat([s.challenger for s in results.studies], ignore_index=True)
    for (metric, label), rows in challenger.groupby(["metric", "label"], sort=False):
        rows.to_csv(output / challenger_name(metric, label), index=False)
    plot_rank_blobs(results.consensus, [s.name for s in results.studies], output / "ranks_blob.png")
    plot_significance(results.pairs, results.architectures, output / "significance.png")
    return output / "combined.md"
