"""68-point landmark geometry shared by the pseudo-fake generators: flips and hull masks.

Indices follow dlib's 68-point layout: jaw 0-16, brows 17-26, nose bridge
27-30, nose wings 31-35, eyes 36-41 (image left) and 42-47, outer lips 48-59,
inner lips 60-67. 81-point sets (68 + 13 forehead points) are cut to 68.
"""

from __future__ import annotations

import cv2
import numpy as np

HULL_TYPES = ("facehull", "dfl", "extended", "components")


def _flip_order() -> np.ndarray:
    order = np.arange(68)
    order[0:17] = order[0:17][::-1]  # jaw
    order[17:27] = order[17:27][::-1]  # brows
    order[31:36] = order[31:36][::-1]  # nose wings
    order[36:40], order[42:46] = (
        np.arange(42, 46)[::-1],
        np.arange(36, 40)[::-1],
    )  # eye corners, lids
    order[40:42], order[46:48] = np.arange(46, 48)[::-1], np.arange(40, 42)[::-1]  # lower lids
    order[48:55] = order[48:55][::-1]  # outer upper lip
    order[55:60] = order[55:60][::-1]  # outer lower lip
    order[60:65] = order[60:65][::-1]  # inner upper lip
    order[65:68] = order[65:68][::-1]  # inner lower lip
    return order


FLIP_ORDER = _flip_order()


def as_68(landmarks: np.ndarray) -> np.ndarray:
    points = np.asarray(landmarks, dtype=np.float32).reshape(-1, 2)
    if points.shape[0] < 68:
        raise ValueError(f"expected 68 (or 81) landmarks, got {points.shape[0]}")
    return points[:68]


def hflip(image: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror an image and its 68 landmarks; left and right points swap names.

    ``x -> W - 1 - x`` keeps landmarks on the pixel grid they were measured on
    (the authors' code uses ``W - x``, half a pixel off); flipping twice restores both.
    """
    points = as_68(landmarks)
    flipped = points[FLIP_ORDER].copy()
    flipped[:, 0] = image.shape[1] - 1 - flipped[:, 0]
    return np.ascontiguousarray(image[:, ::-1]), flipped


def _fill(shape: tuple[int, int], *polygons: np.ndarray) -> np.ndarray:
    mask = np.zeros(shape, np.float32)
    for polygon in polygons:
        hull = cv2.convexHull(np.round(polygon).astype(np.int32))
        cv2.fillConvexPoly(mask, hull, 1.0)
    return mask


def hull_mask(
    landmarks: np.ndarray, shape: tuple[int, int], hull_type: str = "facehull"
) -> np.ndarray:
    """A filled face-region mask (float32, 0/1) from 68 landmarks.

    Types (the authors' variants, written for 68 points):

    * ``facehull``: the convex hull of all points (jaw and brows);
    * ``dfl``: DeepFaceLab's full-face hull, jaw and brows with the brows
      lifted a little toward the forehead;
    * ``extended``: brows lifted by a fifth of the brow-to-chin height, so the
      region reaches well into the forehead;
    * ``components``: the union of three convex parts (left and right cheek
      with brow and nose, and nose with mouth), which keeps concavities a
      single hull would fill.
    """
    points = as_68(landmarks)
    if hull_type == "facehull":
        return _fill(shape, points)
    if hull_type in ("dfl", "extended"):
        jaw, brows = points[0:17], points[17:27].copy()
        face_height = points[8, 1] - brows[:, 1].mean()
        lift = 0.08 if hull_type == "dfl" else 0.2
        brows[:, 1] -= lift * face_height
        return _fill(shape, np.concatenate([jaw, brows]))
    if hull_type == "components":
        nose = points[27:36]
        left = np.concatenate([points[0:9], points[17:22], nose])
        right = np.concatenate([points[8:17], points[22:27], nose])
        mouth = np.concatenate([points[31:36], points[48:60], points[5:12]])
        return _fill(shape, left, right, mouth)
    raise ValueError(f"unknown hull type {hull_type!r}; choose from {HULL_TYPES}")
