"""Small picture-making helpers shared by the viewers (show-augment, cam, show-masks)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from src.files import atomic_write


def grey(values: np.ndarray) -> np.ndarray:
    """A 2-D map scaled to its maximum as an RGB uint8 tile."""
    peak = max(float(values.max()), 1e-6)
    return np.repeat((values / peak * 255).astype(np.uint8)[..., None], 3, axis=2)


def label(tile: np.ndarray, text: str, scale: float = 0.5) -> np.ndarray:
    """``text`` in white with a black outline in the tile's top-left corner (a copy)."""
    out = np.ascontiguousarray(tile).copy()
    origin = (6, int(18 * scale / 0.5))
    for colour, thickness in (((0, 0, 0), 3), ((255, 255, 255), 1)):
        cv2.putText(
            out, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thickness, cv2.LINE_AA
        )
    return out


def heat_overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """An RGB face with a map in [0, 1] laid over it in the jet colour map."""
    heat = cv2.resize(heat.astype(np.float32), image.shape[1::-1], interpolation=cv2.INTER_LINEAR)
    colours = cv2.applyColorMap(np.uint8(np.clip(heat, 0, 1) * 255), cv2.COLORMAP_JET)
    colours = cv2.cvtColor(colours, cv2.COLOR_BGR2RGB)
    return cv2.addWeighted(image, 1 - alpha, colours, alpha, 0)


def header(names: Sequence[str], width: int, height: int = 24) -> np.ndarray:
    """A row of column names, one ``width``-px cell each."""
    return np.concatenate(
        [label(np.zeros((height, width, 3), np.uint8), name) for name in names], axis=1
    )


def write_png(out: str | Path, image: np.ndarray) -> Path:
    """Write an RGB uint8 image as a PNG, atomically."""
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"PNG encoding failed ({out})")
    return atomic_write(out, lambda handle: handle.write(encoded.tobytes()))
