"""Blended Images (BI, Face X-ray, Li et al. CVPR 2020) as LAA-Net's BI code makes them.

A background face (the real) gets the inner face of another real person
pasted in; the blend mask is the supervision (LAA-Net and Face X-ray train
on ``4 M (1 - M)``). Per sample, as LAA-Net's training code does it:

1. **Foreground**: one of the background's 30 nearest faces of other videos,
   drawn uniformly (:mod:`src.augment.bi_pool`: summed landmark distances
   over 10,000 candidates). It is not warped: crops of one layout are
   already aligned, and the faces were chosen for similar landmarks.
2. **Down-sampling before blending**: both faces resized to a random
   128-317 px (of a 317 px crop; here that fraction of the crop).
3. **Mask**: one of Face X-ray's four hull types of the background's
   landmarks (:func:`src.augment.landmarks.hull_mask`; 81 points with the
   forehead, as LAA-Net's landmarks have, unless ``forehead=False``).
4. **Deformation**: a piecewise deformation on a 4 x 4 grid of control
   points spanning the face (corners included), each moved by a normal
   draw with standard deviation 0.01-0.15 of the crop (drawn per sample);
   the mask is resampled linearly and only its full-weight pixels are kept
   (the authors' conversion of the resampled mask to integers). imgaug's
   ``PiecewiseAffine`` triangulates the grid; this interpolates the
   displacement bilinearly between the points, the same field to within the
   triangles' kinks.
5. **Erosion** (p 0.5; square kernel of 1-21 px, made odd) **or dilation**
   (1-5 px); pixel sizes are the authors' at 317 px and scale with the crop.
   A mask left empty falls back to the undeformed hull (the authors' code
   fails the sample and draws another).
6. **Colour transfer**: inside the mask, the foreground's per-channel mean
   is moved to the background's.
7. **Feathered blend**: every mask pixel's weight is its distance to the
   boundary of the mask's convex hull over 0.2 of the mask's larger side,
   clipped to [0, 1] (the FaceSwap ``blendImages`` the authors use; computed
   with a distance transform instead of a per-pixel polygon test). The
   weights are the blend mask ``M``; outside the mask it is 0.
8. Blended face and mask resized back to the crop's size.
9. **Post-processing**: with p 0.5 the face is down-sampled to a random
   64-317 px (bilinear or nearest, equally likely) and up again (bilinear).
   The authors' reals go through the same step, so here the real gets its
   own draw of it.
10. **Final crop**: the authors cut a fixed window of the 317 px crop (rows
    60-317, columns 30-287); the same fractions of the crop are cut from
    the real, the fake and the mask (``final_crop=None`` keeps the crop).

dfbench's earlier extras are options, off by default: ``align`` warps the
foreground onto the background by the similarity that best maps its
landmarks (RANSAC), and ``jpeg_prob`` JPEG-compresses the fake (quality
``jpeg_quality``). Random flips and crops are the recipe's (the DataModule's
``train_augment``), shared by the real and its fake.

Use it as the DataModule's ``pseudo_fake``; the DataModule calls
:meth:`BI.prepare` with the training reals (the pool of foregrounds) first::

    pseudo_fake: {class_path: src.augment.bi.BI}
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from src.augment.bi_pool import REFERENCE_SIZE, Pool, build_pool, reference_frame
from src.augment.generator import PairedGenerator, side_landmarks
from src.augment.landmarks import HULL_TYPES, as_68, hull_mask, with_forehead
from src.contracts import SideData
from src.errors import DFBenchError

#: The authors' final window of their 317 px crop: (top, bottom, left, right) cut.
AUTHORS_CROP = (60 / 317, 0.0, 30 / 317, 30 / 317)


def _odd_kernel(rng: np.random.Generator, high: int, scale: float) -> int:
    """The authors' kernel: ``randint(1, high)`` made odd, scaled from 317 px to the crop."""
    size = int(rng.integers(1, high + 1))
    size += 1 - size % 2
    size = max(1, int(round(size * scale)))
    return size + 1 - size % 2


def _grid_weights(length: int, points: int) -> np.ndarray:
    """(length, points) linear interpolation weights of pixels 0..length-1 between control
    points at ``linspace(0, length, points)`` (imgaug's grid, which ends one pixel past the image)."""
    position = np.arange(length) * ((points - 1) / length)
    low = np.minimum(np.floor(position).astype(int), points - 2)
    frac = (position - low).astype(np.float32)
    weights = np.zeros((length, points), np.float32)
    weights[np.arange(length), low] = 1 - frac
    weights[np.arange(length), low + 1] = frac
    return weights


