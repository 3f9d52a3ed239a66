"""Blended Images (BI, Face X-ray, Li et al. CVPR 2020) as a pseudo-fake generator.

A background face (the real) gets the inner face of another real person
pasted in: the foreground is a face of another video whose landmarks are
close to the background's, warped onto the background's geometry, colour
corrected and blended through a deformed, feathered hull mask. The mask is the
supervision: the Face X-ray target is ``4 M (1 - M)``.

Use it as the DataModule's ``pseudo_fake``; the DataModule calls
:meth:`BI.prepare` with the training reals (the pool of foregrounds) before
the first batch::

    data:
      init_args:
        pseudo_fake:
          class_path: src.augment.bi.BI
          init_args: {k: 100}

Pixel sizes (erosion, dilation and blur kernels) are given for a 256 px crop,
the size the reference implementations work at, and scale with the crop's
longer side; the deformation and the feather width are fractions of the crop
and of the face. Random crop and flip, the last step of the reference
pipeline, are left to the DataModule's ``train_augment`` recipes so that the
real and its fake get the same treatment there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from src.augment.generator import PairedGenerator, side_landmarks
from src.augment.landmarks import HULL_TYPES, as_68, hull_mask
from src.contracts import SideData

#: Landmarks that a similarity transform aligns (nose 27-35, eyes 36-47): they
#: move least with expression, so what remains differs in shape, pose and expression.
RIGID = np.arange(27, 48)

ColourTransfer = Literal["mean", "mean_std"] | None


def _complex(points: np.ndarray) -> np.ndarray:
    return points[..., 0].astype(np.float64) + 1j * points[..., 1].astype(np.float64)


def normalise_landmarks(landmarks: np.ndarray, template: np.ndarray | None = None) -> np.ndarray:
    """Landmarks of many faces in one canonical frame, for comparing shape and pose.

    Each face is mapped by the similarity (rotation, scale, shift) that best
    fits its nose and eye points to ``template`` (least squares); without a
    template, by the one that puts the eye centres at (-0.5, 0) and (0.5, 0).

    Args:
        landmarks: (N, 68, 2) points in crop pixels.
        template: (21, 2) canonical nose and eye points.

    Returns:
        (N, 68, 2) float32 points, in units of the canonical eye distance.
    """
    z = _complex(np.asarray(landmarks).reshape(-1, 68, 2))
    if template is None:
        left, right = z[:, 36:42].mean(1), z[:, 42:48].mean(1)
        scale = 1.0 / (right - left)
        mapped = (z - (0.5 * (left + right))[:, None]) * scale[:, None]
    else:
        target = _complex(template)
        target = target - target.mean()
        rigid = z[:, RIGID]
        centre = rigid.mean(1, keepdims=True)
        # The complex least-squares fit of z -> a z + b is the best similarity.
        source = rigid - centre
        a = (np.conj(source) * target).sum(1) / (np.abs(source) ** 2).sum(1)
        mapped = (z - centre) * a[:, None]
    return np.stack([mapped.real, mapped.imag], -1).astype(np.float32)


def _principal_axes(flat: np.ndarray, components: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and the ``components`` leading principal axes of flattened landmarks (rows)."""
    mean = flat.mean(0)
    if components is None or components >= flat.shape[1]:
        return mean, np.eye(flat.shape[1])
    centred = flat - mean
    _, vectors = np.linalg.eigh(centred.T @ centred)
    return mean, vectors[:, ::-1][:, :components].T.copy()


