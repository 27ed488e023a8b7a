"""Detection recall by object size: per label and size bin (``evaluation.objects.SIZE_EDGES_MM3``), each
architecture's share of the reference objects it found, with an interval from resampling the cases."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Sequence, Tuple

import numpy as np
import pandas as pd

from nnunet_archs.evaluation.objects import SIZE_EDGES_MM3, size_bin


@dataclass
class SizeBinRecall:
    """Detection recall of one architecture and label over the reference objects of one size bin (all training
    seeds pooled), with a 95 % percentile interval from resampling the cases."""

    architecture: str
    label: str
    size_bin: str
    n_objects: int
    n_cases: int
    recall: float
    ci: Tuple[float, float]


def detection_by_size(objects: pd.DataFrame, architectures: Sequence[str], seed: int,
                      resamples: int) -> List[SizeBinRecall]:
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
            rng = np.random.default_rng(seed)
            draws = rng.integers(0, len(per_case), (resamples, len(per_case)))
            shares = found[draws].sum(1) / counts[draws].sum(1)
            low, high = np.quantile(shares, [0.025, 0.975]) if len(per_case) > 1 else (math.nan, math.nan)
            result.append(SizeBinRecall(architecture, str(label), name, int(counts.sum()), len(per_case),
                                        float(found.sum() / counts.sum()), (float(low), float(high))))
    return result
