"""A picture of what the pseudo-fake generators make (``dfbench show-augment``).

One row per sampled real training face: the real, its SBI fake, SBI's blend
mask M, the blending boundary 4 M (1 - M) that LAA-Net's heatmap is built
from, its BI fake and BI's mask. A picture to trust the generators by.

A tool rather than an augmentation: it reads training faces from the frame
cache (:mod:`src.data`) and feeds them to :mod:`src.augment`, which never
reads data itself.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from src.augment.bi import BI
from src.augment.prle import PrimaryRegionRemoval
from src.augment.sbi import SBI
from src.data.datamodule import resolve_table
from src.data.frameset import read_face, read_side_array
from src.data.preprocess import load_frame_table
from src.errors import DFBenchError
from src.tools.pictures import grey, header, write_png

COLUMNS = ("real", "SBI fake", "SBI mask", "4M(1-M)", "BI fake", "BI mask")
PRLE_COLUMNS = ("PRLE map", "PRLE a=1", "PRLE a~U")


def prle_tiles(
    image: np.ndarray, prle_map: np.ndarray, rng: np.random.Generator
) -> list[np.ndarray]:
    """The fused map and the frame after removing all of it and a random top-alpha part."""
    side = {"prle_map": prle_map}
    whole = PrimaryRegionRemoval(p=1.0, dynamic=False)
    drawn = PrimaryRegionRemoval(p=1.0)
    blank = np.zeros(image.shape[:2], np.uint8)
    return [
        grey(cv2.resize(prle_map, image.shape[1::-1]).astype(np.float32)),
        whole(image, blank, rng, side)[0],
        drawn(image, blank, rng, side)[0],
    ]


HEADER_HEIGHT = 24  # pixels of the row of column names


def augment_grid(
    table: str,
    cache_dir: str | Path,
    rows: int = 4,
    size: int = 192,
    seed: int = 0,
    prle_maps: str | Path | None = None,
) -> np.ndarray:
    """The grid as an RGB uint8 image (``rows`` faces x :data:`COLUMNS`, ``size`` px tiles).

    With ``prle_maps`` (a folder written by ``dfbench prle-maps``), three more
    columns show PRLE on the same face: its fused primary-region map and the
    frame after the top-alpha removal (``alpha = 1``, the whole map, and a
    draw from the paper's alpha range), so the removal can be checked by eye.
    """
    frames = load_frame_table(resolve_table(table, cache_dir))
    reals = frames[(frames["label"] == 0) & (frames["split"] == "train")].reset_index(drop=True)
    if reals.empty:
        raise DFBenchError(f"table {table!r} has no real training frames to blend")
    columns = [*COLUMNS, *(PRLE_COLUMNS if prle_maps is not None else ())]
    bi = BI()
    bi.prepare(reals, cache_dir)
    sbi = SBI(variant="laa")
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(reals), size=min(rows, len(reals)), replace=False)
    lines = []
    for pick in picks:
        row = reals.iloc[int(pick)].to_dict()
        image, _ = read_face(Path(cache_dir), row)
        blank = np.zeros(image.shape[:2], np.uint8)
        real, sbi_fake, sbi_mask = sbi.pair(image, blank, rng, row)
        _, bi_fake, bi_mask = bi.pair(image, blank, rng, row)
        tiles = [
            real,
            sbi_fake,
            grey(sbi_mask),
            grey(4 * sbi_mask * (1 - sbi_mask)),
            bi_fake,
            grey(bi_mask),
        ]
        if prle_maps is not None:
            tiles += prle_tiles(
                image, read_side_array(Path(prle_maps) / "maps", row, "prle_map"), rng
            )
        tiles = [cv2.resize(t, (size, size), interpolation=cv2.INTER_AREA) for t in tiles]
        lines.append(np.concatenate(tiles, axis=1))
    return np.concatenate([header(columns, size, HEADER_HEIGHT), *lines], axis=0)


def write_augment_grid(
    table: str,
    cache_dir: str | Path,
    out: str | Path,
    rows: int = 4,
    size: int = 192,
    seed: int = 0,
    prle_maps: str | Path | None = None,
) -> tuple[Path, int]:
    """Draw the grid (:func:`augment_grid`) and write it as a PNG; returns the path and rows drawn."""
    grid = augment_grid(table, cache_dir, rows, size=size, seed=seed, prle_maps=prle_maps)
    return write_png(out, grid), (len(grid) - HEADER_HEIGHT) // size