def _odd(rng: np.random.Generator, low: int, high: int, scale: float) -> int:
    """An odd kernel size drawn from ``low..high`` (odd) at 256 px, scaled to the crop."""
    size = low + 2 * int(rng.integers(0, (high - low) // 2 + 1))
    size = max(1, int(round(size * scale)))
    return size if size % 2 else size + 1


@dataclass
class _Pool:
    """The prepared pool: one entry per real training face."""

    cache_dir: Path
    crop_paths: list[str]
    video_keys: list[str]
    video: np.ndarray  # (N,) int video id
    landmarks: np.ndarray  # (N, 68, 2) float32, crop pixels
    template: np.ndarray  # (21, 2) canonical rigid points
    mean: np.ndarray  # (136,) mean normalised landmarks
    axes: np.ndarray  # (D, 136) leading principal axes
    tree: cKDTree  # over the candidates' shape features
    candidates: np.ndarray  # (C,) pool index of each tree point
    most_per_video: int  # most candidates any one video has
    neighbours: np.ndarray  # (N, k) pool indices, nearest first, -1 pads
    counts: np.ndarray  # (N,) valid entries of each row of neighbours
    index_of: dict[str, int]  # crop_path -> pool index
    video_of: dict[str, int]  # video_key -> video id


class BI(PairedGenerator):
    """Blended Images: a real face with the inner face of a similar real face pasted in.

    Per sample: pick one of the background's ``k`` nearest pool faces (of
    another video) at random, warp it onto the background by the similarity
    that maps its landmarks onto the background's, build the mask from the
    background's hull (a random type), deform it with a random piecewise
    smooth displacement, erode or dilate it, feather it, match the
    foreground's colour to the background's inside it, blend, and post-process
    the fake (down-sample and back, JPEG).

    Args:
        k: nearest neighbours kept per face, one of which is drawn per sample.
        candidates: foregrounds come from a random subset of this many pool
            faces (drawn with ``seed``; None: every face). The reference
            searches a fresh random subset per sample; a fixed subset bounds
            the cost of ``prepare`` on very large pools.
        components: principal components of the normalised landmarks that
            the neighbour search compares (None: all 136 coordinates). A
            KD-tree slows down sharply with dimensions; 32 components keep
            about 98 % of the exact 100 nearest and make ``prepare`` some 20
            times faster.
        hull_types: mask shapes to draw from (see
            :func:`src.augment.landmarks.hull_mask`).
        deform_scale: range of the deformation's strength: the standard
            deviation of the control points' displacement as a fraction of the
            crop size (the reference's piecewise affine scale).
        deform_grid: control points per side of the deformation grid.
        erode_prob: probability of eroding the mask; it is dilated otherwise.
        erode_kernel: odd range of the erosion kernel (px at 256 px).
        dilate_kernel: odd range of the dilation kernel (px at 256 px).
        feather: range of the alpha ramp's width, inward from the mask's
            edge, as a fraction of the face size.
        blur_kernel: odd range of the Gaussian that smooths the alpha (px at 256 px).
        colour_transfer: match the foreground to the background inside the
            mask: per-channel ``"mean"``, ``"mean_std"``, or None.
        downsample_prob: probability of down-sampling the fake and back.
        downsample_scale: range of the down-sampling factor.
        jpeg_prob: probability of JPEG-compressing the fake.
        jpeg_quality: range of the JPEG quality.
        seed: seed of the candidate subset.
    """

    def __init__(
        self,
        k: int = 100,
        candidates: int | None = None,
        components: int | None = 32,
        hull_types: Sequence[str] = HULL_TYPES,
        deform_scale: tuple[float, float] = (0.01, 0.15),
        deform_grid: int = 4,
        erode_prob: float = 0.5,
        erode_kernel: tuple[int, int] = (1, 21),
        dilate_kernel: tuple[int, int] = (1, 5),
        feather: tuple[float, float] = (0.02, 0.2),
        blur_kernel: tuple[int, int] = (3, 15),
        colour_transfer: ColourTransfer = "mean",
        downsample_prob: float = 0.5,
        downsample_scale: tuple[float, float] = (0.25, 0.75),
        jpeg_prob: float = 0.5,
        jpeg_quality: tuple[int, int] = (60, 100),
        seed: int = 0,
    ) -> None:
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        if candidates is not None and candidates < 2:
            raise ValueError(f"candidates must be None or at least 2, got {candidates}")
        unknown = sorted(set(hull_types) - set(HULL_TYPES))
        if not hull_types or unknown:
            raise ValueError(
                f"hull_types must be a non-empty subset of {HULL_TYPES}, got {hull_types}"
            )
        if colour_transfer not in ("mean", "mean_std", None):
            raise ValueError(
                f"colour_transfer must be 'mean', 'mean_std' or None, got {colour_transfer!r}"
            )
        for name, (low, high) in (
            ("erode_kernel", erode_kernel),
            ("dilate_kernel", dilate_kernel),
            ("blur_kernel", blur_kernel),
        ):
            if not (low % 2 == 1 and high % 2 == 1 and 1 <= low <= high):
                raise ValueError(f"{name} must be an odd range low <= high, got {(low, high)}")
        if components is not None and components < 1:
            raise ValueError(f"components must be None or at least 1, got {components}")
        if deform_grid < 2:
            raise ValueError(f"deform_grid must be at least 2, got {deform_grid}")
        self.k = k
        self.candidates = candidates
        self.components = components
        self.hull_types = tuple(hull_types)
        self.deform_scale = tuple(deform_scale)
        self.deform_grid = deform_grid
        self.erode_prob = erode_prob
        self.erode_kernel = tuple(erode_kernel)
        self.dilate_kernel = tuple(dilate_kernel)
        self.feather = tuple(feather)
        self.blur_kernel = tuple(blur_kernel)
        self.colour_transfer = colour_transfer
        self.downsample_prob = downsample_prob
        self.downsample_scale = tuple(downsample_scale)
        self.jpeg_prob = jpeg_prob
        self.jpeg_quality = tuple(jpeg_quality)
        self.seed = seed
        self._pool: _Pool | None = None

    # ------------------------------------------------------------------ pool

    def prepare(self, frames: pd.DataFrame, cache_dir: str | Path) -> None:
        """Build the pool of foregrounds from the training reals and their neighbours.

        Rows labelled fake (``label`` 1) are left out. Faces are compared by
        their normalised landmarks (:func:`normalise_landmarks`, projected on
        their ``components`` leading principal axes); the ``k`` nearest faces
        of other videos are found once, with a KD-tree. Images stay on disk
        until a face is drawn as a foreground.

        Args:
            frames: frame-table rows with ``crop_path``, ``video_key`` and
                ``landmarks`` (68 x 2, crop pixels).
            cache_dir: the root ``crop_path`` is relative to.

        Raises:
            ValueError: no real faces, faces without landmarks, or faces of
                fewer than two videos (a face is never blended with its own video).
        """
        missing = [c for c in ("crop_path", "video_key", "landmarks") if c not in frames.columns]
        if missing:
            raise ValueError(f"BI.prepare: the frames lack columns {missing}")
        if "label" in frames.columns:
            frames = frames[frames["label"] == 0]
        frames = frames.drop_duplicates("crop_path").reset_index(drop=True)
        if frames.empty:
            raise ValueError("BI.prepare: no real faces to build the pool from")
        try:
            landmarks = np.stack([as_68(v) for v in frames["landmarks"]])
        except ValueError as error:
            raise ValueError(f"BI.prepare: every face needs 68 landmarks ({error})") from None
        finite = np.isfinite(landmarks).all((1, 2))
        if not finite.all():
            raise ValueError(
                f"BI.prepare: {int((~finite).sum())} of {len(frames)} faces have no landmarks "
                f"(e.g. {frames['crop_path'][int(np.argmin(finite))]}); BI needs them for every "
                "training face, so drop those frames from the table"
            )
        crop_paths = frames["crop_path"].astype(str).tolist()
        video_keys, video = np.unique(
            frames["video_key"].astype(str).to_numpy(), return_inverse=True
        )
        if len(video_keys) < 2:
            raise ValueError(
                f"BI.prepare: the pool holds faces of {len(video_keys)} video(s); BI pairs faces "
                "of different videos, so it needs real training faces from at least two"
            )

        template = normalise_landmarks(landmarks)[:, RIGID].mean(0)
        flat = normalise_landmarks(landmarks, template).reshape(len(frames), -1).astype(np.float64)
        mean, axes = _principal_axes(flat, self.components)
        features = (flat - mean) @ axes.T
        candidates = np.arange(len(frames))
        if self.candidates is not None and self.candidates < len(frames):
            subset = np.random.default_rng(self.seed).choice(
                len(frames), self.candidates, replace=False
            )
            candidates = np.sort(subset)
        tree = cKDTree(features[candidates])
        per_video = np.bincount(video[candidates], minlength=len(video_keys))

        neighbours = np.full((len(frames), self.k), -1, np.int32)
        counts = np.zeros(len(frames), np.int64)
        own = per_video[video]
        # Asking for k more than a video's own candidates leaves k of other videos
        # however close its frames are to each other; videos with as many
        # candidates share one query.
        for extra in np.unique(own):
            same = np.flatnonzero(own == extra)
            for rows in np.array_split(same, -(-len(same) // 8192)):  # bounds the memory
                found = self._query(tree, features[rows], self.k + int(extra), workers=-1)
                found = candidates[found]
                valid = video[found] != video[rows, None]
                first = np.argsort(~valid, axis=1, kind="stable")[:, : self.k]
                chosen = np.take_along_axis(found, first, 1)
                kept = np.take_along_axis(valid, first, 1)
                neighbours[rows, : chosen.shape[1]] = np.where(kept, chosen, -1)
                counts[rows] = kept.sum(1)
        if (counts == 0).any():
            lonely = crop_paths[int(np.argmin(counts))]
            raise ValueError(
                f"BI.prepare: no candidate of another video for {lonely}; raise `candidates` "
                "or add real training videos"
            )
        self._pool = _Pool(
            cache_dir=Path(cache_dir),
            crop_paths=crop_paths,
            video_keys=[str(key) for key in video_keys],
            video=video.astype(np.int64),
            landmarks=landmarks.astype(np.float32),
            template=template,
            mean=mean,
            axes=axes,
            tree=tree,
            candidates=candidates,
            most_per_video=int(per_video.max()),
            neighbours=neighbours,
            counts=counts,
            index_of={path: i for i, path in enumerate(crop_paths)},
            video_of={str(key): i for i, key in enumerate(video_keys)},
        )

    @staticmethod
    def _query(tree: cKDTree, points: np.ndarray, k: int, workers: int = 1) -> np.ndarray:
        k = min(k, tree.n)
        _, found = tree.query(points, k=k, workers=workers)
        return np.asarray(found, np.int64).reshape(len(points), k)

    def _ready(self) -> _Pool:
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

    def pick_foreground(
        self, landmarks: np.ndarray, rng: np.random.Generator, row: dict | None = None
    ) -> dict[str, Any]:
        """Draw the foreground for a background face.

        A pool face (found by ``row["crop_path"]``) draws from its precomputed
        neighbours; any other face is looked up in the KD-tree by its landmarks,
        leaving out faces of ``row["video_key"]`` when the row gives one.

        Returns:
            The foreground's ``crop_path``, ``video_key`` and ``landmarks``.
        """
        pool = self._ready()
        row = {} if row is None else row
        index = pool.index_of.get(str(row.get("crop_path")))
        if index is not None:
            choices = pool.neighbours[index, : pool.counts[index]]
        else:
            own = pool.video_of.get(str(row.get("video_key")), -1)
            flat = normalise_landmarks(as_68(landmarks)[None], pool.template).reshape(1, -1)
            features = (flat - pool.mean) @ pool.axes.T
            extra = pool.most_per_video if own >= 0 else 0
            found = pool.candidates[self._query(pool.tree, features, self.k + extra)[0]]
            choices = found[pool.video[found] != own][: self.k]
            if len(choices) == 0:
                raise ValueError("BI: no pool face of another video to blend with")
        chosen = int(choices[rng.integers(len(choices))])
        return {
            "crop_path": pool.crop_paths[chosen],
            "video_key": pool.video_keys[pool.video[chosen]],
            "landmarks": pool.landmarks[chosen],
        }

    # ---------------------------------------------------------------- sample

    def pair(
        self,
        image: np.ndarray,
        mask: np.ndarray,
        rng: np.random.Generator,
        side: SideData,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A real face, its BI fake and the blend mask.

        Args:
            image: the background face, RGB uint8 H x W x 3.
            mask: its mask (unused: a real's is empty).
            rng: the sample's generator; the output is a function of its state.
            side: the background's side data: ``landmarks`` (68 x 2, crop
                pixels), ``crop_path`` and ``video_key`` to find its neighbours
                and keep its own video out.

        Returns:
            ``(real, fake, mask)``: the image unchanged, the fake (RGB uint8, the
            same size), and the blend weights used, float32 H x W in [0, 1].
        """
        row = side
        points = as_68(side_landmarks(side))
        if not np.isfinite(points).all():
            where = f" of {row['crop_path']}" if row is not None and "crop_path" in row else ""
            raise ValueError(f"BI: the background face{where} has no landmarks")
        foreground = self.pick_foreground(points, rng, row)
        source = self._read(foreground["crop_path"])
        warped = self._warp(source, foreground["landmarks"], points, image.shape[:2])
        mask = self.mask(points, image.shape[:2], rng)
        fake = self._blend(image, warped, mask)
        return image, self._post(fake, rng), mask

    def _read(self, crop_path: str) -> np.ndarray:
        path = self._ready().cache_dir / crop_path
        face = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if face is None:
            raise FileNotFoundError(f"BI foreground missing or unreadable: {path}")
        return cv2.cvtColor(face, cv2.COLOR_BGR2RGB)

    @staticmethod
    def _warp(
        source: np.ndarray,
        source_points: np.ndarray,
        target_points: np.ndarray,
        shape: tuple[int, int],
    ) -> np.ndarray:
        """The foreground in the background's geometry (a similarity fitted to the landmarks)."""
        # Two faces' landmarks differ by more than noise, so the inlier threshold
        # follows the face size: most points fit, a few misplaced ones cannot
        # tilt the result. OpenCV seeds RANSAC itself, so the fit is deterministic.
        size = float((target_points.max(0) - target_points.min(0)).max())
        matrix, _ = cv2.estimateAffinePartial2D(
            source_points, target_points, ransacReprojThreshold=max(0.05 * size, 3.0)
        )
        if matrix is None:
            matrix, _ = cv2.estimateAffinePartial2D(source_points, target_points, method=cv2.LMEDS)
        if matrix is None:
            raise ValueError(
                "BI: no similarity maps the foreground's landmarks onto the background's"
            )
        return cv2.warpAffine(
            source,
            matrix,
            (shape[1], shape[0]),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REFLECT_101,
        )

    def mask(
        self, landmarks: np.ndarray, shape: tuple[int, int], rng: np.random.Generator
    ) -> np.ndarray:
        """The blend weights for a background face: hull, deform, erode/dilate, feather.

        Args:
            landmarks: the background's 68 x 2 landmarks.
            shape: the background's (height, width).
            rng: the sample's generator.

        Returns:
            float32 H x W in [0, 1].
        """
        height, width = shape
        scale = max(shape) / 256.0
        hull_type = self.hull_types[int(rng.integers(len(self.hull_types)))]
        hull = (hull_mask(landmarks, shape, hull_type) > 0).astype(np.uint8)

        # Piecewise smooth deformation: random control-point displacements
        # (std = strength x crop size), interpolated bilinearly between the points.
        strength = rng.uniform(*self.deform_scale)
        grid = self.deform_grid
        shift = rng.normal(0.0, strength, (grid, grid, 2)) * (width, height)
        shift = shift.astype(np.float32)
        field = cv2.resize(shift, (width, height), interpolation=cv2.INTER_LINEAR)
        field[..., 0] += np.arange(width, dtype=np.float32)
        field[..., 1] += np.arange(height, dtype=np.float32)[:, None]
        deformed = cv2.remap(
            hull,
            field,
            None,
            cv2.INTER_NEAREST,
            borderMode=cv2.BORDER_CONSTANT,
        )

        if rng.random() < self.erode_prob:
            size = _odd(rng, *self.erode_kernel, scale)
            if size > 1:
                deformed = cv2.erode(deformed, np.ones((size, size), np.uint8))
        else:
            size = _odd(rng, *self.dilate_kernel, scale)
            if size > 1:
                deformed = cv2.dilate(deformed, np.ones((size, size), np.uint8))
        # A deformation or erosion that all but wipes the face out would give a
        # "fake" that equals its real; those fall back to the plain hull.
        if cv2.countNonZero(deformed) < 0.25 * cv2.countNonZero(hull):
            deformed = hull

        # Feathered alpha: a ramp over the distance to the mask's edge (what the
        # reference computes per pixel from polygon distances), then a blur.
        corners = landmarks.max(0) - landmarks.min(0)
        ramp = max(rng.uniform(*self.feather) * float(corners.max()), 1.0)
        distance = cv2.distanceTransform(deformed, cv2.DIST_L2, cv2.DIST_MASK_5)
        alpha = np.minimum(distance * (1.0 / ramp), 1.0)
        size = _odd(rng, *self.blur_kernel, scale)
        if size > 1:
            alpha = cv2.GaussianBlur(alpha, (size, size), 0)
        return np.clip(alpha, 0.0, 1.0, out=alpha)

    def _blend(
        self, background: np.ndarray, foreground: np.ndarray, alpha: np.ndarray
    ) -> np.ndarray:
        """``alpha * colour-corrected foreground + (1 - alpha) * background``."""
        x, y, w, h = cv2.boundingRect((alpha > 0).view(np.uint8))
        fake = background.copy()
        if w == 0 or h == 0:
            return fake
        # Everything outside the mask's box is the background; work inside it only.
        box = (slice(y, y + h), slice(x, x + w))
        bg, fg, a = background[box], foreground[box], alpha[box]
        if self.colour_transfer is not None:
            inside = (a > 0).view(np.uint8)
            mean_fg, std_fg = cv2.meanStdDev(fg, mask=inside)
            mean_bg, std_bg = cv2.meanStdDev(bg, mask=inside)
            gain = np.ones(3)
            if self.colour_transfer == "mean_std":
                gain = std_bg[:, 0] / np.maximum(std_fg[:, 0], 1e-3)
            matrix = np.zeros((3, 4), np.float32)
            matrix[:, :3] = np.diag(gain)
            matrix[:, 3] = mean_bg[:, 0] - gain * mean_fg[:, 0]
            fg = cv2.transform(fg, matrix)
        # Weights (a, 1 - a) per pixel; where a is 0 the rounding gives back bg exactly.
        fake[box] = cv2.blendLinear(fg, bg, a, 1.0 - a)
        return fake

    def _post(self, fake: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Down-sample and back (p ``downsample_prob``), then JPEG (p ``jpeg_prob``)."""
        height, width = fake.shape[:2]
        if rng.random() < self.downsample_prob:
            factor = rng.uniform(*self.downsample_scale)
            small = (max(1, round(width * factor)), max(1, round(height * factor)))
            fake = cv2.resize(fake, small, interpolation=cv2.INTER_AREA)
            fake = cv2.resize(fake, (width, height), interpolation=cv2.INTER_LINEAR)
        if rng.random() < self.jpeg_prob:
            quality = int(rng.integers(self.jpeg_quality[0], self.jpeg_quality[1] + 1))
            # JPEG's colour conversion assumes BGR; encoding RGB would subsample the wrong chroma.
            ok, data = cv2.imencode(
                ".jpg", cv2.cvtColor(fake, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
            )
            if ok:
                fake = cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        return fake
