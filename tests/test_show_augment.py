"""dfbench show-augment draws the pseudo-fake grid."""

from __future__ import annotations

import cv2
import pandas as pd

from src.cli import main
from src.tools.show_augment import COLUMNS


def test_show_augment_writes_the_grid(toy_cache, tmp_path) -> None:
    result, cache, _ = toy_cache
    table = pd.read_parquet(result.table_path)
    table.loc[table.label == 0, "split"] = "train"  # BI needs reals from two videos at least
    path = tmp_path / "reals.parquet"
    table.to_parquet(path)
    out = tmp_path / "grid.png"
    assert (
        main(
            [
                "show-augment",
                "--table",
                str(path),
                "--cache-dir",
                str(cache),
                "--out",
                str(out),
                "--rows",
                "3",
            ]
        )
        == 0
    )
    grid = cv2.imread(str(out))
    assert grid.shape == (24 + 3 * 192, len(COLUMNS) * 192, 3)
    # Column 2 (SBI mask) is a mask: grey and not empty.
    sbi_mask = grid[24:216, 2 * 192 : 3 * 192]
    assert sbi_mask.max() > 100 and (sbi_mask[..., 0] == sbi_mask[..., 1]).all()
