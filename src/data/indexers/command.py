"""What ``dfbench index`` writes and reports about a video table (the verb is :mod:`src.cli.index`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from src.data.indexers.base import IndexResult
from src.data.tables import SPLITS
from src.files import atomic_write_csv


def split_summary(table: pd.DataFrame) -> list[str]:
    """One line per split: its videos, reals and fakes."""
    lines = []
    dataset = ",".join(sorted(set(table["dataset"])))
    for split in SPLITS:
        labels = table.loc[table["split"] == split, "label"]
        if len(labels):
            fakes = int(labels.sum())
            lines.append(
                f"{dataset} {split}: {len(labels)} videos, "
                f"{len(labels) - fakes} reals, {fakes} fakes"
            )
    return lines


def skipped_path(out: str | Path) -> Path:
    """Where the table of skips of the video table ``out`` goes: ``<stem>_skipped.csv`` beside it."""
    out = Path(out)
    return out.with_name(f"{out.stem}_skipped.csv")


def save_index(result: IndexResult, out: str | Path) -> list[Path]:
    """Write the video table to ``out`` and, when anything was skipped, the skips beside it.

    A stale skips file from an earlier run of the same table is removed, so
    the folder never claims skips the table does not have.

    Raises:
        IsADirectoryError: ``out`` is a folder.
    """
    out = Path(out)
    if out.is_dir():
        raise IsADirectoryError(f"{out} is a folder; expected the path of the CSV file to write")
    written = [atomic_write_csv(out, result.videos)]
    skips = skipped_path(out)
    if result.skipped.empty:
        skips.unlink(missing_ok=True)
    else:
        written.append(atomic_write_csv(skips, result.skipped))
    return written
