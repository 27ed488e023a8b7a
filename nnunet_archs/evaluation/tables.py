"""The tidy tables evaluation writes: one row per (case, label, metric), and one per object. Written whole or not at
all, read back with identifiers kept as text (a case id "001" is not the number 1)."""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import List, Sequence

import pandas as pd

from nnunet_archs.files import write_text_atomically

# a per-case table needs these; older tables lack the later columns, read as one training seed 0 and no failures
REQUIRED_COLUMNS = ["architecture", "fold", "case", "label", "metric", "value"]
COLUMNS = ["architecture", "seed", "fold", "case", "label", "metric", "value", "failure", "worst_case"]
OBJECT_COLUMNS = ["architecture", "seed", "fold", "case", "label", "side", "object", "size_mm3", "matched", "iou"]
TEXT_COLUMNS = {"fold": str, "case": str, "label": str, "seed": str, "failure": str}


def write_rows(rows: List[dict], path: Path, columns: Sequence[str] = COLUMNS) -> None:
    """Write a tidy CSV whole or not at all: a killed job never leaves half a table."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, list(columns))
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomically(path, text.getvalue())


def read_table(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=TEXT_COLUMNS)


def objects_path(path: Path) -> Path:
    """Where the objects of the per-case table ``path`` are: ``NAME_objects.csv`` beside ``NAME.csv``."""
    return Path(path).with_name(Path(path).stem + "_objects.csv")
