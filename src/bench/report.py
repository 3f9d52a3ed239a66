"""Render a benchmark's results: tables (terminal, Markdown, CSV, LaTeX), ROC curves, W&B.

Frame and video level are separate tables; every title says which level,
which profile and that values are percentages. Every AUC entry carries a
bootstrap 95 % interval over videos, and the terminal prints a legend line
under each table saying so. Under the tables, a sanity line gives each
cell's validation AUC at its selected checkpoint: a table of chance-level
numbers next to validation AUCs near 50 says the training failed, not the
detector's generalisation. Detectors that output a mask also get a
pixel-level table of their own (pixel AUC, IoU and F1 at 0.5).
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import pandas as pd

from src.bench import render, tables
from src.bench.plots import roc_curves
from src.bench.schema import PIXEL_METRICS, read_predictions
from src.bench.tables import PERTURBATION_FLAGS, Intervals, flags_dict, row_labels
from src.files import atomic_write_text

#: The table shapes a grid can ask for (``table:`` in a grid file).
BUILDERS: dict[str, Callable[..., pd.DataFrame]] = {
    "cross_dataset": tables.cross_dataset_table,
    "in_dataset": tables.in_dataset_table,
    "cross_manipulation": tables.cross_manipulation_table,
    "robustness": tables.robustness_table,
}
#: What each table shape shows (the builders' default metrics).
SHOWN_METRICS = {
    "cross_dataset": "AUC and AP",
    "in_dataset": "ACC and AUC",
    "cross_manipulation": "AUC",
    "robustness": "AUC",
    "pixel": "pixel AUC, IoU and F1 at 0.5 over fakes with a mask",
}
#: A validation AUC (%) under this reads "near chance" in the sanity line.
NEAR_CHANCE = 60.0


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


def legend(table: pd.DataFrame, level: str, shown: str, style: str) -> str:
    """One line: the level and metrics a table shows, and what its brackets and marks mean."""
    entries = [entry for _, column in table.items() for entry in column]
    parts = [f"{level} level, {shown} in %"]
    if any(not math.isnan(e.low) for e in entries):
        parts.append("[low, high] = bootstrap 95 % interval of the AUC over videos")
    if any(e.n > 1 for e in entries):
        parts.append("± = std over seeds")
    parts.append(render.marks_legend(style))
    return "; ".join(parts)


def sanity_line(results: pd.DataFrame) -> str | None:
    """Each cell's validation frame AUC at its selected checkpoint, or None if none is known.

    Cells are named as the tables name their rows (plus the seed when there
    are several); an AUC under :data:`NEAR_CHANCE` is flagged. A checkpoint
    chosen while the validation AUC was undefined (NaN, e.g. a validation run
    cut to batches of one class) records -inf: it reads "undefined". A cell
    that validated on pseudo-fakes of its validation reals (``val_fakes``
    ``pseudo``) reads "pseudo-fake val", e.g. ``laa_net pseudo-fake val 97.10 at
    epoch 3``.
    """
    frame = results[results["level"] == "frame"]
    if frame.empty or "val_auc" not in frame or frame["val_auc"].isna().all():
        return None
    labels = row_labels(frame)
    several_seeds = frame["seed"].nunique() > 1
    parts = []
    for _, rows in frame.groupby("cell", sort=False):
        row = rows.iloc[0]
        name = labels[rows.index[0]] + (f" s{row['seed']}" if several_seeds else "")
        auc = 100.0 * float(row["val_auc"])
        if math.isnan(auc):
            parts.append(f"{name} not recorded")
            continue
        epoch = "" if pd.isna(row["best_epoch"]) else f" at epoch {int(row['best_epoch'])}"
        if math.isinf(auc):  # Lightning's checkpoint score for a NaN metric
            parts.append(f"{name} undefined{epoch} (one class in the validation batches?)")
            continue
        warning = " (near chance)" if auc < NEAR_CHANCE else ""
        kind = "pseudo-fake val " if row.get("val_fakes") == "pseudo" else ""
        parts.append(f"{name} {kind}{auc:.2f}{epoch}{warning}")
    return "validation frame AUC (%) at the selected checkpoints: " + ", ".join(parts)


def pixel_rows(results: pd.DataFrame) -> pd.DataFrame:
    """Frame-level rows that carry pixel-level metrics (detectors that output a mask)."""
    present = [m for m in PIXEL_METRICS if m in results]
    if not present:
        return results.iloc[0:0]
    frame = results[results["level"] == "frame"]
    return frame[frame[present].notna().any(axis=1)]


def _title(what: str, profile: str, level: str) -> str:
    return f"{what.replace('_', '-')} benchmark, {level} level, {profile} profile (values in %)"


def report(
    results: pd.DataFrame,
    root: Path,
    kind: str = "cross_dataset",
    wandb: bool = True,
    *,
    style: str | None = None,
    stream: TextIO | None = None,
    wandb_project: str | None = None,
    wandb_group: str | None = None,
) -> dict[str, Path]:
    """Write and print the tables of ``results`` under ``root/tables``; returns the files.

    Args:
        results: the results store's rows.
        root: the benchmark's results folder.
        kind: the table shape (:data:`BUILDERS`).
        wandb: also log a leaderboard run.
        style: terminal marks, ``"ansi"`` or ``"plain"``; default: ANSI on a
            terminal unless ``NO_COLOR`` is set.
        stream: where the tables are printed (stdout).
        wandb_project, wandb_group: the leaderboard run's project and group
            (defaults of :func:`src.bench.wandb_report.log_leaderboard`).
    """
    stream = stream or sys.stdout
    say = lambda text="": print(text, file=stream, flush=True)  # noqa: E731
    if results.empty:
        say("no finished cells: nothing to tabulate yet")
        return {}
    if kind not in BUILDERS:
        raise ValueError(f"unknown table kind {kind!r}; choose from {sorted(BUILDERS)}")
    style = style or render.terminal_style(stream, os.environ)
    out = root / "tables"
    profile = str(results["profile"].iloc[0])
    loader = predictions_of(root)
    sanity = sanity_line(results)
    written: dict[str, Path] = {}
    markdown: dict[str, str] = {}
    built: dict[str, pd.DataFrame] = {}
    shapes = [(kind, level, BUILDERS[kind], Intervals(loader)) for level in ("frame", "video")]
    pixels = pixel_rows(results)
    for what, level, build, intervals in shapes:
        built[f"{what}_{level}"] = build(results, level, intervals=intervals)
    if not pixels.empty:
        built[f"{kind}_pixel"] = tables.cross_dataset_table(pixels, "frame", PIXEL_METRICS)
    for name, table in built.items():
        level = name.rsplit("_", 1)[1]
        title = _title(kind, profile, level)
        shown = SHOWN_METRICS["pixel" if level == "pixel" else kind]
        note = f"\n{sanity}\n" if sanity and level != "pixel" else ""
        say(f"\n{title}\n{render.to_terminal(table, style)}{legend(table, level, shown, style)}")
        markdown[name] = f"**{title}**\n\n{render.to_markdown(table)}{note}"
        written[f"{name}.md"] = atomic_write_text(out / f"{name}.md", markdown[name])
        written[f"{name}.csv"] = atomic_write_text(out / f"{name}.csv", render.to_csv(table))
        written[f"{name}.tex"] = atomic_write_text(out / f"{name}.tex", render.to_latex(table))
    if sanity:
        say(f"\n{sanity}")
    images = {}
    for test_set, rows in curve_rows(results).items():
        curves = {label: loader(row) for label, row in rows.items()}
        safe = "".join(c if c.isalnum() or c in "_-+" else "_" for c in test_set)
        try:
            path = roc_curves(curves, test_set, "frame", out / f"roc_{safe}.png")
        except ValueError as error:  # e.g. a test set of one class: the tables still stand
            say(f"no ROC curve for {test_set}: {error}")
            continue
        images[f"roc_{safe}"] = written[f"roc_{safe}.png"] = path
    say(f"\ntables and ROC curves: {out}/  (results store: {root / 'results.csv'})")
    if wandb:
        from src.bench.wandb_report import log_leaderboard, offline_run_dirs, sync_hint, wandb_mode

        numbers = {name: render.to_numbers(table) for name, table in built.items()}
        run = log_leaderboard(
            results,
            numbers,
            images,
            str(results["benchmark"].iloc[0]),
            root / "wandb_leaderboard",
            project=wandb_project,
            group=wandb_group,
            markdown=markdown,
        )
        say(f"W&B leaderboard ({wandb_mode()}): {run}")
        hint = sync_hint(offline_run_dirs(root))
        if hint and wandb_mode() == "offline":
            say(f"upload the offline runs with: {hint}")
    return written
