"""Render a table of :class:`~src.bench.tables.TableEntry` as Markdown, LaTeX, CSV or text.

The builders keep numbers in the entries rather than formatted strings, so
one table feeds every renderer: the best and second-best entries of each
column are found on the means as displayed, CSV gets plain numbers, and
Markdown and LaTeX get their own markup.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from src.bench.tables import TableEntry

LOWER_IS_BETTER = frozenset({"eer"})
METRIC_NAMES = {
    "auc": "AUC",
    "ap": "AP",
    "acc": "ACC",
    "eer": "EER",
    "real_acc": "real ACC",
    "fake_acc": "fake ACC",
    "avg": "Avg",
    "pixel_auc": "pixel AUC",
    "pixel_iou": "IoU",
    "pixel_f1": "F1",
}


def _metric_of(column: Any) -> str | None:
    parts = column if isinstance(column, tuple) else (column,)
    for part in reversed(parts):
        if part in METRIC_NAMES:
            return part
    return None


def highlight_marks(table: pd.DataFrame) -> pd.DataFrame:
    """``"best"``, ``"second"`` or ``""`` for each entry, per column.

    Means are compared as displayed (rounded to two decimals), so entries that
    read the same are tied and marked alike. Higher is better except for EER.
    NaN is never marked, and a column with fewer than two values is left
    unmarked (nothing to compare).
    """
    marks = pd.DataFrame("", index=table.index, columns=table.columns, dtype=object)
    for j, column in enumerate(table.columns):
        means = np.array([entry.mean for entry in table.iloc[:, j]], dtype=np.float64)
        shown = np.round(means, 2)
        valid = ~np.isnan(shown)
        if valid.sum() < 2:
            continue
        sign = -1.0 if _metric_of(column) in LOWER_IS_BETTER else 1.0
        ranked = np.unique(sign * shown[valid])[::-1]  # distinct values, best first
        for value, mark in zip(ranked[:2], ("best", "second"), strict=False):
            marks.iloc[np.flatnonzero(valid & (sign * shown == value)), j] = mark
    return marks


def _column_title(column: Any) -> str:
    parts = column if isinstance(column, tuple) else (column,)
    return " ".join(METRIC_NAMES.get(str(p), str(p)) for p in parts if str(p) != "")


def _index_names(table: pd.DataFrame) -> list[str]:
    return [str(n) if n is not None else "" for n in table.index.names]


def _index_values(label: Any) -> list[str]:
    return [str(v) for v in label] if isinstance(label, tuple) else [str(label)]


def to_markdown(table: pd.DataFrame, highlight: bool = True) -> str:
    """A GitHub Markdown table; best per column ``**x**``, second ``<u>x</u>``."""
    marks = highlight_marks(table) if highlight else None
    wrap = {"best": "**{}**", "second": "<u>{}</u>", "": "{}"}
    header = [*_index_names(table), *(_column_title(c) for c in table.columns)]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] * table.index.nlevels + ["---:"] * table.shape[1]) + "|",
    ]
    for i, label in enumerate(table.index):
        entries = [
            wrap[marks.iat[i, j] if marks is not None else ""].format(table.iat[i, j])
            for j in range(table.shape[1])
        ]
        lines.append("| " + " | ".join([*_index_values(label), *entries]) + " |")
    return "\n".join(lines) + "\n"


def _latex_escape(text: str) -> str:
    for char, escaped in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&")):
        text = text.replace(char, escaped)
    return text.replace("#", r"\#").replace("$", r"\$")


def _latex_entry(entry: TableEntry) -> str:
    return _latex_escape(str(entry)).replace("±", r"$\pm$")


def to_latex(table: pd.DataFrame, highlight: bool = True) -> str:
    """A booktabs ``tabular``; best per column ``\\textbf{x}``, second ``\\underline{x}``.

    Column levels above the last become ``\\multicolumn`` headers over their
    runs of columns, as in the papers.
    """
    marks = highlight_marks(table) if highlight else None
    wrap = {"best": r"\textbf{%s}", "second": r"\underline{%s}", "": "%s"}
    n_index = table.index.nlevels
    columns = [c if isinstance(c, tuple) else (c,) for c in table.columns]
    n_levels = len(columns[0]) if columns else 1
    lines = [r"\begin{tabular}{" + "l" * n_index + "c" * len(columns) + "}", r"\toprule"]
    for depth in range(n_levels - 1):
        # Group adjacent columns that share every header level down to this one.
        spans: list[tuple[tuple[Any, ...], int]] = []
        for c in columns:
            if spans and spans[-1][0] == c[: depth + 1]:
                spans[-1] = (spans[-1][0], spans[-1][1] + 1)
            else:
                spans.append((c[: depth + 1], 1))
        header, rules, first = [""] * n_index, [], n_index + 1
        for key, width in spans:
            title = _latex_escape(_column_title(key[-1]))
            header.append(title if width == 1 else rf"\multicolumn{{{width}}}{{c}}{{{title}}}")
            if width > 1 and title:
                rules.append(rf"\cmidrule(lr){{{first}-{first + width - 1}}}")
            first += width
        lines.append(" & ".join(header) + r" \\")
        lines += [" ".join(rules)] if rules else []
    last = [_latex_escape(n) for n in _index_names(table)]
    last += [_latex_escape(_column_title(c[-1])) for c in columns]
    lines += [" & ".join(last) + r" \\", r"\midrule"]
    for i, label in enumerate(table.index):
        entries = [
            wrap[marks.iat[i, j] if marks is not None else ""] % _latex_entry(table.iat[i, j])
            for j in range(table.shape[1])
        ]
        values = [_latex_escape(v) for v in _index_values(label)]
        lines.append(" & ".join([*values, *entries]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def to_numbers(table: pd.DataFrame) -> pd.DataFrame:
    """The table as plain numbers: one column per table column (the mean, in percent).

    Columns are named by joining the column levels with ``/`` (e.g.
    ``cdf2/auc``); ``<name>/std`` follows where any entry has several seeds and
    ``<name>/low``, ``<name>/high`` where any entry has an interval.
    """
    out = table.index.to_frame(index=False).astype(object)
    for j, column in enumerate(table.columns):
        name = "/".join(str(p) for p in (column if isinstance(column, tuple) else (column,)))
        name = name.rstrip("/")
        entries = list(table.iloc[:, j])
        out[name] = [e.mean for e in entries]
        if any(e.n > 1 for e in entries):
            out[f"{name}/std"] = [e.std for e in entries]
        if any(not math.isnan(e.low) for e in entries):
            out[f"{name}/low"] = [e.low for e in entries]
            out[f"{name}/high"] = [e.high for e in entries]
    return out


def to_csv(table: pd.DataFrame) -> str:
    """:func:`to_numbers` as CSV text."""
    return to_numbers(table).to_csv(index=False)


#: How the terminal marks the best and second-best entry of a column.
TERMINAL_STYLES = ("plain", "ansi")
_ANSI = {"best": ("\x1b[1m", "\x1b[22m"), "second": ("\x1b[4m", "\x1b[24m"), "": ("", "")}
_PLAIN = {"best": " (1)", "second": " (2)", "": "    "}


def terminal_style(stream: Any, environ: Mapping[str, str]) -> str:
    """``"ansi"`` on a terminal unless ``NO_COLOR`` is set (no-color.org), else ``"plain"``."""
    is_tty = bool(getattr(stream, "isatty", lambda: False)())
    return "ansi" if is_tty and not environ.get("NO_COLOR") else "plain"


def marks_legend(style: str) -> str:
    """What the terminal's marks mean, in the style they are drawn."""
    if style == "ansi":
        best, second = (
            f"{on}{word}{off}"
            for (on, off), word in ((_ANSI["best"], "bold"), (_ANSI["second"], "underlined"))
        )
        return f"{best} = best, {second} = second best per column"
    return "(1) = best, (2) = second best per column"


