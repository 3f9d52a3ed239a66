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
from src.augment.sbi import SBI
from src.data.datamodule import read_face, resolve_table
from src.data.preprocess import load_frame_table
from src.files import atomic_write

COLUMNS = ("real", "SBI fake", "SBI mask", "4M(1-M)", "BI fake", "BI mask")
HEADER_HEIGHT = 24  # pixels of the row of column names


def _grey(values: np.ndarray) -> np.ndarray:
    peak = max(float(values.max()), 1e-6)
    return np.repeat((values / peak * 255).astype(np.uint8)[..., None], 3, axis=2)


def _label(tile: np.ndarray, text: str) -> np.ndarray:
    out = tile.copy()
    cv2.putText(out, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(out, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def augment_grid(
    table: str, cache_dir: str | Path, rows: int = 4, size: int = 192, seed: int = 0
) -> np.ndarray:
    """The grid as an RGB uint8 image (``rows`` faces x :data:`COLUMNS`, ``size`` px tiles)."""
    frames = load_frame_table(resolve_table(table, cache_dir))
    reals = frames[(frames["label"] == 0) & (frames["split"] == "train")].reset_index(drop=True)
    if reals.empty:
        raise ValueError(f"table {table!r} has no real training frames to blend")
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
            _grey(sbi_mask),
            _grey(4 * sbi_mask * (1 - sbi_mask)),
            bi_fake,
            _grey(bi_mask),
        ]
        tiles = [cv2.resize(t, (size, size), interpolation=cv2.INTER_AREA) for t in tiles]
        lines.append(np.concatenate(tiles, axis=1))
    header = np.concatenate(
        [_label(np.zeros((HEADER_HEIGHT, size, 3), np.uint8), name) for name in COLUMNS], axis=1
    )
    return np.concatenate([header, *lines], axis=0)


def write_augment_grid(
    table: str,
    cache_dir: str | Path,
    out: str | Path,
    rows: int = 4,
    size: int = 192,
    seed: int = 0,
) -> tuple[Path, int]:
    """Draw the grid (:func:`augment_grid`) and write it as a PNG; returns the path and rows drawn."""
    grid = augment_grid(table, cache_dir, rows, size=size, seed=seed)
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"PNG encoding of the augmentation grid failed ({out})")
    path = atomic_write(out, lambda handle: handle.write(encoded.tobytes()))
    return path, (len(grid) - HEADER_HEIGHT) // size
