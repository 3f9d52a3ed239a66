"""dfbench show-augment draws the pseudo-fake grid."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd

from src.cli import main
from src.tools import show_augment
from src.tools.show_augment import COLUMNS, HEADER_HEIGHT


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


class StripedMaskSBI:
    """Stands in for SBI with a hand-made mask: five vertical stripes M = 0, 1/4, 1/2, 3/4, 1."""

    levels = (0.0, 0.25, 0.5, 0.75, 1.0)

    def __init__(self, **_: object) -> None:
        pass

    def pair(self, image, mask, rng, side):
        width = image.shape[1]
        stripe = np.minimum(np.arange(width) * len(self.levels) // width, len(self.levels) - 1)
        blend = np.asarray(self.levels, np.float32)[stripe]
        return image, image.copy(), np.broadcast_to(blend, image.shape[:2]).copy()


def test_boundary_column_draws_4m_1_minus_m_of_the_sbi_mask(
    toy_cache, tmp_path, monkeypatch
) -> None:
    """The mask column shows M and the boundary column 4 M (1 - M), each scaled to its peak.

    For the stripes M = 0, 1/4, 1/2, 3/4, 1 the boundary is 0, 3/4, 1, 3/4, 0 (peak 1), so
    the boundary tile reads 0, 191, 255, 191, 0 (255 * 3/4 = 191.25, truncated) at the
    centre of each stripe, and the mask tile 0, 63, 127, 191, 255.
    """
    result, cache, _ = toy_cache
    table = pd.read_parquet(result.table_path)
    table.loc[table.label == 0, "split"] = "train"  # BI needs reals from two videos at least
    path = tmp_path / "reals.parquet"
    table.to_parquet(path)
    monkeypatch.setattr(show_augment, "SBI", StripedMaskSBI)
    size = 100  # stripes 20 px wide in the tile, whatever the crop size
    grid = show_augment.augment_grid(str(path), cache, rows=2, size=size)
    assert COLUMNS[2:4] == ("SBI mask", "4M(1-M)")
    centres = [size * (2 * k + 1) // 10 for k in range(5)]
    for row in range(2):
        top = HEADER_HEIGHT + row * size
        for column, expected in ((2, [0, 63, 127, 191, 255]), (3, [0, 191, 255, 191, 0])):
            tile = grid[top : top + size, column * size : (column + 1) * size]
            assert tile[size // 2, centres].tolist() == [[v] * 3 for v in expected], column
            # Each stripe is flat away from its edges (no resampling blur).
            for centre, value in zip(centres, expected, strict=True):
                assert (tile[:, centre - 5 : centre + 5] == value).all()