def to_terminal(table: pd.DataFrame, style: str = "plain") -> str:
    """Aligned text; best and second best per column marked for a terminal, never with Markdown.

    Args:
        table: a built table.
        style: ``"ansi"`` (bold and underlined, for a terminal) or ``"plain"``
            (``(1)`` and ``(2)`` after the value, for a log file or ``NO_COLOR``).
    """
    if style not in TERMINAL_STYLES:
        raise ValueError(f"style must be one of {TERMINAL_STYLES}, got {style!r}")
    marks = highlight_marks(table)
    columns = [c if isinstance(c, tuple) else (c,) for c in table.columns]
    n_levels = len(columns[0]) if columns else 1
    n_index = table.index.nlevels
    header_rows = [
        [""] * (n_index - 1)
        + [_index_names(table)[-1] if depth == n_levels - 1 else ""]
        + [
            METRIC_NAMES.get(str(c[depth]), str(c[depth]))
            # A header repeated over a run of columns is written once, on its first column.
            if depth == n_levels - 1 or k == 0 or columns[k - 1][: depth + 1] != c[: depth + 1]
            else ""
            for k, c in enumerate(columns)
        ]
        for depth in range(n_levels)
    ]
    if n_index > 1:
        header_rows[-1][:n_index] = _index_names(table)
    suffix = _PLAIN if style == "plain" else {mark: "" for mark in _PLAIN}
    body = [
        _index_values(label)
        + [f"{table.iat[i, j]}{suffix[marks.iat[i, j]]}" for j in range(table.shape[1])]
        for i, label in enumerate(table.index)
    ]
    every = [*header_rows, *body]
    widths = [max(len(r[k]) for r in every) for k in range(len(every[0]))]

    def line(row: list[str], row_marks: list[str] | None = None) -> str:
        left = [v.ljust(w) for v, w in zip(row[:n_index], widths, strict=False)]
        right = []
        for k, (value, width) in enumerate(zip(row[n_index:], widths[n_index:], strict=True)):
            # Escapes around the value only, so they take no room in the alignment.
            on, off = _ANSI[row_marks[k]] if row_marks and style == "ansi" else ("", "")
            right.append(" " * (width - len(value)) + on + value + off)
        return "  ".join(left + right).rstrip()

    rule = "  ".join("-" * w for w in widths)
    rows = [line(r, list(marks.iloc[i])) for i, r in enumerate(body)]
    return "\n".join([*(line(r) for r in header_rows), rule, *rows]) + "\n"
