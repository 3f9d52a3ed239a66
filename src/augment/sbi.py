"""Self-Blended Images (Shiohara & Yamasaki, CVPR 2022), as the authors run them, fast.

A real face is blended with a slightly transformed copy of itself through a
soft face-region mask; the seam and the colour/resolution mismatch are the
artifacts a detector learns. What :meth:`SBI.pair` does, step by step (the
authors' code runs albumentations 1.3.1; where dfbench departs, it says so):

1. **Region.** ``variant="sbi"``: the authors blend on the frame cropped
   around the 68-point landmark box with margins of half the box width left
   and right, the box height above and 0.4 of it below. The frame cache holds
   1.3x square crops, so this region is computed in crop pixels and cut to
   the crop; the geometric parameters below (affine centre and shifts, the
   blend mask's working size) are those of the whole region, and source
   pixels the region would have from beyond the crop come from a reflection
   of the crop's border (the region itself has a black border, as the
   authors'). ``variant="laa"``: LAA-Net blends on its cached crop, so the
   region is the crop.
2. **Landmarks.** 81 points: the frame's own, or 68 plus 13 forehead points
   extrapolated by :func:`src.augment.landmarks.with_forehead`; with p 0.25
   only the 68 are used (``forehead=False``: always 68).
3. **Mask**: one of Face X-ray's four hull types drawn uniformly (the paper's
   setting, where the authors' code uses the BI library's
   ``random_get_hull``; ``hull_types=("facehull",)`` is their code without
   it). Only the convex hull reaches the forehead points.
4. **Source and target**: copies of the face; with p 0.5 the source gets
   :func:`src.augment.photometric.source_transform`, else the target does.
5. **Affine**, source and mask together: translation x +-3 %, y +-1.5 % of
   the region, x and y scales drawn independently in 0.95-1/0.95 about the
   region's centre; black border, linear for the image, nearest for the mask.
6. **Elastic** deformation of the mask only (alpha 50, sigma 7, nearest,
   reflected border): the authors' code deforms the source as well and
   throws it away. dfbench draws the smooth field at a quarter of the
   resolution with sigma / 4 and scales its amplitude down by the same
   factor, so the displacement statistics match a full-resolution field
   (about 1.2 px standard deviation).
7. **Blend mask**: resized to a random 192-256 px (``laa``: 0.8-1.25 times
   its size), blurred (odd kernel 5-25), normalised, cut to its core (values
   below 1 set to 0), blurred again (odd kernel 5-25, sigma 5-45),
   normalised, resized back; times a ratio from {0.25, 0.5, 0.75, 1, 1, 1}.
8. ``fake = M * source + (1 - M) * target``.
9. ``variant="sbi"``: SBI's paired photometric transform on (real, fake) at
   this scale (:func:`src.augment.photometric.paired_photometric`, so JPEG
   acts on blocks of the native-resolution face, as the authors'), then the
   final crop: the face box (the frame table's ``face_x0 .. face_y1``; the
   68-point box without it) with per-side margins of 0.2-0.8 times a quarter
   of its width (left, right) or height (top, bottom), cut to the crop, not
   resized (the DataModule resizes to the detector's input).
   ``variant="laa"``: every side trimmed by 5-24 px (of a 256 px crop, scaled
   to the crop), the same for all four sides; the paired transform is the
   DataModule's ``pair_transform``, at the input size, as LAA-Net runs it.

The real returned is the target cut the same way. The mask returned is ``M``
(with the ratio) for ``sbi``; LAA-Net derives its targets from the mask
before the ratio, so ``laa`` returns that one. The horizontal flip (the
authors' first step) is the recipe's (``Recipe("sbi")``), applied to the
real and its fake together: flipping before or after blending gives the same
distribution.

Speed: ``benchmarks/augment_throughput.py``. The gains over the authors'
code come from deforming only the mask, drawing the elastic field at a
quarter of the resolution, working on the crop rather than the whole
region, and doing the photometric steps with lookup tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import pandas as pd

from src.augment.generator import PairedGenerator, side_landmarks
from src.augment.landmarks import HULL_TYPES, as_68, hull_mask, with_forehead
from src.augment.photometric import paired_photometric, source_transform
from src.contracts import SideData
from src.errors import DFBenchError

BLEND_RATIOS = (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)
#: LAA-Net trims 5-24 px from every side of a 256 px crop.
LAA_TRIM = (5, 25)
LAA_CROP = 256

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive ends)


def affine_matrix(
    shape: tuple[int, int], rng: np.random.Generator, centre: tuple[float, float] | None = None
) -> np.ndarray:
    """2x3 forward map: x and y scaled independently in 0.95-1/0.95, shifted x +-3 %, y +-1.5 %.

    Args:
        shape: (height, width) the shifts are fractions of (the region).
        rng: the sample's generator.
        centre: the scaling's fixed point in the output's pixels (default the
            centre of ``shape``, ``(w / 2 - 0.5, h / 2 - 0.5)`` as albumentations).
    """
    height, width = shape
    cx, cy = centre if centre is not None else (width / 2 - 0.5, height / 2 - 0.5)
    scale_x, scale_y = rng.uniform(0.95, 1 / 0.95, 2)
    shift_x = rng.uniform(-0.03, 0.03) * width
    shift_y = rng.uniform(-0.015, 0.015) * height
    return np.array(
        [
            [scale_x, 0.0, cx - scale_x * cx + shift_x],
            [0.0, scale_y, cy - scale_y * cy + shift_y],
        ],
        np.float64,
    )


def elastic_field(
    shape: tuple[int, int],
    rng: np.random.Generator,
    alpha: float = 50.0,
    sigma: float = 7.0,
    reduction: int = 4,
) -> tuple[np.ndarray, np.ndarray]:
    """The (dx, dy) displacement of an elastic deformation, drawn at reduced resolution.

    Full resolution (albumentations): ``alpha * G_sigma * U(-1, 1)`` per axis.
    Drawn on a grid ``reduction`` times coarser, the noise is blurred with
    sigma / reduction grid steps and upsampled; a Gaussian of width s has
    squared weights summing to 1 / (4 pi s^2), so the coarse field's standard
    deviation is ``reduction`` times larger, and its amplitude is divided by
    that much (per axis: the square root of the two axes' reductions).
    """
    height, width = shape
    small_h, small_w = max(-(-height // reduction), 8), max(-(-width // reduction), 8)
    fy, fx = small_h / height, small_w / width
    amplitude = alpha * float(np.sqrt(fx * fy))
    fields = []
    for _ in range(2):
        noise = rng.uniform(-1, 1, (small_h, small_w)).astype(np.float32)
        smooth = cv2.GaussianBlur(noise, (0, 0), sigmaX=sigma * fx, sigmaY=sigma * fy)
        full = cv2.resize(smooth, (width, height), interpolation=cv2.INTER_LINEAR)
        fields.append(full * np.float32(amplitude))
    return fields[0], fields[1]


def elastic(
    mask: np.ndarray, rng: np.random.Generator, alpha: float = 50.0, sigma: float = 7.0
) -> np.ndarray:
    """``mask`` elastically deformed (nearest, reflected border), as albumentations treats masks."""
    height, width = mask.shape
    dx, dy = elastic_field((height, width), rng, alpha, sigma)
    dx += np.arange(width, dtype=np.float32)
    dy += np.arange(height, dtype=np.float32)[:, None]
    return cv2.remap(mask, dx, dy, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REFLECT_101)


def _odd(rng: np.random.Generator, low: int = 5, high: int = 25) -> int:
    return int(rng.choice(np.arange(low, high + 1, 2)))


def blend_mask(
    mask: np.ndarray,
    rng: np.random.Generator,
    size: tuple[int, int] | None = None,
    region: tuple[int, int] | None = None,
) -> np.ndarray:
    """The two-stage blurred blend mask (before the ratio), at the mask's size.

    Args:
        mask: float32 H x W, part (or all) of the region's mask.
        rng: the sample's generator.
        size: (height, width) the whole region is resized to for the blurs;
            default a random 192-256 px each.
        region: (height, width) of the whole region (default ``mask``'s):
            ``mask`` is resized by ``size / region``.
    """
    height, width = mask.shape
    region_h, region_w = region or (height, width)
    work_h, work_w = size or (int(rng.integers(192, 257)), int(rng.integers(192, 257)))
    small_size = (
        max(1, round(width * work_w / region_w)),
        max(1, round(height * work_h / region_h)),
    )
    small = cv2.resize(mask, small_size, interpolation=cv2.INTER_LINEAR)
    k1 = _odd(rng)
    blurred = cv2.GaussianBlur(small, (k1, k1), 0)
    peak = blurred.max()
    if peak <= 0:
        return np.zeros_like(mask)
    # "Below 1 -> 0" with a float32 tolerance: blur sums round a hair under the peak.
    core = np.where(blurred >= peak * (1 - 1e-4), 1.0, 0.0).astype(np.float32)
    k2 = _odd(rng)
    blurred = cv2.GaussianBlur(core, (k2, k2), float(rng.integers(5, 46)))
    peak = blurred.max()
    if peak <= 0:
        return np.zeros_like(mask)
    return cv2.resize(blurred / peak, (width, height), interpolation=cv2.INTER_LINEAR)


def sbi_region(landmarks: np.ndarray) -> Box:
    """SBI's blending region around the 68-point box (crop pixels; may leave the crop)."""
    points = as_68(landmarks)
    x0, y0 = points.min(0)
    x1, y1 = points.max(0)
    w, h = x1 - x0, y1 - y0
    return int(x0 - w / 2), int(y0 - h), int(x1 + w / 2) + 1, int(y1 + 0.4 * h) + 1


def face_box(side: SideData, landmarks: np.ndarray) -> tuple[float, float, float, float]:
    """The detector's face box in crop pixels from the side data, else the 68-point box."""
    keys = ("face_x0", "face_y0", "face_x1", "face_y1")
    if all(key in side for key in keys):
        box = tuple(float(side[key]) for key in keys)
        if all(np.isfinite(box)) and box[2] > box[0] and box[3] > box[1]:
            return box
    points = as_68(landmarks)
    return (*points.min(0).tolist(), *points.max(0).tolist())


def final_crop(box: tuple[float, float, float, float], rng: np.random.Generator) -> Box:
    """SBI's training crop: per-side margins of 0.2-0.8 x a quarter of the box's side."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    left, right = (w / 4 * rng.uniform(0.2, 0.8, 2)).tolist()
    top, bottom = (h / 4 * rng.uniform(0.2, 0.8, 2)).tolist()
    return int(x0 - left), int(y0 - top), int(x1 + right) + 1, int(y1 + bottom) + 1


def _cut(box: Box, width: int, height: int) -> Box:
    x0, y0, x1, y1 = box
    return max(0, x0), max(0, y0), min(width, x1), min(height, y1)


#: What to do about frames without landmarks, in SBI's messages.
_NO_LANDMARKS_FIX = (
    "make the frame table with `dfbench preprocess`, which finds them (a DeepfakeBench "
    "index needs its landmarks/*.npy files), or drop those frames from the table"
)


class SBI(PairedGenerator):
    """Self-blended pseudo-fakes (see the module docstring).

    Args:
        variant: ``"sbi"`` (the authors' recipe) or ``"laa"`` (LAA-Net's).
        hull_types: hull types drawn uniformly for the mask (default all four,
            the paper's setting; ``("facehull",)`` is SBI's code without the
            BI library).
        forehead: use 81 points (the frame's, or forehead points extrapolated
            from 68), cut to 68 with p ``cut_prob``; False: always 68.
        cut_prob: probability of using only the 68 points.
        elastic_alpha, elastic_sigma: the mask's elastic deformation.
        blend_ratios: the blend strengths drawn from.
        photometric: apply SBI's paired photometric transform inside the
            generator, at the blend's scale (default: for ``sbi``; LAA-Net
            applies it at the input size, the DataModule's ``pair_transform``).
        final_crop: cut the pair to the face with the variant's margins
            (``sbi``: face box + 0.2-0.8 quarter margins; ``laa``: 5-24 px trim).
    """

    def __init__(
        self,
        variant: Literal["sbi", "laa"] = "sbi",
        hull_types: Sequence[str] | None = None,
        forehead: bool = True,
        cut_prob: float = 0.25,
        elastic_alpha: float = 50.0,
        elastic_sigma: float = 7.0,
        blend_ratios: Sequence[float] = BLEND_RATIOS,
        photometric: bool | None = None,
        final_crop: bool = True,
    ) -> None:
        if variant not in ("sbi", "laa"):
            raise DFBenchError(f"SBI variant must be 'sbi' or 'laa', got {variant!r}")
        self.variant = variant
        self.hull_types = tuple(hull_types or HULL_TYPES)
        unknown = set(self.hull_types) - set(HULL_TYPES)
        if unknown:
            raise DFBenchError(f"unknown hull types {sorted(unknown)}; choose from {HULL_TYPES}")
        if not 0 <= cut_prob <= 1:
            raise DFBenchError(f"cut_prob must be in [0, 1], got {cut_prob}")
        self.forehead = forehead
        self.cut_prob = cut_prob
        self.elastic_alpha = elastic_alpha
        self.elastic_sigma = elastic_sigma
        self.blend_ratios = tuple(blend_ratios)
        self.photometric = (variant == "sbi") if photometric is None else photometric
        self.final_crop = final_crop

    def __repr__(self) -> str:
        return f"SBI(variant={self.variant!r}, hull_types={self.hull_types})"

    def prepare(self, frames: pd.DataFrame, cache_dir: str | Path) -> None:
        """Refuse, before training starts, real frames that have no landmarks to blend from."""
        missing = [
            v is None or not np.isfinite(np.asarray(v, dtype=np.float32)).all()
            for v in frames["landmarks"]
        ]
        if any(missing):
            first = frames[missing].sort_values("crop_path").iloc[0]
            raise DFBenchError(
                f"SBI (the pseudo-fakes of SBI and LAA-Net) needs each training face's 68 "
                f"landmarks, but {sum(missing)} of {len(frames)} frames in {cache_dir} have none, "
                f"e.g. {first['crop_path']} (video {first['video_key']}); " + _NO_LANDMARKS_FIX
            )

    def pair(
        self,
        image: np.ndarray,
        mask: np.ndarray,
        rng: np.random.Generator,
        side: SideData,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(real, fake, mask)``: the target (transformed when drawn), its blend, the mask."""
        points = side_landmarks(side)
        if not np.isfinite(points).all():
            where = f" of {side['crop_path']}" if "crop_path" in side else ""
            raise DFBenchError(f"SBI: the face{where} has no landmarks; {_NO_LANDMARKS_FIX}")
        height, width = image.shape[:2]
        region = sbi_region(points) if self.variant == "sbi" else (0, 0, width, height)
        rx0, ry0, rx1, ry1 = region
        region_shape = (ry1 - ry0, rx1 - rx0)
        x0, y0, x1, y1 = _cut(region, width, height)
        work = image[y0:y1, x0:x1]
        offset = np.array([x0, y0], np.float32)
        points = with_forehead(points) if self.forehead else as_68(points)
        if points.shape[0] > 68 and rng.random() < self.cut_prob:
            points = points[:68]
        hull_type = self.hull_types[int(rng.integers(len(self.hull_types)))]
        shape = work.shape[:2]
        region_mask = hull_mask(points - offset, shape, hull_type)

        source, target = work, work
        if rng.random() < 0.5:
            source = source_transform(work, rng)
        else:
            target = source_transform(work, rng)
        # The region's centre and size, in the work area's pixels.
        centre = ((rx0 + rx1) / 2 - 0.5 - x0, (ry0 + ry1) / 2 - 0.5 - y0)
        matrix = affine_matrix(region_shape, rng, centre)
        whole = (x0, y0, x1, y1) == region
        size = (shape[1], shape[0])
        source = cv2.warpAffine(
            source,
            matrix,
            size,
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT if whole else cv2.BORDER_REFLECT_101,
        )
        region_mask = cv2.warpAffine(region_mask, matrix, size, flags=cv2.INTER_NEAREST)
        region_mask = elastic(region_mask, rng, self.elastic_alpha, self.elastic_sigma)
        if self.variant == "laa":
            blur_size = tuple(int(rng.integers(int(s * 0.8), int(s / 0.8))) for s in region_shape)
        else:
            blur_size = None
        weights = blend_mask(region_mask, rng, blur_size, region_shape)
        ratio = float(rng.choice(self.blend_ratios))
        blend = (weights * ratio).astype(np.float32)
        # One fused, rounding pass; where blend is 0 the target comes out unchanged.
        fake = cv2.blendLinear(source, target, blend, 1.0 - blend)
        returned = weights.astype(np.float32) if self.variant == "laa" else blend
        real = target
        if self.photometric:
            real, fake = paired_photometric(real, fake, rng)
        if self.final_crop:
            cx0, cy0, cx1, cy1 = self._final_box(side, points, (x0, y0), shape, rng)
            real, fake = real[cy0:cy1, cx0:cx1], fake[cy0:cy1, cx0:cx1]
            returned = returned[cy0:cy1, cx0:cx1]
        return real, fake, np.ascontiguousarray(returned)

    def _final_box(
        self,
        side: SideData,
        points: np.ndarray,
        origin: tuple[int, int],
        shape: tuple[int, int],
        rng: np.random.Generator,
    ) -> Box:
        """The final crop in the work area's pixels."""
        height, width = shape
        if self.variant == "laa":
            trim = int(rng.integers(*LAA_TRIM))
            tx = round(trim * width / LAA_CROP)
            ty = round(trim * height / LAA_CROP)
            return tx, ty, max(width - tx, tx + 1), max(height - ty, ty + 1)
        box = final_crop(face_box(side, points), rng)
        x0, y0, x1, y1 = _cut(
            (box[0] - origin[0], box[1] - origin[1], box[2] - origin[0], box[3] - origin[1]),
            width,
            height,
        )
        if x1 <= x0 or y1 <= y0:
            raise DFBenchError(f"SBI: the face box {box} lies outside the crop")
        return x0, y0, x1, y1
