"""BI's pool of foreground faces and each face's nearest neighbours (LAA-Net's search).

LAA-Net's BI code matches faces by landmarks before training: for every
real training face it draws 10,000 random pool faces, drops those of the
same video, and keeps the 30 whose landmarks are nearest by the *sum of the
68 points' Euclidean distances*; during training one of the 30 is drawn per
sample. Its crops all have one size (317 px), so pixel distances compare
faces in the same frame. Here:

* landmarks are compared in the crop's frame scaled to 317 px (crops of the
  frame cache differ in size; the crop's box in the frame gives its size);
* the 10,000 candidates are one random subset of the pool drawn once (with
  ``seed``; the authors draw a fresh subset per face), or the whole pool when
  it is smaller;
* the search is exact in the authors' metric: a KD-tree over the candidates'
  leading principal components proposes ``shortlist`` faces of other videos
  per face, which are then ranked by the sum of point distances. With a
  shortlist four times ``k`` the 30 found are the exact 30 in practice (a
  test checks it against brute force).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from src.augment.landmarks import as_68
from src.errors import DFBenchError

#: The authors' crop size, the frame landmarks are compared in.
REFERENCE_SIZE = 317


def summed_distances(query: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Sum over the 68 points of the Euclidean distance: (Q, 68, 2) x (Q, C, 68, 2) -> (Q, C)."""
    return np.linalg.norm(candidates - query[:, None], axis=-1).sum(-1)


def reference_frame(frames: pd.DataFrame) -> np.ndarray:
    """Each face's 68 landmarks in its crop scaled to 317 px (N, 68, 2)."""
    landmarks = np.stack([as_68(v) for v in frames["landmarks"]]).astype(np.float32)
    if {"crop_x0", "crop_y0", "crop_x1", "crop_y1"} <= set(frames.columns):
        width = (frames["crop_x1"] - frames["crop_x0"]).to_numpy(np.float32)
        height = (frames["crop_y1"] - frames["crop_y0"]).to_numpy(np.float32)
        valid = (width > 0) & (height > 0)
        scale = np.where(valid[:, None], REFERENCE_SIZE / np.stack([width, height], 1), 1.0)
        landmarks = landmarks * scale[:, None, :].astype(np.float32)
    return landmarks


def _principal_axes(flat: np.ndarray, components: int) -> tuple[np.ndarray, np.ndarray]:
    mean = flat.mean(0)
    if components >= flat.shape[1]:
        return mean, np.eye(flat.shape[1])
    centred = flat - mean
    _, vectors = np.linalg.eigh(centred.T @ centred)
    return mean, vectors[:, ::-1][:, :components].T.copy()


