"""The per-case table as the statistics read it: every column of ``evaluation.tables.COLUMNS`` (older tables
completed), each failure scored under a convention, and cases x architectures matrices of one metric and label.

Per-case values: each row's value, or for a failure (a structure missed or invented) its worst case under the
``worst`` convention (``evaluation.failures.FAILURE_CONVENTIONS``); for label ``"mean"`` the mean over the labels a
case has (NaN labels left out, as nnU-Net's foreground mean); then the mean over the training seeds. Every case
thus has one value per architecture, and cases are what the statistics resample.
"""
from __future__ import annotations

import math

import pandas as pd

from nnunet_archs.errors import UserError
from nnunet_archs.evaluation.failures import check_failure_convention
from nnunet_archs.evaluation.tables import COLUMNS, REQUIRED_COLUMNS

# the label of a case's mean over its labels
MEAN_LABEL = "mean"


def normalise(table: pd.DataFrame) -> pd.DataFrame:
    """The table with every column of ``evaluation.tables.COLUMNS`` (an older table: training seed 0, no failures) and
    identifiers as strings."""
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise UserError(f"the per-case table lacks column(s) {missing}; it needs {REQUIRED_COLUMNS}")
    defaults = {"seed": "0", "failure": "", "worst_case": math.nan}
    table = table.assign(**{c: v for c, v in defaults.items() if c not in table.columns})
    table = table.assign(fold=table["fold"].astype(str), seed=table["seed"].astype(str),
                         failure=table["failure"].fillna("").astype(str), label=table["label"].astype(str),
                         case=table["case"].astype(str))
    return table[COLUMNS]


def scored(table: pd.DataFrame, failures: str) -> pd.DataFrame:
    """``table`` with a ``score`` column: the value, or under ``worst`` a failure's worst-case value."""
    check_failure_convention(failures)
    score = table["value"].astype(float)
    if failures == "worst":
        fill = score.isna() & (table["failure"] != "") & table["worst_case"].notna()
        score = score.mask(fill, table["worst_case"].astype(float))
    return table.assign(score=score)


def label_rows(table: pd.DataFrame, metric: str, label: str) -> pd.DataFrame:
    rows = table[table["metric"] == metric]
    return rows if label == MEAN_LABEL else rows[rows["label"] == label]


def seed_case_values(table: pd.DataFrame, metric: str, label: str) -> pd.Series:
    """Score per (architecture, seed, fold, case): the label's, or the mean over a case's labels."""
    return label_rows(table, metric, label).groupby(["architecture", "seed", "fold", "case"])["score"].mean()


def case_matrix(table: pd.DataFrame, metric: str, label: str) -> pd.DataFrame:
    """Cases x architectures for one metric and label of a ``scored`` table, averaged over training seeds."""
    values = seed_case_values(table, metric, label).groupby(["architecture", "fold", "case"]).mean()
    return values.reset_index().pivot(index="case", columns="architecture", values="score")

