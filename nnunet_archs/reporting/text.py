"""How numbers, intervals and tables are written in every report (markdown and LaTeX)."""
from __future__ import annotations

import math
from typing import List, Optional


def fmt(value: Optional[float], digits: int = 3) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def signed(value: float, digits: int = 3) -> str:
    return "n/a" if math.isnan(value) else f"{value:+.{digits}f}"


def p_value(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def interval(ci, digits: int = 3, with_sign: bool = False) -> str:
    show = signed if with_sign else fmt
    return f"({show(ci[0], digits)}, {show(ci[1], digits)})"


def markdown_table(header: List[str], rows: List[List[str]]) -> List[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + \
        ["| " + " | ".join(row) + " |" for row in rows]


def latex_escape(text: str) -> str:
    return (text.replace("\\", "\\textbackslash{}").replace("_", "\\_").replace("%", "\\%")
            .replace("±", "$\\pm$").replace("Δ", "$\\Delta$").replace("&", "\\&").replace("†", "$^\\dagger$"))


def latex_table(comment: str, caption: str, header: List[str], rows: List[List[str]]) -> str:
    """A booktabs table: the first column left-aligned, the others centred."""
    lines = [comment, "\\begin{table}[t]", "\\centering", f"\\caption{{{caption}}}",
             "\\begin{tabular}{l" + "c" * (len(header) - 1) + "}", "\\toprule", " & ".join(header) + " \\\\",
             "\\midrule"]
    lines += [" & ".join(row) + " \\\\" for row in rows]
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
    return "\n".join(lines) + "\n"
