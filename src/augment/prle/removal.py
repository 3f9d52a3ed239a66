"""PRLE stage 2, dynamic exploitation: remove the top-alpha part of a frame's primary regions.

Algorithm 1 of the paper, per training frame: with probability ``p`` the frame
is augmented, otherwise it is used as it is (both at p = 0.5, the paper's value;
the paper's loss, Eq. 13 with gamma = 1, is then the plain classification loss
on whichever image was used, so no loss change is needed). To augment, alpha is
drawn, the fused map's nonzero pixels are ranked by value (Eq. 9), the top alpha
fraction is kept (Eq. 10) and those pixels are removed from the image (Eq. 11-12).

Choices, each an option:

* alpha: the paper draws it from (0, 1] (``alpha_range=(0, 1)``, default); the
  authors' code from U(0.5, 1) (``alpha_range=(0.5, 1)``). Drawn as
  ``high - u (high - low)`` with u in [0, 1), so the upper end is included.
* how many pixels: ``ceil(alpha |V|)`` of the |V| nonzero pixels, at least one.
  Eq. 10's 0-indexed bound ``0 <= i <= alpha |V|`` would keep one more pixel
  whenever ``alpha |V|`` is a whole number; the "top alpha fraction" it describes
  is what is kept here.
* ties at the cut (8-bit maps have many equal values): every pixel above the
  cut value is removed and the remaining count is drawn at random among the
  pixels equal to it, so exactly ``ceil(alpha |V|)`` go and no image side is
  preferred.
* removal (``fill``): ``"zero"`` multiplies by the complement mask (Eq. 11;
  black, since it runs on the uint8 frame before the detector's normalisation);
  ``"random"`` paints the pixels with random colours, one uniform RGB value per
  pixel, as the authors' code does.
* the blend mask loses the removed pixels too (there is nothing left to locate
  there), as the random erasing of the LAA-Net recipe does.

Ablations (paper Sec. IV-D):

* ``region="random"`` (Table IV): a random axis-aligned rectangle of the same
  area as the primary-region removal would take (``ceil(alpha |V|)`` pixels:
  ``h`` rows of ``ceil(area / h)`` columns, the last column cut short so the
  area is exact), anywhere in the image;
* ``region="landmark"`` (Table IV): a randomly chosen facial part (an eye, the
  nose, the mouth; :data:`LANDMARK_REGIONS`) from the frame's 68 landmarks, grown
  to the same area: pixels are taken by distance to the part's convex hull
  (inside first), then by distance to its centre;
* single-model maps (Table VI) are a data choice: a map folder built from a
  one-detector zoo;
* ``dynamic=False`` (Table VII, "w/o exploitation"): the fused map becomes the
  binary mask directly, i.e. every nonzero pixel is removed (alpha = 1); the
  keep-or-augment draw with ``p`` is the training protocol (Sec. III-D), not the
  dynamic step, and stays.

The map comes from ``side["prle_map"]`` at any resolution (the face crop's, the
map store's) as uint8 (the 8-bit store) or float in [0, 1], and is resized to
the image first. The map is aligned with the cached crop, so this augmentation
must run before any geometric one (flip, crop) of a training recipe.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

import cv2
import numpy as np

from src.augment.landmarks import as_68
from src.augment.prle.fusion import decode_map
from src.contracts import NO_SIDE_DATA, SideData
from src.errors import DFBenchError

Region = Literal["primary", "random", "landmark"]
REGIONS: tuple[str, ...] = ("primary", "random", "landmark")
FILLS: tuple[str, ...] = ("zero", "random")

#: Facial parts of the landmark ablation, as dlib 68-point index ranges.
LANDMARK_REGIONS: dict[str, tuple[int, int]] = {
    "left_eye": (36, 42),
    "right_eye": (42, 48),
    "nose": (27, 36),
    "mouth": (48, 68),
}


def removal_count(alpha: float, nonzero: int) -> int:
    """How many of ``nonzero`` ranked pixels the top ``alpha`` fraction holds (>= 1 if any)."""
    if nonzero <= 0:
        return 0
    # The small margin keeps float error (0.3 * 10 = 3.0000000000000004) from adding a pixel.
    return min(nonzero, max(1, math.ceil(alpha * nonzero - 1e-9)))


def top_fraction_mask(
    fused: np.ndarray, alpha: float, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Eq. 9-10: a bool mask of the top ``alpha`` fraction of ``fused``'s nonzero pixels.

    Exactly :func:`removal_count` pixels are set. Pixels tied at the cut value are
    drawn at random with ``rng`` (without one, the first in raster order).
    """
    flat = fused.reshape(-1)
    candidates = np.flatnonzero(flat > 0)
    keep = removal_count(alpha, candidates.size)
    chosen = np.zeros(flat.size, dtype=bool)
    if keep == candidates.size:
        chosen[candidates] = True
        return chosen.reshape(fused.shape)
    values = flat[candidates]
    cut = np.partition(values, values.size - keep)[values.size - keep]
    chosen[candidates[values > cut]] = True
    tied = candidates[values == cut]
    missing = keep - int(np.count_nonzero(values > cut))
    if rng is not None:
        tied = rng.choice(tied, size=missing, replace=False)
    chosen[tied[:missing]] = True
    return chosen.reshape(fused.shape)


