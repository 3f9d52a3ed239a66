"""Render a benchmark's results: tables (terminal, Markdown, CSV, LaTeX), ROC curves, W&B.

Frame and video level are separate tables; every title says which level,
which profile and that values are percentages. Every AUC entry carries a
bootstrap 95 % interval over videos.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from src.bench import render, tables
from src.bench.plots import roc_curves
from src.bench.schema import read_predictions
from src.bench.tables import PERTURBATION_FLAGS, Intervals, flags_dict, row_labels
from src.files import atomic_write_text

#: The table shapes a grid can ask for (``table:`` in a grid file).
BUILDERS: dict[str, Callable[..., pd.DataFrame]] = {
    "cross_dataset": tables.cross_dataset_table,
    "in_dataset": tables.in_dataset_table,
    "cross_manipulation": tables.cross_manipulation_table,
    "robustness": tables.robustness_table,
}


def predictions_of(root: Path) -> Callable[[pd.Series], pd.DataFrame]:
    """The loader of results rows' predictions under the benchmark's results root."""
    return lambda row: read_predictions(root, row)


def curve_rows(results: pd.DataFrame) -> dict[str, dict[str, pd.Series]]:
    """The results rows drawn as ROC curves: per test set, one per table row label.

    Frame-level rows of unperturbed tests; a curve is the first seed's run.
    Labels distinguish what the tables distinguish (flag variants such as a
    cross-manipulation grid's training manipulation, several training sets),
    so two cells of one detector never overwrite each other's curve.
    """
    frame = results[results["level"] == "frame"]
    clean = [not flags_dict(f).get(PERTURBATION_FLAGS[0]) for f in frame["flags"]]
    frame = frame[clean]
    labels = row_labels(frame, PERTURBATION_FLAGS)
    curves: dict[str, dict[str, pd.Series]] = {}
    for index, row in frame.iterrows():
        curves.setdefault(str(row["test_set"]), {}).setdefault(labels[index], row)
    return curves


def report(
    results: pd.DataFrame, root: Path, kind: str = "cross_dataset", wandb: bool = True
) -> dict[str, Path]:
    """Write and print the tables of ``results`` under ``root/tables``; returns the files."""
    if results.empty:
        print("no finished cells: nothing to tabulate yet")
        return {}
    if kind not in BUILDERS:
        raise ValueError(f"unknown table kind {kind!r}; choose from {sorted(BUILDERS)}")
    out = root / "tables"
    profile = str(results["profile"].iloc[0])
    loader = predictions_of(root)
    written: dict[str, Path] = {}
    markdown: dict[str, str] = {}
    for level in ("frame", "video"):
        table = BUILDERS[kind](results, level, intervals=Intervals(loader))
        name = f"{kind}_{level}"
        title = (
            f"{kind.replace('_', '-')} benchmark, {level} level, {profile} profile (values in %)"
        )
        print(f"\n{title}\n{render.to_terminal(table)}")
        markdown[name] = f"**{title}**\n\n{render.to_markdown(table)}\n"
        written[f"{name}.md"] = atomic_write_text(out / f"{name}.md", markdown[name])
        written[f"{name}.csv"] = atomic_write_text(out / f"{name}.csv", render.to_csv(table))
        written[f"{name}.tex"] = atomic_write_text(out / f"{name}.tex", render.to_latex(table))
    images = {}
    for test_set, rows in curve_rows(results).items():
        curves = {label: loader(row) for label, row in rows.items()}
        safe = "".join(c if c.isalnum() or c in "_-+" else "_" for c in test_set)
        try:
            path = roc_curves(curves, test_set, "frame", out / f"roc_{safe}.png")
        except ValueError as error:  # e.g. a test set of one class: the tables still stand
            print(f"no ROC curve for {test_set}: {error}")
            continue
        images[f"roc_{safe}"] = written[f"roc_{safe}.png"] = path
    print(f"\ntables and ROC curves: {out}/  (results store: {root / 'results.csv'})")
    if wandb:
        from src.bench.wandb_report import log_leaderboard, offline_run_dirs, sync_hint, wandb_mode

        run = log_leaderboard(
            results, markdown, images, str(results["benchmark"].iloc[0]), root / "wandb_leaderboard"
        )
        print(f"W&B leaderboard ({wandb_mode()}): {run}")
        hint = sync_hint(offline_run_dirs(root))
        if hint and wandb_mode() == "offline":
            print(f"upload the offline runs with: {hint}")
    return written
