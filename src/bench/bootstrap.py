"""Bootstrap intervals of the AUC that resample whole videos.

Frames of one video share a face, a background and a manipulation, so they
are far from independent: resampling frames would make an interval look
much narrower than the test set justifies. Here videos are drawn with
replacement and a drawn video brings all its frames (frame level) or its
mean score (video level).

Every function takes one test set's per-frame predictions (columns
``video_key``, ``label``, ``score``; see :data:`src.bench.schema.PREDICTION_COLUMNS`).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import sparse

from src.metrics import video_scores


def _video_histograms(
    predictions: pd.DataFrame, level: str
) -> tuple[sparse.csr_matrix, sparse.csr_matrix]:
    """Per-video positive and negative counts over the sorted distinct scores.

    Returns two (K, V) sparse matrices (K distinct scores ascending, V videos in
    sorted video-key order): entry (k, v) counts the fake (resp. real) samples
    of video v with the k-th smallest score. At video level each video is one
    sample scored by the mean of its frames.
    """
    if predictions.empty:
        raise ValueError("no predictions to bootstrap")
    if "set" in predictions.columns and predictions["set"].nunique() > 1:
        raise ValueError("predictions span several test sets; select one first")
    keys = predictions["video_key"].to_numpy()
    scores = predictions["score"].to_numpy(dtype=np.float64)
    labels = predictions["label"].to_numpy().astype(np.int64)
    if level == "video":
        _, scores, labels = video_scores(scores, labels, keys, "mean")
        video = np.arange(scores.size)
    elif level == "frame":
        _, video = np.unique(keys, return_inverse=True)
    else:
        raise ValueError(f"level must be 'frame' or 'video', got {level!r}")
    n_videos = int(video.max()) + 1
    distinct, score_idx = np.unique(scores, return_inverse=True)
    shape = (distinct.size, n_videos)

    def histogram(mask: np.ndarray) -> sparse.csr_matrix:
        ones = np.ones(int(mask.sum()))
        # coo -> csr sums the duplicate (score, video) entries into counts.
        return sparse.coo_matrix((ones, (score_idx[mask], video[mask])), shape=shape).tocsr()

    return histogram(labels == 1), histogram(labels == 0)


def n_videos(predictions: pd.DataFrame) -> int:
    """The number of distinct videos, i.e. the width of a counts matrix."""
    return int(predictions["video_key"].nunique())


def draw_video_counts(n: int, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """How often each of ``n`` videos is drawn in each of ``n_resamples`` bootstrap samples.

    Returns:
        An (n_resamples, n) integer matrix whose rows sum to ``n``.
    """
    return rng.multinomial(n, np.full(n, 1.0 / n), size=n_resamples)


def auc_resamples(
    predictions: pd.DataFrame, level: str, counts: np.ndarray, max_cells: int = 4_000_000
) -> np.ndarray:
    """AUC of each bootstrap sample given how often each video was drawn.

    Each AUC is the Mann-Whitney statistic with ties counting half, computed
    from histograms: with ``H+`` and ``H-`` the drawn positive and negative
    counts at each distinct score, a positive at score s beats the negatives
    below s and ties those at s, so
    ``AUC = sum_s H+(s) (H-(<s) + H-(s)/2) / (n+ n-)``. The histograms of all
    samples are one sparse-by-dense product with ``counts``; samples are taken
    in chunks only to bound memory (chunk x distinct scores <= ``max_cells``).

    Args:
        predictions: one test set's per-frame predictions.
        level: ``"frame"`` or ``"video"``.
        counts: (R, V) draws per video, videos in sorted ``video_key`` order
            (see :func:`draw_video_counts`).
        max_cells: memory bound of one chunk.

    Returns:
        R AUCs as fractions; NaN for a sample holding one class only.
    """
    positives, negatives = _video_histograms(predictions, level)
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 2 or counts.shape[1] != positives.shape[1]:
        raise ValueError(f"counts must have shape (R, {positives.shape[1]}), got {counts.shape}")
    chunk = max(1, max_cells // max(1, positives.shape[0]))
    aucs = np.empty(counts.shape[0])
    for start in range(0, counts.shape[0], chunk):
        drawn = counts[start : start + chunk].T  # (V, r)
        pos = positives @ drawn  # (K, r): drawn positives at each distinct score
        neg = negatives @ drawn
        below = np.cumsum(neg, axis=0) - neg
        wins = np.sum(pos * (below + 0.5 * neg), axis=0)
        pairs = pos.sum(axis=0) * neg.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            aucs[start : start + chunk] = np.where(pairs > 0, wins / pairs, np.nan)
    return aucs


def percentile_interval(aucs: np.ndarray, confidence: float) -> tuple[float, float]:
    """The central ``confidence`` interval of bootstrap AUCs, ignoring one-class samples.

    Returns:
        ``(low, high)``; NaN if no sample had both classes.
    """
    aucs = aucs[~np.isnan(aucs)]
    if aucs.size == 0:
        return math.nan, math.nan
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(aucs, [tail, 1.0 - tail])
    return float(low), float(high)


def bootstrap_auc(
    predictions: pd.DataFrame,
    level: str,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the AUC, resampling whole videos.

    Args:
        predictions: one test set's per-frame predictions.
        level: ``"frame"`` or ``"video"``.
        n_resamples: bootstrap samples.
        confidence: coverage of the interval.
        seed: seed of the draws (the same seed gives the same interval).

    Returns:
        ``(low, high)`` as fractions in [0, 1]; NaN if no sample had both classes.
    """
    rng = np.random.default_rng(seed)
    counts = draw_video_counts(n_videos(predictions), n_resamples, rng)
    return percentile_interval(auc_resamples(predictions, level, counts), confidence)
