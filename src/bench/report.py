"""Render a benchmark's results: tables (terminal, Markdown, CSV, LaTeX), ROC curves, W&B.

Frame and video level are separate tables; every title says which level,
which profile and that values are percentages. The cross-dataset table adds
a bootstrap 95 % interval (over videos) to each AUC.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from src.bench import tables as T
from src.bench.plots import roc_curves
from src.files import atomic_write_text

BUILDERS: dict[str, Callable[..., pd.DataFrame]] = {
    "cross_dataset": T.cross_dataset_table,
    "in_dataset": T.in_dataset_table,
    "cross_manipulation": T.cross_manipulation_table,
    "robustness": T.robustness_table,
}


def load_predictions(root: Path) -> Callable[[pd.Series], pd.DataFrame]:
    """A results row's per-frame predictions (its test set only)."""

    def load(row: pd.Series) -> pd.DataFrame:
        frame = pd.read_parquet(root / row["predictions"])
        return frame[frame["set"] == row.get("prediction_set", row["test_set"])]

    return load


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
    loader = load_predictions(root)
    written: dict[str, Path] = {}
    markdown: dict[str, str] = {}
    for level in ("frame", "video"):
        if kind == "cross_dataset":
            table = T.cross_dataset_table(results, level, interval=True, load_predictions=loader)
        else:
            table = BUILDERS[kind](results, level)
        name = f"{kind}_{level}"
        title = (
            f"{kind.replace('_', '-')} benchmark, {level} level, {profile} profile (values in %)"
        )
        print(f"\n{title}\n{T.to_terminal(table)}")
        markdown[name] = f"**{title}**\n\n{T.to_markdown(table)}\n"
        written[f"{name}.md"] = atomic_write_text(out / f"{name}.md", markdown[name])
        written[f"{name}.csv"] = atomic_write_text(out / f"{name}.csv", T.to_csv(table))
        written[f"{name}.tex"] = atomic_write_text(out / f"{name}.tex", T.to_latex(table))
    images = {}
    frame_rows = results[results["level"] == "frame"].drop_duplicates(["detector", "test_set"])
    for test_set, rows in frame_rows.groupby("test_set", sort=False):
        curves = {row["detector"]: loader(row) for _, row in rows.iterrows()}
        safe = "".join(c if c.isalnum() or c in "_-+" else "_" for c in str(test_set))
        images[f"roc_{safe}"] = written[f"roc_{safe}.png"] = roc_curves(
            curves, str(test_set), "frame", out / f"roc_{safe}.png"
        )
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
