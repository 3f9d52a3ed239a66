"""Self-Blended Images (Shiohara & Yamasaki, CVPR 2022), fast.

A real face is blended with a slightly transformed copy of itself through a
soft face-region mask; the seam and the colour/resolution mismatch are the
artifacts a detector learns. Steps, as the authors' code does them
(``docs/sbi.md`` describes each one):

1. mask: a filled hull of the landmarks (``hull_types`` chooses among the
   variants; the authors' default is the convex hull);
2. source = a copy of the image; with p 0.5 the source is transformed, else
   the target (the real itself): RGB shift +-20 (p 0.3), hue/saturation/value
   shift (p 1), brightness/contrast +-0.1 (p 1), then either a x2/x4
   down-and-up scaling (nearest down, linear up) or a sharpening
   (alpha 0.2-0.5, lightness 0.5-1);
3. source and mask get one random affine map (translate x +-3 %, y +-1.5 %,
   scale 0.95-1/0.95); the mask alone is deformed elastically (alpha 50,
   sigma 7): the authors' code also deforms the image and throws it away;
4. blend mask: resized to a random 192-256 px, blurred (odd kernel 5-25),
   normalised, cut to its core (values below 1 set to 0), blurred again
   (odd kernel 5-25, sigma 5-45), normalised, resized back, times a ratio
   from {0.25, 0.5, 0.75, 1, 1, 1};
5. ``fake = M * source + (1 - M) * target``.

The flip (step 1 of the authors' pipeline) is :func:`src.augment.landmarks.hflip`
and the final crop, resize and the paired photometric transforms come from
the training recipe; the DataModule applies them identically to the real and
its fake, as the authors apply them to the pair.

``variant="laa"`` is LAA-Net's version: a random hull type every time, the
mask resized relative to its size (0.8-1.25 times), and the returned mask not
multiplied by the blend ratio (LAA-Net derives its targets from the unscaled
mask, while the blend itself still uses the ratio).

Speed: the authors' implementation takes about 36 ms per sample for this step
at 380 px; ``benchmarks/augment_throughput.py`` measures this one. The gains
come from deforming only the mask, drawing the elastic field at a quarter of
the resolution (it is a sigma-7 smooth field, so nothing is lost), blurring
the blend mask at 192-256 px, and doing the photometric steps with lookup tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import cv2
import numpy as np

from src.augment.generator import PairedGenerator
from src.augment.landmarks import HULL_TYPES, hull_mask

BLEND_RATIOS = (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)


def _lut_apply(image: np.ndarray, luts: np.ndarray) -> np.ndarray:
    """Apply one 256-entry table per channel."""
    return cv2.merge([cv2.LUT(image[..., c], luts[c]) for c in range(3)])


def _clip_u8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.round(values), 0, 255).astype(np.uint8)


def colour_transform(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """SBI's source/target transform (step 2 of the module docstring)."""
    levels = np.arange(256, dtype=np.float32)
    luts = np.broadcast_to(levels, (3, 256)).copy()
    if rng.random() < 0.3:  # RGB shift +-20
        luts += rng.uniform(-20, 20, (3, 1))
    # Brightness/contrast +-0.1, as albumentations: alpha * x + beta * 255.
    alpha, beta = 1 + rng.uniform(-0.1, 0.1), rng.uniform(-0.1, 0.1) * 255
    image = _lut_apply(image, _clip_u8(luts * alpha + beta))
    # HSV shift with the authors' limits (+-0.3 in albumentations' uint8 units:
    # below one intensity step, so it rounds to almost nothing, as theirs does).
    hue, sat, val = rng.uniform(-0.3, 0.3, 3)
    if max(abs(hue), abs(sat), abs(val)) >= 0.5:
        hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
        hsv[..., 0] = ((hsv[..., 0].astype(np.int16) + round(hue)) % 180).astype(np.uint8)
        hsv[..., 1:] = _clip_u8(hsv[..., 1:].astype(np.float32) + (sat, val))
        image = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    if rng.random() < 0.5:  # down-scale x2 or x4 and back
        factor = int(rng.choice((2, 4)))
        height, width = image.shape[:2]
        small = cv2.resize(
            image,
            (max(width // factor, 1), max(height // factor, 1)),
            interpolation=cv2.INTER_NEAREST,
        )
        return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    strength, lightness = rng.uniform(0.2, 0.5), rng.uniform(0.5, 1.0)
    effect = np.full((3, 3), -1.0, np.float32)
    effect[1, 1] = 8 + lightness
    identity = np.zeros((3, 3), np.float32)
    identity[1, 1] = 1
    return cv2.filter2D(image, -1, (1 - strength) * identity + strength * effect)


def random_affine(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """2x3 map: translate x +-3 %, y +-1.5 %, scale 0.95-1/0.95, about the centre."""
    height, width = shape
    scale = rng.uniform(0.95, 1 / 0.95)
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), 0.0, scale)
    matrix[:, 2] += (rng.uniform(-0.03, 0.03) * width, rng.uniform(-0.015, 0.015) * height)
    return matrix


def elastic(
    mask: np.ndarray, rng: np.random.Generator, alpha: float = 50.0, sigma: float = 7.0
) -> np.ndarray:
    """Elastic deformation: displacement = alpha * Gaussian-smoothed uniform noise.

    The field is drawn at a quarter of the resolution with sigma / 4 and
    upsampled: a sigma-7 field has no detail a quarter grid misses.
    """
    height, width = mask.shape
    small = (max(height // 4, 8), max(width // 4, 8))
    fields = []
    for _ in range(2):
        noise = rng.uniform(-1, 1, small).astype(np.float32)
        smooth = cv2.GaussianBlur(noise, (0, 0), sigma * small[0] / height)
        fields.append(cv2.resize(smooth, (width, height), interpolation=cv2.INTER_LINEAR) * alpha)
    grid_x, grid_y = np.meshgrid(
        np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32)
    )
    return cv2.remap(
        mask,
        grid_x + fields[0],
        grid_y + fields[1],
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
    )


def _odd(rng: np.random.Generator, low: int = 5, high: int = 25) -> int:
    return int(rng.choice(np.arange(low, high + 1, 2)))


def blend_mask(
    mask: np.ndarray, rng: np.random.Generator, size: tuple[int, int] | None = None
) -> np.ndarray:
    """Step 4: the two-stage blurred blend mask (before the ratio), at the mask's size.

    ``size`` (height, width) is where the blurs happen; default a random 192-256 px.
    """
    height, width = mask.shape
    work_h, work_w = size or (int(rng.integers(192, 257)), int(rng.integers(192, 257)))
    small = cv2.resize(mask, (work_w, work_h), interpolation=cv2.INTER_LINEAR)
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


class SBI(PairedGenerator):
    """Self-blended pseudo-fakes (see the module docstring).

    Args:
        variant: ``"sbi"`` (the authors' recipe) or ``"laa"`` (LAA-Net's).
        hull_types: hull variants drawn uniformly for the mask; default the
            convex hull for ``sbi`` and all four types for ``laa``.
        elastic_alpha, elastic_sigma: the mask's elastic deformation.
        blend_ratios: the blend strengths drawn from.
    """

    def __init__(
        self,
        variant: Literal["sbi", "laa"] = "sbi",
        hull_types: Sequence[str] | None = None,
        elastic_alpha: float = 50.0,
        elastic_sigma: float = 7.0,
        blend_ratios: Sequence[float] = BLEND_RATIOS,
    ) -> None:
        if variant not in ("sbi", "laa"):
            raise ValueError(f"SBI variant must be 'sbi' or 'laa', got {variant!r}")
        self.variant = variant
        self.hull_types = tuple(hull_types or (("facehull",) if variant == "sbi" else HULL_TYPES))
        unknown = set(self.hull_types) - set(HULL_TYPES)
        if unknown:
            raise ValueError(f"unknown hull types {sorted(unknown)}; choose from {HULL_TYPES}")
        self.elastic_alpha = elastic_alpha
        self.elastic_sigma = elastic_sigma
        self.blend_ratios = tuple(blend_ratios)

    def pair(
        self,
        image: np.ndarray,
        landmarks: np.ndarray,
        rng: np.random.Generator,
        row: dict | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(real, fake, mask)``: the real is the target, transformed when the draw says so."""
        height, width = image.shape[:2]
        hull_type = self.hull_types[int(rng.integers(len(self.hull_types)))]
        region = hull_mask(landmarks, (height, width), hull_type)
        source, target = image, image
        if rng.random() < 0.5:
            source = colour_transform(image, rng)
        else:
            target = colour_transform(image, rng)
        matrix = random_affine((height, width), rng)
        source = cv2.warpAffine(source, matrix, (width, height), borderMode=cv2.BORDER_REFLECT)
        region = cv2.warpAffine(region, matrix, (width, height))
        region = elastic(region, rng, self.elastic_alpha, self.elastic_sigma)
        work = None
        if self.variant == "laa":
            work = tuple(
                max(8, int(round(side * rng.uniform(0.8, 1.25)))) for side in (height, width)
            )
        weights = blend_mask(region, rng, work)
        ratio = float(rng.choice(self.blend_ratios))
        blend = (weights * ratio).astype(np.float32)
        # One fused, rounding pass; where blend is 0 the target comes out unchanged.
        fake = cv2.blendLinear(source, target, blend, 1.0 - blend)
        returned = weights if self.variant == "laa" else blend
        return target, fake, returned.astype(np.float32)
