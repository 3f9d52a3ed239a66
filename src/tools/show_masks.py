"""Predicted and true forgery masks over the faces: a picture to judge localisation by.

One row per sample: the face, the face with its true mask in green, the face
with the predicted mask in red, and the predicted probability as grey levels
(white = 1). Plain arrays in, one RGB array out, so a CLI verb, a notebook or
a report can all draw it.
"""

from __future__ import annotations

import cv2
import numpy as np

COLUMNS = ("face", "true mask", "predicted mask", "P(manipulated)")
TRUE_COLOUR = (0, 255, 0)
PREDICTED_COLOUR = (255, 0, 0)


def overlay(
    image: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int], alpha: float
) -> np.ndarray:
    """``image (1 - alpha m) + colour alpha m`` per pixel: the mask tints the face, 0 leaves it."""
    weight = alpha * np.clip(mask, 0.0, 1.0)[..., None]
    tinted = image.astype(np.float32) * (1 - weight) + np.asarray(colour, np.float32) * weight
    return np.round(tinted).astype(np.uint8)


def _fit(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    mask = np.asarray(mask, dtype=np.float32)
    if mask.shape != size:
        mask = cv2.resize(mask, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    return mask


def _title(tile: np.ndarray, text: str) -> np.ndarray:
    out = tile.copy()
    scale = max(tile.shape[0] / 400, 0.3)
    for colour, thickness in (((0, 0, 0), 3), ((255, 255, 255), 1)):
        cv2.putText(
            out,
            text,
            (4, int(14 * scale / 0.35)),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            colour,
            thickness,
            cv2.LINE_AA,
        )
    return out


def mask_overlay_grid(
    images: np.ndarray,
    true_masks: np.ndarray,
    predicted_masks: np.ndarray,
    alpha: float = 0.5,
    titles: bool = True,
) -> np.ndarray:
    """The grid as an RGB uint8 image: ``len(images)`` rows x :data:`COLUMNS`.

    Args:
        images: (N, H, W, 3) uint8 RGB faces.
        true_masks: (N, h, w) in [0, 1] (resized to H x W if they differ).
        predicted_masks: (N, h, w) probabilities in [0, 1] (``sigmoid(mask_logit)``).
        alpha: opacity of a mask value of 1.
        titles: write the column names on the first row.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(
            f"images must be (N, H, W, 3) uint8 RGB, got {images.shape} {images.dtype}"
        )
    n, height, width = images.shape[:3]
    if len(true_masks) != n or len(predicted_masks) != n:
        raise ValueError(
            f"{n} images but {len(true_masks)} true and {len(predicted_masks)} predicted masks"
        )
    rows = []
    for index in range(n):
        true = _fit(true_masks[index], (height, width))
        predicted = _fit(predicted_masks[index], (height, width))
        grey = np.round(np.clip(predicted, 0, 1) * 255).astype(np.uint8)
        tiles = [
            images[index],
            overlay(images[index], true, TRUE_COLOUR, alpha),
            overlay(images[index], predicted, PREDICTED_COLOUR, alpha),
            np.repeat(grey[..., None], 3, axis=2),
        ]
        if titles and index == 0:
            tiles = [_title(tile, name) for tile, name in zip(tiles, COLUMNS, strict=True)]
        rows.append(np.concatenate(tiles, axis=1))
    return np.concatenate(rows, axis=0)