def piecewise_deform(
    mask: np.ndarray, rng: np.random.Generator, scale: tuple[float, float], grid: int = 4
) -> np.ndarray:
    """Step 4: the mask through a random control-grid deformation, full-weight pixels kept."""
    height, width = mask.shape
    strength = rng.uniform(*scale)
    shift = rng.normal(0.0, strength, (2, grid, grid)).astype(np.float32)
    # Control points that would leave the image stop at its edge, as imgaug's do.
    anchors_y = np.linspace(0, height, grid, dtype=np.float32)[:, None]
    anchors_x = np.linspace(0, width, grid, dtype=np.float32)[None, :]
    shift_x = np.clip(anchors_x + shift[0] * width, 0, width - 1) - anchors_x
    shift_y = np.clip(anchors_y + shift[1] * height, 0, height - 1) - anchors_y
    rows, cols = _grid_weights(height, grid), _grid_weights(width, grid)
    map_x = rows @ shift_x @ cols.T + np.arange(width, dtype=np.float32)
    map_y = rows @ shift_y @ cols.T + np.arange(height, dtype=np.float32)[:, None]
    moved = cv2.remap(mask, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return (moved >= 1 - 1e-4).astype(np.uint8)


def feather_weights(mask: np.ndarray, feather: float = 0.2) -> np.ndarray:
    """Step 7: distance to the mask's convex hull boundary over ``feather`` x its larger side.

    A pixel's distance to the hull's edges (what a polygon test measures for
    pixel centres) is its distance transform in the filled hull minus one:
    the nearest pixel outside the hull is one step beyond the edge. The hull
    of the mask's pixels is the hull of its outer contours' points.
    """
    weights = np.zeros(mask.shape, np.float32)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return weights
    points = np.concatenate(contours).reshape(-1, 2)
    x, y, w, h = cv2.boundingRect(points)
    extent = float(max(w - 1, h - 1))
    hull = np.zeros((h + 2, w + 2), np.uint8)  # a one-pixel frame of zeros around the box
    cv2.fillConvexPoly(hull, cv2.convexHull(points - (x - 1, y - 1)), 1)
    distance = cv2.distanceTransform(hull, cv2.DIST_L2, cv2.DIST_MASK_5)[1:-1, 1:-1]
    ramp = np.clip((distance - 1) * (1.0 / max(feather * extent, 1e-6)), 0, 1)
    box = (slice(y, y + h), slice(x, x + w))
    weights[box] = np.where(mask[box] > 0, ramp, 0)
    return weights


def colour_transfer(background: np.ndarray, foreground: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Step 6: the foreground shifted so its mean inside ``mask`` equals the background's."""
    inside = mask.astype(np.uint8)
    shift = np.array(cv2.mean(background, inside)[:3]) - np.array(cv2.mean(foreground, inside)[:3])
    levels = np.arange(256, dtype=np.float64)
    tables = np.clip(levels[None] + shift[:, None], 0, 255).astype(np.uint8)
    return cv2.LUT(foreground, np.ascontiguousarray(tables.T).reshape(1, 256, 3))


def down_up(
    image: np.ndarray, rng: np.random.Generator, low: int = 64, prob: float = 0.5
) -> np.ndarray:
    """Step 9 for one image: with ``prob``, down to a random low..317 px (of 317) and back up."""
    if rng.random() >= prob:
        return image
    height, width = image.shape[:2]
    fraction = int(rng.integers(low, REFERENCE_SIZE + 1)) / REFERENCE_SIZE
    small = (max(1, round(width * fraction)), max(1, round(height * fraction)))
    # PIL's bilinear down-scaling filters over the footprint, as OpenCV's area mode does.
    shrink = cv2.INTER_AREA if rng.random() < 0.5 else cv2.INTER_NEAREST
    image = cv2.resize(image, small, interpolation=shrink)
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)


class BI(PairedGenerator):
    """Blended Images as LAA-Net's BI code makes them (see the module docstring).

    Args:
        k: nearest faces kept per face, one of which is drawn per sample.
        candidates: foregrounds come from one random subset of this many pool
            faces (None: every face).
        components: principal components the neighbour shortlist is found in.
        shortlist: faces ranked exactly per face (at least ``k``).
        hull_types: mask types drawn uniformly.
        forehead: hull on 81 points (forehead extrapolated where the frame has 68).
        deform_scale: range of the control points' displacement (std, fraction of the crop).
        erode_prob: probability of eroding the mask (else it is dilated).
        erode_max, dilate_max: largest kernels (px at 317 px).
        feather: the weight ramp's width, a fraction of the mask's larger side.
        blend_size: range of the blending resolution (px at 317 px).
        post_prob: probability of the post-processing down-and-up scaling (per image).
        post_size: smallest post-processing size (px at 317 px).
        final_crop: (top, bottom, left, right) fractions cut at the end, or None.
        align: warp the foreground onto the background (a similarity).
        jpeg_prob, jpeg_quality: JPEG compression of the fake.
        seed: seed of the candidate subset.
    """

    def __init__(
        self,
        k: int = 30,
        candidates: int | None = 10_000,
        components: int = 32,
        shortlist: int = 120,
        hull_types: Sequence[str] = HULL_TYPES,
        forehead: bool = True,
        deform_scale: tuple[float, float] = (0.01, 0.15),
        erode_prob: float = 0.5,
        erode_max: int = 21,
        dilate_max: int = 5,
        feather: float = 0.2,
        blend_size: tuple[int, int] = (128, 317),
        post_prob: float = 0.5,
        post_size: int = 64,
        final_crop: tuple[float, float, float, float] | None = AUTHORS_CROP,
        align: bool = False,
        jpeg_prob: float = 0.0,
        jpeg_quality: tuple[int, int] = (60, 100),
        seed: int = 0,
    ) -> None:
        if k < 1 or shortlist < k:
            raise DFBenchError(f"need 1 <= k <= shortlist, got k={k}, shortlist={shortlist}")
        if candidates is not None and candidates < 2:
            raise DFBenchError(f"candidates must be None or at least 2, got {candidates}")
        unknown = sorted(set(hull_types) - set(HULL_TYPES))
        if not hull_types or unknown:
            raise DFBenchError(
                f"hull_types must be a non-empty subset of {HULL_TYPES}, got {hull_types}"
            )
        if final_crop is not None and (
            len(final_crop) != 4
            or min(final_crop) < 0
            or final_crop[0] + final_crop[1] >= 1
            or final_crop[2] + final_crop[3] >= 1
        ):
            raise DFBenchError(f"final_crop must be 4 fractions leaving a window, got {final_crop}")
        self.k, self.candidates, self.components, self.shortlist = (
            k,
            candidates,
            components,
            shortlist,
        )
        self.hull_types = tuple(hull_types)
        self.forehead = forehead
        self.deform_scale = tuple(deform_scale)
        self.erode_prob, self.erode_max, self.dilate_max = erode_prob, erode_max, dilate_max
        self.feather = feather
        self.blend_size = tuple(blend_size)
        self.post_prob, self.post_size = post_prob, post_size
        self.final_crop = None if final_crop is None else tuple(final_crop)
        self.align = align
        self.jpeg_prob, self.jpeg_quality = jpeg_prob, tuple(jpeg_quality)
        self.seed = seed
        self._pool: Pool | None = None

    def prepare(self, frames: pd.DataFrame, cache_dir: str | Path) -> None:
        """Build the pool from the real training frames (``label`` 1 rows are left out)."""
        self._pool = build_pool(
            frames, cache_dir, self.k, self.candidates, self.components, self.shortlist, self.seed
        )

    def _ready(self) -> Pool:
        if self._pool is None:
            raise RuntimeError(
                "BI has no pool of faces yet: call prepare(frames, cache_dir) with the real "
                "training frames first (the DeepfakeDataModule does this in setup('fit'))"
            )
        return self._pool

    def neighbours(self, crop_path: str) -> list[str]:
        """The precomputed foreground candidates of a pool face, nearest first."""
        pool = self._ready()
        if crop_path not in pool.index_of:
            raise KeyError(f"{crop_path} is not in the BI pool")
        i = pool.index_of[crop_path]
        return [pool.crop_paths[j] for j in pool.neighbours[i, : pool.counts[i]]]

    def pick_foreground(self, side: SideData, rng: np.random.Generator) -> dict[str, Any]:
        """The foreground for a background face: ``crop_path``, ``video_key``, ``landmarks``.

        A pool face draws from its precomputed neighbours; any other face is
        searched by its landmarks (and crop box, when given), leaving out its
        own video when the side data names one.
        """
        pool = self._ready()
        index = pool.index_of.get(str(side.get("crop_path")))
        if index is not None:
            choices = pool.neighbours[index, : pool.counts[index]]
        else:
            own = np.array([pool.video_of.get(str(side.get("video_key")), -1)])
            reference = reference_frame(pd.DataFrame([dict(side)]))
            found, count = pool.nearest(reference, own, self.k, self.shortlist)
            choices = found[0, : count[0]]
            if len(choices) == 0:
                raise DFBenchError("BI: no pool face of another video to blend with")
        chosen = int(choices[rng.integers(len(choices))])
        return {
            "crop_path": pool.crop_paths[chosen],
            "video_key": pool.video_keys[pool.video[chosen]],
            "landmarks": pool.landmarks[chosen],
        }

    def pair(
        self,
        image: np.ndarray,
        mask: np.ndarray,
        rng: np.random.Generator,
        side: SideData,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(real, fake, mask)`` for a background face (``side``: its landmarks, crop path, video).

        The real is the background after the post-processing draw and the
        final crop; the mask is the blend's weights, float32 in [0, 1].
        """
        points = side_landmarks(side)
        if not np.isfinite(points).all():
            where = f" of {side['crop_path']}" if "crop_path" in side else ""
            raise DFBenchError(f"BI: the background face{where} has no landmarks")
        foreground = self.pick_foreground(side, rng)
        source = self._read(foreground["crop_path"])
        height, width = image.shape[:2]
        if self.align:
            source = _similarity_warp(
                source, foreground["landmarks"], as_68(points), (height, width)
            )
        fake, weights = self._blend(image, source, points, rng)
        fake = down_up(fake, rng, self.post_size, self.post_prob)
        real = down_up(image, rng, self.post_size, self.post_prob)
        if self.jpeg_prob > 0 and rng.random() < self.jpeg_prob:
            quality = int(rng.integers(self.jpeg_quality[0], self.jpeg_quality[1] + 1))
            ok, data = cv2.imencode(".jpg", fake, [cv2.IMWRITE_JPEG_QUALITY, quality])
            fake = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if ok else fake
        if self.final_crop is not None:
            top, bottom, left, right = self.final_crop
            window = (
                slice(round(top * height), height - round(bottom * height)),
                slice(round(left * width), width - round(right * width)),
            )
            real, fake, weights = real[window], fake[window], weights[window]
        return real, fake, np.ascontiguousarray(weights)

    def _blend(
        self,
        background: np.ndarray,
        foreground: np.ndarray,
        points: np.ndarray,
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Steps 2-8: the blended face and its weights at the background's size."""
        height, width = background.shape[:2]
        fraction = int(rng.integers(self.blend_size[0], self.blend_size[1] + 1)) / REFERENCE_SIZE
        small = (max(8, round(width * fraction)), max(8, round(height * fraction)))
        bg = cv2.resize(background, small, interpolation=cv2.INTER_AREA)
        fg = cv2.resize(foreground, small, interpolation=cv2.INTER_AREA)
        scaled = (with_forehead(points) if self.forehead else as_68(points)) * np.float32(
            [small[0] / width, small[1] / height]
        )
        hull_type = self.hull_types[int(rng.integers(len(self.hull_types)))]
        hull = hull_mask(scaled, (small[1], small[0]), hull_type)
        region = piecewise_deform(hull, rng, self.deform_scale)
        # The authors' kernels are pixels of their blend at 128-317 px of a 317 px
        # crop; the same fraction of the face here is that size times crop / 317.
        kernel_scale = height / REFERENCE_SIZE
        if rng.random() < self.erode_prob:
            size = _odd_kernel(rng, self.erode_max, kernel_scale)
            region = cv2.erode(region, np.ones((size, size), np.uint8))
        else:
            size = _odd_kernel(rng, self.dilate_max, kernel_scale)
            region = cv2.dilate(region, np.ones((size, size), np.uint8))
        if not region.any():
            region = (hull >= 1 - 1e-4).astype(np.uint8)
        fg = colour_transfer(bg, fg, region)
        weights = feather_weights(region, self.feather)
        blended = bg.copy()
        x, y, w, h = cv2.boundingRect(region)
        box = (slice(y, y + h), slice(x, x + w))
        alpha = weights[box][..., None]
        mixed = alpha * fg[box].astype(np.float32) + (1 - alpha) * bg[box]
        blended[box] = mixed.astype(np.uint8)  # truncation, as the authors' integer image does
        fake = cv2.resize(blended, (width, height), interpolation=cv2.INTER_LINEAR)
        weights = cv2.resize(weights, (width, height), interpolation=cv2.INTER_LINEAR)
        return fake, np.clip(weights, 0, 1)

    def _read(self, crop_path: str) -> np.ndarray:
        path = self._ready().cache_dir / crop_path
        face = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if face is None:
            raise FileNotFoundError(f"BI foreground missing or unreadable: {path}")
        return cv2.cvtColor(face, cv2.COLOR_BGR2RGB)


def _similarity_warp(
    source: np.ndarray, source_points: np.ndarray, target_points: np.ndarray, shape: tuple[int, int]
) -> np.ndarray:
    """The foreground in the background's geometry (the ``align`` option)."""
    # The inlier threshold follows the face size: two faces' landmarks differ by
    # more than noise, and a few misplaced points must not tilt the fit.
    size = float((target_points.max(0) - target_points.min(0)).max())
    matrix, _ = cv2.estimateAffinePartial2D(
        as_68(source_points), target_points, ransacReprojThreshold=max(0.05 * size, 3.0)
    )
    if matrix is None:
        raise DFBenchError(
            "BI: no similarity maps the foreground's landmarks onto the background's"
        )
    return cv2.warpAffine(
        source,
        matrix,
        (shape[1], shape[0]),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REFLECT_101,
    )
