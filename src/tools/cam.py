"""Grad-CAM overlays of a trained detector on a few test faces (``dfbench cam``).

One row per test set: ``per_class`` real faces then ``per_class`` fakes, each
with the detector's Grad-CAM map (its declared CAM layers, through
``as_classifier()``, explaining the fake logit) laid over it and its score
P(fake). Faces are drawn at random but seeded, so the same command draws the
same faces. A picture for a researcher who would rather look than read.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from src.data.datamodule import DeepfakeDataModule
from src.detectors.base import Detector
from src.errors import DFBenchError
from src.tools.pictures import header, heat_overlay, label, write_png
from src.tools.prle_maps import _member_input, _read_crop, gradcam_maps


def _pick(frames: pd.DataFrame, per_class: int, rng: np.random.Generator) -> pd.DataFrame:
    """``per_class`` frames of each label (reals first), at most one per video."""
    picked = []
    for label_value in (0, 1):
        videos = frames[frames["label"] == label_value].drop_duplicates("video_key")
        take = min(per_class, len(videos))
        picked.append(videos.iloc[np.sort(rng.choice(len(videos), take, replace=False))])
    return pd.concat(picked, ignore_index=True)


def cam_grid(
    detector: Detector,
    sets: dict[str, pd.DataFrame],
    cache_dir: str | Path,
    per_class: int = 3,
    size: int = 160,
    seed: int = 0,
) -> np.ndarray:
    """The grid as an RGB uint8 image: a row per set, reals then fakes, ``size`` px tiles."""
    rng = np.random.default_rng(seed)
    detector = detector.eval()
    device = next(detector.parameters()).device
    rows = []
    for name, frames in sets.items():
        picked = _pick(frames, per_class, rng)
        faces = np.stack([_read_crop(Path(cache_dir), p, size) for p in picked["crop_path"]])
        batch = torch.from_numpy(faces).permute(0, 3, 1, 2).to(device)
        images = _member_input(detector, batch)
        with torch.no_grad():
            scores = torch.sigmoid(detector(images).logit).cpu().numpy()
        maps = gradcam_maps(detector, images).numpy()
        tiles = [
            label(
                heat_overlay(face, heat),
                f"{'fake' if truth else 'real'} p={score:.2f}",
                scale=0.45,
            )
            for face, heat, truth, score in zip(faces, maps, picked["label"], scores, strict=True)
        ]
        blank = np.zeros((size, size, 3), np.uint8)
        tiles += [blank] * (2 * per_class - len(tiles))
        rows.append(label(np.concatenate(tiles, axis=1), name, scale=0.6))
    columns = [f"real {i + 1}" for i in range(per_class)] + [
        f"fake {i + 1}" for i in range(per_class)
    ]
    return np.concatenate([header(columns, size), *rows], axis=0)


def write_cam_grid(
    checkpoint: str | Path,
    datamodule: DeepfakeDataModule,
    out: str | Path,
    sets: Sequence[str] | None = None,
    per_class: int = 3,
    seed: int = 0,
    trusted: bool = False,
) -> Path:
    """Load a checkpoint, draw :func:`cam_grid` over its test sets and write the PNG.

    ``trusted`` loads a checkpoint that holds more than tensors and plain values
    (:meth:`Detector.from_checkpoint`).
    """
    detector = Detector.from_checkpoint(checkpoint, trusted=trusted)
    names = list(sets or datamodule.test_tables)
    if not names:
        raise DFBenchError("no test sets to draw: the data config names none (or pass --sets)")
    frames = {name: datamodule.frames([name], "test") for name in names}
    grid = cam_grid(detector, frames, datamodule.cache_dir, per_class, seed=seed)
    return write_png(out, grid)
