"""Report tables as a paper uses them: CSV with numbers in numeric columns, and TeX floats with a caption,
a label and wrapping text columns.

The report shows figures as text ("62.72 ± 3.36", "[-0.22, +24.43]", "9/1"); here each such column is split
into numeric columns (``… mean``, ``… std``, ``… ci_low``, ``… ci_high``, the two counts), so
``pandas.read_csv`` reads every figure as a number. All figures are percent (points), as in the report.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

from ser.reporting.escape import csv_cell, tex_text

_NUMBER = r"([+-]?\d+(?:\.\d+)?)"
_MISSING = {"", "—", "-", "n/a"}
_SPLITS = [                               # (pattern, the column's new names from its head)
    (re.compile(rf"^{_NUMBER} ± {_NUMBER}$"),
     lambda head: [f"{_base(head, ' mean ± std')} mean", f"{_base(head, ' mean ± std')} std"]),
    (re.compile(rf"^\[{_NUMBER}, {_NUMBER}\]$"),
     lambda head: [f"{_base(head, ' 95% CI')} ci_low", f"{_base(head, ' 95% CI')} ci_high"]),
    (re.compile(rf"^{_NUMBER} \[{_NUMBER}, {_NUMBER}\]$"),
     lambda head: [_base(head, " [95% CI]"), *(f"{_base(head, ' [95% CI]')} ci_{e}" for e in ("low", "high"))]),
    (re.compile(r"^(\d+)/(\d+)$"), lambda head: _ratio_names(head)),
    (re.compile(rf"^{_NUMBER}$"), lambda head: [head]),
]
WRAP_AT = 32
"""Text columns with a cell longer than this wrap in TeX (``p{…}``) instead of running off the page (a system name,
at most ``loglinear[probs,ratio,divide]``, stays on one line)."""


@dataclass(frozen=True)
class Table:
    """A report table: ``name`` is its file stem under tables/; cells are the report's text."""

    name: str
    head: list[str]
    rows: list[list[str]]


def _base(head: str, suffix: str) -> str:
    return head.removesuffix(suffix) if head.endswith(suffix) else head


def _ratio_names(head: str) -> list[str]:
    """``folds better/worse`` → ``folds better``, ``folds worse``; another head → ``HEAD num``, ``HEAD den``."""
    words = head.rsplit(" ", 1)
    pair = words[-1].split("/")
    if len(pair) == 2:
        stem = f"{words[0]} " if len(words) == 2 else ""
        return [f"{stem}{pair[0]}", f"{stem}{pair[1]}"]
    return [f"{head} num", f"{head} den"]


def numeric_columns(head: str, cells: list[str]) -> dict[str, list[float]] | None:
    """The column as numbers under one pattern, or None when its cells are text."""
    present = [c for c in cells if c.strip() not in _MISSING]
    for pattern, names in _SPLITS:
        if present and all(pattern.match(c) for c in present):
            parts = [pattern.match(c).groups() if c.strip() not in _MISSING else None for c in cells]
            return {name: [float(p[i]) if p else float("nan") for p in parts] for i, name in enumerate(names(head))}
    return None


def numeric_frame(table: Table) -> pd.DataFrame:
    """The table as a DataFrame with every figure column numeric (text columns made spreadsheet-safe)."""
    columns: dict[str, list] = {}
    for j, head in enumerate(table.head):
        cells = [row[j] for row in table.rows]
        numeric = numeric_columns(head, cells)
        if numeric is None:
            columns[str(csv_cell(head))] = [csv_cell(c) for c in cells]
        else:
            columns.update({name: _tidy(values) for name, values in numeric.items()})
    return pd.DataFrame(columns)


def _tidy(values: list[float]) -> pd.Series:
    """Counts as integers, other figures as floats."""
    series = pd.Series(values, dtype=float)
    return series.astype(int) if series.notna().all() and (series % 1 == 0).all() and len(series) else series


def to_tex(table: Table, caption: str) -> str:
    """A booktabs table float: first column left, figure columns right, long text columns wrapped; with a
    caption and the label ``tab:ser-NAME``."""
    spec = []
    for j, _ in enumerate(table.head):
        cells = [row[j] for row in table.rows]
        if j > 0 and numeric_columns(table.head[j], cells) is not None:
            spec.append("r")
        elif max((len(c) for c in cells), default=0) > WRAP_AT:
            spec.append(r"p{0.3\linewidth}")
        else:
            spec.append("l")
    label = re.sub(r"[^A-Za-z0-9:_-]", "-", table.name)
    lines = [r"\begin{table}[htbp]", r"\centering", r"\small", rf"\caption{{{tex_text(caption)}}}",
             rf"\label{{tab:ser-{label}}}", rf"\begin{{tabular}}{{{''.join(spec)}}}", r"\toprule",
             " & ".join(tex_text(h) for h in table.head) + r" \\", r"\midrule"]
    lines += [" & ".join(tex_text(c) for c in row) + r" \\" for row in table.rows]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)
