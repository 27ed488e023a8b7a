"""Detection recall by object size: per label and size bin (``evaluation.objects.SIZE_EDGES_MM3``), each
architecture's share of the reference objects it found, with an exact binomial interval that accounts for the
objects being clustered in cases.

The interval is Korn and Graubard's (Survey Methodology 1998): Clopper-Pearson at the effective number of objects,
n / design effect, where the design effect is the variance of the share over cases (the ratio estimator's,
objects clustered in cases) divided by the binomial variance of the same share; it is taken as 1 when none or all
of the objects are found (the variance is then 0 either way), when fewer than two cases hold objects, and when the
clustering would make the objects look more informative than independent ones (a design effect below 1). So
0 found of 147 objects in unclustered data gives (0, 0.025) and 0 of 2 gives (0, 0.84): never a point.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence, Tuple

import numpy as np
import pandas as pd
from scipy import stats

from nnunet_archs.analysis.significance import ALPHA
from nnunet_archs.evaluation.objects import SIZE_EDGES_MM3, size_bin

KORN_GRAUBARD = "Korn-Graubard (Clopper-Pearson at objects / design effect)"


@dataclass
class SizeBinRecall:
    """Detection recall of one architecture and label over the reference objects of one size bin (all training
    seeds pooled), with its 95 % Korn-Graubard interval."""

    architecture: str
    label: str
    size_bin: str
    n_objects: int
    n_cases: int
    recall: float
    ci: Tuple[float, float]
    design_effect: float = 1.0


def design_effect(found: np.ndarray, objects: np.ndarray) -> float:
    """The variance of the share found over cases (``found`` of ``objects`` per case; the ratio estimator's with
    the cases as clusters) over the binomial variance of the share; 1 where it is undefined or below 1."""
    total, share = objects.sum(), found.sum() / objects.sum()
    clusters = len(objects)
    if clusters < 2 or share in (0.0, 1.0):
        return 1.0
    clustered = clusters / (clusters - 1) * np.sum((found - share * objects) ** 2) / total ** 2
    return float(max(1.0, clustered / (share * (1 - share) / total)))


def korn_graubard(found: float, objects: float, effect: float, level: float = ALPHA) -> Tuple[float, float]:
    """Clopper-Pearson's exact interval at ``level`` for ``found`` of ``objects`` at the effective sample size
    objects / ``effect`` (the beta quantiles of ``scipy.stats.binomtest(...).proportion_ci()``, which needs
    integers: effective counts are not)."""
    n = objects / effect
    k = found / effect
    low = stats.beta.ppf(level / 2, k, n - k + 1) if k > 0 else 0.0
    high = stats.beta.ppf(1 - level / 2, k + 1, n - k) if k < n else 1.0
    return float(low), float(high)


def detection_by_size(objects: pd.DataFrame, architectures: Sequence[str]) -> List[SizeBinRecall]:
    """Per label and size bin (``objects.SIZE_EDGES_MM3``, in order), each architecture's share of the reference
    objects it found; a bin without objects for an architecture is left out (not applicable)."""
    references = objects[objects["side"] == "reference"]
    if references.empty:
        return []
    references = references.assign(bin=references["size_mm3"].astype(float).map(size_bin),
                                   matched=references["matched"].astype(str).str.lower() == "true",
                                   case=references["case"].astype(str))
    order = {name: i for i, name in enumerate(size_bin(low) for low in SIZE_EDGES_MM3[:-1])}
    result = []
    for (label, name), group in sorted(references.groupby(["label", "bin"]), key=lambda g: (g[0][0], order[g[0][1]])):
        for architecture in architectures:
            per_case = group[group["architecture"] == architecture].groupby("case")["matched"].agg(["sum", "count"])
            if per_case.empty:
                continue
            found, counts = per_case["sum"].to_numpy(float), per_case["count"].to_numpy(float)
            effect = design_effect(found, counts)
            result.append(SizeBinRecall(architecture, str(label), name, int(counts.sum()), len(per_case),
                                        float(found.sum() / counts.sum()),
                                        korn_graubard(found.sum(), counts.sum(), effect), effect))
    return result
