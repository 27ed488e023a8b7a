"""The tidy tables evaluation writes: one row per (case, label, metric), and one per object. Written whole or not at
all, read back with identifiers kept as text (a case id "001" is not the number 1). A table that was cut (by a
killed job, a full disk, a hand edit), lacks a column or holds a value that is not a number where a number belongs
is refused on reading, with its file and line named: no report is drawn from it."""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import TYPE_CHECKING, List, Sequence

from nnunet_archs.errors import UserError
from nnunet_archs.files import write_text_atomically

if TYPE_CHECKING:
    import pandas as pd

# a per-case table needs these; older tables lack the later columns, read as one training seed 0 and no failures
REQUIRED_COLUMNS = ["architecture", "fold", "case", "label", "metric", "value"]
COLUMNS = ["architecture", "seed", "fold", "case", "label", "metric", "value", "failure", "worst_case"]
OBJECT_COLUMNS = ["architecture", "seed", "fold", "case", "label", "side", "object", "size_mm3", "matched", "iou"]
REQUIRED_OBJECT_COLUMNS = [c for c in OBJECT_COLUMNS if c != "seed"]
TEXT_COLUMNS = {"fold": str, "case": str, "label": str, "seed": str, "failure": str}
# what a cell of these columns must be when it is not empty (empty: not applicable, NaN)
NUMBER_COLUMNS = ("seed", "value", "worst_case", "object", "size_mm3", "iou")
TRUTH_COLUMNS = ("matched",)
TRUTH_VALUES = ("True", "False")


def write_rows(rows: List[dict], path: Path, columns: Sequence[str] = COLUMNS) -> None:
    """Write a tidy CSV whole or not at all: a killed job never leaves half a table."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, list(columns))
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomically(path, text.getvalue())


def read_table(path: Path, required: Sequence[str] = REQUIRED_COLUMNS) -> "pd.DataFrame":
    """A tidy table written by ``write_rows`` (or assembled from such tables), checked whole before it is used."""
    import pandas as pd
    text = check_table(Path(path), required)
    return pd.read_csv(io.StringIO(text), dtype=TEXT_COLUMNS)


def check_table(path: Path, required: Sequence[str]) -> str:
    """The text of the table in ``path``, or a UserError naming the file and the line that is not a whole row."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as problem:
        raise UserError(f"cannot read the metrics table {path}: {problem}") from None
    if not text:
        raise UserError(f"{path}, line 1: the table is empty (cut short?); it is not read, and no report is drawn "
                        f"from it")
    reader = csv.reader(io.StringIO(text))
    header = next(reader)
    if not text.endswith("\n"):
        lines = text.count("\n") + 1
        raise UserError(f"{path}, line {lines}: the table ends in the middle of a row (cut short?); it is not read, "
                        f"and no report is drawn from it")
    missing = [c for c in required if c not in header]
    if missing:
        raise UserError(f"{path}, line 1: no column {', '.join(missing)} (a metrics table has {', '.join(required)})")
    checked = [(i, c) for i, c in enumerate(header) if c in NUMBER_COLUMNS or c in TRUTH_COLUMNS]
    for row in reader:
        if len(row) != len(header):
            raise UserError(f"{path}, line {reader.line_num}: {len(row)} values where the header has {len(header)} "
                            f"columns")
        for index, column in checked:
            if row[index] and not _valid(column, row[index]):
                allowed = " or ".join(TRUTH_VALUES) if column in TRUTH_COLUMNS else "a number"
                raise UserError(f"{path}, line {reader.line_num}: column {column!r} holds {row[index]!r}, not "
                                f"{allowed}")
    return text


def _valid(column: str, cell: str) -> bool:
    if column in TRUTH_COLUMNS:
        return cell in TRUTH_VALUES
    try:
        number = float(cell)
    except ValueError:
        return False
    return column != "seed" or (math.isfinite(number) and number == int(number))


def objects_path(path: Path) -> Path:
    """Where the objects of the per-case table ``path`` are: ``NAME_objects.csv`` beside ``NAME.csv``."""
    return Path(path).with_name(Path(path).stem + "_objects.csv")