def random_rectangle_mask(
    shape: tuple[int, int], area: int, rng: np.random.Generator
) -> np.ndarray:
    """A bool mask of exactly ``area`` pixels: a random rectangle, its last column cut short.

    The aspect ratio (height / width) is drawn log-uniformly from [1/2, 2], then
    clamped so the rectangle fits the image.
    """
    height, width = shape
    area = int(min(area, height * width))
    mask = np.zeros(shape, dtype=bool)
    if area <= 0:
        return mask
    ratio = math.exp(rng.uniform(math.log(0.5), math.log(2.0)))
    rows = int(round(math.sqrt(area * ratio)))
    rows = min(max(rows, math.ceil(area / width), 1), height, area)
    cols = math.ceil(area / rows)
    top = int(rng.integers(0, height - rows + 1))
    left = int(rng.integers(0, width - cols + 1))
    block = np.zeros(rows * cols, dtype=bool)
    block[:area] = True
    # Column-major fill: the short column is the rightmost one.
    mask[top : top + rows, left : left + cols] = block.reshape(cols, rows).T
    return mask


def landmark_region_mask(
    shape: tuple[int, int],
    landmarks: np.ndarray,
    area: int,
    rng: np.random.Generator,
    regions: Mapping[str, tuple[int, int]] = LANDMARK_REGIONS,
) -> np.ndarray:
    """A bool mask of exactly ``area`` pixels around a random facial part.

    Pixels are ranked by distance to the part's convex hull (0 inside), ties by
    distance to the part's centre, and the first ``area`` are taken: a small area
    stays inside the part, a large one grows around it.

    Args:
        shape: (height, width) of the image.
        landmarks: 68 x 2 (x, y) points in the image's pixels.
        area: pixels to mark.
        rng: chooses the part.
        regions: name -> [start, stop) landmark indices of each part.
    """
    height, width = shape
    area = int(min(area, height * width))
    mask = np.zeros(shape, dtype=bool)
    if area <= 0:
        return mask
    points = as_68(landmarks)
    if not np.isfinite(points).all():
        raise DFBenchError(
            "PRLE landmark masks need the frame's 68 landmarks; they are missing (NaN)"
        )
    names = sorted(regions)
    start, stop = regions[names[int(rng.integers(len(names)))]]
    part = points[start:stop]
    hull = np.zeros(shape, dtype=np.uint8)
    cv2.fillConvexPoly(hull, cv2.convexHull(np.round(part).astype(np.int32)), 1)
    outside = cv2.distanceTransform((1 - hull).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    ys, xs = np.mgrid[0:height, 0:width]
    centre = part.mean(axis=0)
    to_centre = np.hypot(xs - centre[0], ys - centre[1])
    order = np.lexsort((to_centre.reshape(-1), outside.reshape(-1)))
    mask.reshape(-1)[order[:area]] = True
    return mask


def _crop_size(side: Mapping[str, Any]) -> tuple[int, int]:
    """(height, width) of the face crop the landmarks were measured on."""
    if side.get("crop_size") is not None:
        height, width = side["crop_size"]
        return int(height), int(width)
    box = [side.get(key) for key in ("crop_x0", "crop_y0", "crop_x1", "crop_y1")]
    if any(value is None or not np.isfinite(float(value)) for value in box):
        raise DFBenchError(
            "PRLE landmark masks need the crop size the landmarks refer to: side data has "
            "neither 'crop_size' nor the crop box columns crop_x0..crop_y1"
        )
    x0, y0, x1, y1 = (float(value) for value in box)
    return int(round(y1 - y0)), int(round(x1 - x0))


class PrimaryRegionRemoval:
    """PRLE's training augmentation (see the module docstring for every choice).

    Called as ``(image, mask, rng, side) -> (image, mask)`` on an RGB uint8
    ``H x W x 3`` face at the training size and its uint8 ``H x W`` blend mask
    (or ``None``); ``side`` holds the frame's map under ``map_key`` and, for the
    landmark ablation, its ``landmarks`` with the crop box (or ``crop_size``).

    Args:
        p: probability that a frame is augmented (Algorithm 1: Rand(0, 1) <= p).
        alpha_range: (low, high); alpha is drawn from (low, high].
        fill: ``"zero"`` (Eq. 11) or ``"random"`` colours (the authors' code).
        region: ``"primary"`` (PRLE), ``"random"`` or ``"landmark"`` (Table IV).
        dynamic: False removes the whole nonzero map (Table VII).
        map_key: the side-data key of the frame's fused map.
    """

    def __init__(
        self,
        p: float = 0.5,
        alpha_range: tuple[float, float] = (0.0, 1.0),
        fill: Literal["zero", "random"] = "zero",
        region: Region = "primary",
        dynamic: bool = True,
        map_key: str = "prle_map",
    ) -> None:
        if not 0.0 <= p <= 1.0:
            raise DFBenchError(f"PRLE p must lie in [0, 1], got {p}")
        low, high = (float(v) for v in alpha_range)
        if not 0.0 <= low < high <= 1.0:
            raise DFBenchError(
                f"PRLE alpha_range must satisfy 0 <= low < high <= 1, got {alpha_range}"
            )
        if fill not in FILLS:
            raise DFBenchError(f"unknown PRLE fill {fill!r}; choose from {FILLS}")
        if region not in REGIONS:
            raise DFBenchError(f"unknown PRLE region {region!r}; choose from {REGIONS}")
        self.p = float(p)
        self.alpha_range = (low, high)
        self.fill = fill
        self.region = region
        self.dynamic = dynamic
        self.map_key = map_key

    def __repr__(self) -> str:
        return (
            f"PrimaryRegionRemoval(p={self.p}, alpha_range={self.alpha_range}, fill={self.fill!r}, "
            f"region={self.region!r}, dynamic={self.dynamic})"
        )

    def fused_map(self, side: Mapping[str, Any] | None, shape: tuple[int, int]) -> np.ndarray:
        """The frame's fused map as float32 in [0, 1], resized to ``shape`` (height, width)."""
        stored = None if side is None else side.get(self.map_key)
        if stored is None:
            raise KeyError(
                f"PRLE: the frame has no primary-region map (side data key {self.map_key!r}); "
                "build the maps for this training set first"
            )
        fused = decode_map(np.asarray(stored))
        if fused.ndim == 3:
            fused = fused[..., 0]
        if fused.shape != tuple(shape):
            fused = cv2.resize(fused, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
        return np.clip(fused, 0.0, 1.0)

    def draw_alpha(self, rng: np.random.Generator) -> float:
        """alpha in (low, high]; 1 without the dynamic step."""
        if not self.dynamic:
            return 1.0
        low, high = self.alpha_range
        return high - float(rng.random()) * (high - low)

    def removal_mask(
        self,
        shape: tuple[int, int],
        rng: np.random.Generator,
        side: Mapping[str, Any] | None,
    ) -> np.ndarray | None:
        """The bool mask of pixels to remove, or ``None`` when the frame is kept as it is."""
        if float(rng.random()) >= self.p:
            return None
        fused = self.fused_map(side, shape)
        alpha = self.draw_alpha(rng)
        if self.region == "primary":
            return top_fraction_mask(fused, alpha, rng)
        area = removal_count(alpha, int(np.count_nonzero(fused > 0)))
        if self.region == "random":
            return random_rectangle_mask(shape, area, rng)
        crop_height, crop_width = _crop_size(side)
        scale = np.array([shape[1] / crop_width, shape[0] / crop_height], np.float32)
        return landmark_region_mask(shape, as_68(side["landmarks"]) * scale, area, rng)

    def __call__(
        self,
        image: np.ndarray,
        mask: np.ndarray,
        rng: np.random.Generator,
        side: SideData = NO_SIDE_DATA,
    ) -> tuple[np.ndarray, np.ndarray]:
        removed = self.removal_mask(image.shape[:2], rng, side)
        if removed is None:
            return image, mask
        return self.apply(image, mask, removed, rng)

    def apply(
        self,
        image: np.ndarray,
        mask: np.ndarray | None,
        removed: np.ndarray,
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Remove the pixels of the bool mask ``removed`` from copies of ``image`` and ``mask``."""
        image = image.copy()
        if self.fill == "zero":
            image[removed] = 0
        else:
            count = int(np.count_nonzero(removed))
            image[removed] = rng.integers(0, 256, size=(count, image.shape[2]), dtype=np.uint8)
        if mask is not None:
            mask = mask.copy()
            mask[removed] = 0
        return image, mask
