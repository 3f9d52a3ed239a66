"""What ``dfbench index`` reports about a video table it wrote (the verb is :mod:`src.cli.index`)."""

from __future__ import annotations

import pandas as pd

from src.data.tables import SPLITS


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
