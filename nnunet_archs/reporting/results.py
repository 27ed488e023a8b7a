"""What a report renders, handed over whole: the renderers read these objects and never a file, so a report is
tested from a small table in milliseconds and ``nnunet-archs report`` redraws it from what the study stored."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pandas as pd

from nnunet_archs.analysis.consensus import Consensus, Endpoint, PairwiseResult, Suitability
from nnunet_archs.analysis.costs import InferenceCost, TrainingCost
from nnunet_archs.analysis.sizes import SizeBinRecall
from nnunet_archs.analysis.statistics import StudyStatistics, Summary


@dataclass(frozen=True)
class Protocol:
    """What the study was asked for, as its report states it (``header`` is the report's first line);
    ``plan_hash``: the short hash of the analysis pre-registered in its spec, the file ``plan_file`` ("" for a study
    from before pre-registration), ``post_hoc``: what this report's analysis changes of that plan (nothing: as
    registered)."""

    header: str
    architectures: List[str]
    baseline: str
    metrics: List[str]
    folds: List[int]
    training_seeds: List[int]
    budget: str
    device: str
    compile_enabled: bool
    margins: Dict[str, float]
    nsd_tolerance_mm: float
    match_iou: float
    plan_hash: str = ""
    post_hoc: Tuple[str, ...] = ()
    plan_file: str = ""
    # networks trained without nnU-Net's deep-supervision loss, as their authors trained them (Swin UNETR)
    without_deep_supervision: Tuple[str, ...] = ()

    @property
    def on_cuda(self) -> bool:
        return self.device.startswith("cuda")


@dataclass
class Costs:
    """Each network's planned footing (``costs.json``: patch, batch, estimate, parameters, FLOPs), what its
    trainings and predictions took, and the driver sessions' machines (``environment.json``)."""

    planned: Dict[str, dict] = field(default_factory=dict)
    training: Dict[str, TrainingCost] = field(default_factory=dict)
    inference: Dict[str, InferenceCost] = field(default_factory=dict)
    machine: List[dict] = field(default_factory=list)


@dataclass
class StudyResults:
    """One study's report: the scored per-case table, the statistics of the cross-validation and of the test set,
    detection by object size, costs, and what did not run (``failed``) or how the trainings ran (``trainings``:
    job, attempts, executor job ids, seconds); ``sensitivity``: the cross-validation's primary endpoint under the
    other failure convention (``analysis.statistics.failure_sensitivity``), None where it has none."""

    protocol: Protocol
    table: pd.DataFrame
    statistics: StudyStatistics
    test_statistics: Optional[StudyStatistics] = None
    sizes: List[SizeBinRecall] = field(default_factory=list)
    costs: Costs = field(default_factory=Costs)
    failed: List[str] = field(default_factory=list)
    trainings: List[List[str]] = field(default_factory=list)
    sensitivity: Optional[StudyStatistics] = None


@dataclass
class DatasetResults:
    """One finished study as a combined report shows it: its dataset's name, its primary endpoint (``primary``,
    METRIC[:LABEL]) as a cases x architectures matrix with the study's spreads, each network's summary of it, and
    its challengeR rows (the primary endpoint and every metric at the label mean, one challengeR task per dataset
    within each metric and label)."""

    folder: Path
    name: str
    primary: str
    endpoint: Endpoint
    summaries: Dict[str, Summary]
    challenger: pd.DataFrame


@dataclass
class CombinedResults:
    """Several studies of one set of networks: the consensus ranking, every pair compared per dataset, and whether
    each dataset can separate the networks; ``differences`` states the settings the studies differ in."""

    studies: List[DatasetResults]
    architectures: List[str]
    differences: List[str]
    consensus: Consensus
    pairs: Dict[str, List[PairwiseResult]]
    suitability: Dict[str, Suitability]
    seed: int
    resamples: int