@dataclass
class Pool:
    """The prepared pool: one entry per real training face."""

    cache_dir: Path
    crop_paths: list[str]
    video_keys: list[str]
    video: np.ndarray  # (N,) int video id
    landmarks: np.ndarray  # (N, 68, 2) float32, crop pixels
    reference: np.ndarray  # (N, 68, 2) float32, the 317 px frame
    mean: np.ndarray  # (136,) of the flattened reference landmarks
    axes: np.ndarray  # (D, 136) leading principal axes
    tree: cKDTree  # over the candidates' projections
    candidates: np.ndarray  # (C,) pool index of each tree point
    most_per_video: int  # most candidates any one video has
    neighbours: np.ndarray  # (N, k) pool indices, nearest first, -1 pads
    counts: np.ndarray  # (N,) valid entries of each row of neighbours
    index_of: dict[str, int]  # crop_path -> pool index
    video_of: dict[str, int]  # video_key -> video id

    def project(self, reference: np.ndarray) -> np.ndarray:
        return (reference.reshape(len(reference), -1) - self.mean) @ self.axes.T

    def nearest(
        self, reference: np.ndarray, own: np.ndarray, k: int, shortlist: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest candidates of other videos (pool indices, -1 pads) and their count."""
        ask = min(shortlist + self.most_per_video, self.tree.n)
        _, found = self.tree.query(self.project(reference), k=ask, workers=-1)
        found = self.candidates[np.asarray(found, np.int64).reshape(len(reference), ask)]
        other = self.video[found] != own[:, None]
        distance = summed_distances(reference, self.reference[found])
        distance = np.where(other, distance, np.inf)
        order = np.argsort(distance, axis=1, kind="stable")[:, :k]
        chosen = np.take_along_axis(found, order, 1)
        kept = np.isfinite(np.take_along_axis(distance, order, 1))
        return np.where(kept, chosen, -1), kept.sum(1)


def build_pool(
    frames: pd.DataFrame,
    cache_dir: str | Path,
    k: int,
    candidates: int | None,
    components: int,
    shortlist: int,
    seed: int,
) -> Pool:
    """The pool of real faces and each face's ``k`` nearest faces of other videos.

    Raises:
        ValueError: no real faces, faces without landmarks, or faces of fewer
            than two videos (a face is never blended with its own video).
    """
    missing = [c for c in ("crop_path", "video_key", "landmarks") if c not in frames.columns]
    if missing:
        raise DFBenchError(f"BI.prepare: the frames lack columns {missing}")
    if "label" in frames.columns:
        frames = frames[frames["label"] == 0]
    frames = frames.drop_duplicates("crop_path").reset_index(drop=True)
    if frames.empty:
        raise DFBenchError("BI.prepare: no real faces to build the pool from")
    try:
        landmarks = np.stack([as_68(v) for v in frames["landmarks"]])
    except ValueError as error:
        raise DFBenchError(f"BI.prepare: every face needs 68 landmarks ({error})") from None
    finite = np.isfinite(landmarks).all((1, 2))
    if not finite.all():
        raise DFBenchError(
            f"BI.prepare: {int((~finite).sum())} of {len(frames)} faces have no landmarks "
            f"(e.g. {frames['crop_path'][int(np.argmin(finite))]}); BI needs them for every "
            "training face, so drop those frames from the table"
        )
    crop_paths = frames["crop_path"].astype(str).tolist()
    video_keys, video = np.unique(frames["video_key"].astype(str).to_numpy(), return_inverse=True)
    if len(video_keys) < 2:
        raise DFBenchError(
            f"BI.prepare: the pool holds faces of {len(video_keys)} video(s); BI pairs faces "
            "of different videos, so it needs real training faces from at least two"
        )
    reference = reference_frame(frames)
    chosen = np.arange(len(frames))
    if candidates is not None and candidates < len(frames):
        subset = np.random.default_rng(seed).choice(len(frames), candidates, replace=False)
        chosen = np.sort(subset)
    mean, axes = _principal_axes(reference[chosen].reshape(len(chosen), -1), components)
    tree = cKDTree((reference[chosen].reshape(len(chosen), -1) - mean) @ axes.T)
    per_video = np.bincount(video[chosen], minlength=len(video_keys))
    pool = Pool(
        cache_dir=Path(cache_dir),
        crop_paths=crop_paths,
        video_keys=[str(key) for key in video_keys],
        video=video.astype(np.int64),
        landmarks=landmarks.astype(np.float32),
        reference=reference,
        mean=mean,
        axes=axes,
        tree=tree,
        candidates=chosen,
        most_per_video=int(per_video.max()),
        neighbours=np.full((len(frames), k), -1, np.int64),
        counts=np.zeros(len(frames), np.int64),
        index_of={path: i for i, path in enumerate(crop_paths)},
        video_of={str(key): i for i, key in enumerate(video_keys)},
    )
    # Chunks bound the memory of the shortlist's point arrays.
    for rows in np.array_split(np.arange(len(frames)), -(-len(frames) // 2048)):
        found, count = pool.nearest(reference[rows], pool.video[rows], k, shortlist)
        pool.neighbours[rows, : found.shape[1]] = found
        pool.counts[rows] = count
    if (pool.counts == 0).any():
        lonely = crop_paths[int(np.argmin(pool.counts))]
        raise DFBenchError(
            f"BI.prepare: no candidate of another video for {lonely}; raise `candidates` "
            "or add real training videos"
        )
    return pool
