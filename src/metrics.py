"""Frame- and video-level detection metrics, correct under DDP.

Conventions (``docs/protocol.md`` has the whole evaluation protocol):

* a score is P(fake) in [0, 1]; a label is 1 for fake, 0 for real;
* ACC thresholds the score at 0.5, and a score of exactly 0.5 counts as *real*
  (``score > threshold``), the same as rounding a sigmoid output;
* AUC treats tied scores as scikit-learn's ``roc_auc_score`` does (half a
  concordant pair); AP is scikit-learn's step-wise ``average_precision_score``;
* EER is read off the ROC curve where the false-positive and false-negative
  rates cross, interpolating linearly between the two neighbouring points;
* a video's score is the mean of its frames' scores by default (``"mean"``);
  ``"mean_logit"`` averages logits instead and ``"max"`` takes the maximum;
* every value is a fraction in [0, 1]; the tables multiply by 100;
* pixel level (detectors that output a mask; :class:`PixelMetric`): a pixel
  is manipulated where the true mask is above 0.5; pixel AUC pools every pixel
  of every frame with a known mask (reals included, all pristine), from
  per-frame histograms of the logits (exact up to a reported bound); IoU and
  F1 threshold the prediction at 0.5 and are averaged over fake frames.

The metrics are computed here with numpy rather than by calling scikit-learn,
so that the tests can check them against scikit-learn as an independent
reference.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
from scipy.stats import rankdata
from torchmetrics import Metric

from src.errors import DFBenchError

VideoScore = Literal["mean", "mean_logit", "max"]

FRAME_KEYS = ("frame_auc", "frame_ap", "frame_acc", "frame_eer", "real_acc", "fake_acc")
VIDEO_KEYS = ("video_auc", "video_ap", "video_acc", "video_eer")


def _check_inputs(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels).reshape(-1)
    if scores.shape != labels.shape:
        raise ValueError(f"scores and labels differ in length: {scores.size} vs {labels.size}")
    if scores.size == 0:
        raise DFBenchError("no predictions to compute metrics on")
    if not np.isfinite(scores).all():
        raise ValueError("scores contain NaN or infinity")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError(f"labels must be 0 (real) or 1 (fake), got {np.unique(labels)[:10]}")
    return scores, labels.astype(np.int64)


def _both_classes(labels: np.ndarray, what: str) -> bool:
    if labels.min() == labels.max():
        only = "fake" if labels[0] == 1 else "real"
        warnings.warn(
            f"{what}: every sample is {only}; AUC, AP and EER are undefined and reported as NaN",
            RuntimeWarning,
            stacklevel=3,
        )
        return False
    return True


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve via the Mann-Whitney U statistic (ties count half)."""
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    ranks = rankdata(scores, method="average")
    return float((ranks[labels == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _roc_points(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative true and false positives at each distinct threshold, high to low."""
    order = np.argsort(-scores, kind="stable")
    sorted_scores, sorted_labels = scores[order], labels[order]
    last_of_run = np.r_[np.flatnonzero(np.diff(sorted_scores)), sorted_scores.size - 1]
    tps = np.cumsum(sorted_labels)[last_of_run]
    fps = last_of_run + 1 - tps
    return tps, fps


def average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """Sum over thresholds of precision times the recall gained there."""
    tps, fps = _roc_points(scores, labels)
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


def equal_error_rate(scores: np.ndarray, labels: np.ndarray) -> float:
    """The rate at which false positives and false negatives are equally likely."""
    tps, fps = _roc_points(scores, labels)
    fpr = np.r_[0.0, fps / fps[-1]]
    fnr = np.r_[1.0, 1.0 - tps / tps[-1]]
    gap = fnr - fpr  # decreasing from 1 to -1 along the curve
    i = int(np.argmax(gap <= 0))
    if gap[i] == 0:
        return float(fpr[i])
    t = gap[i - 1] / (gap[i - 1] - gap[i])
    return float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))


def _binary_metrics(scores: np.ndarray, labels: np.ndarray, threshold: float, what: str) -> dict:
    accuracy = float(np.mean((scores > threshold) == labels))
    if not _both_classes(labels, what):
        return {"auc": float("nan"), "ap": float("nan"), "acc": accuracy, "eer": float("nan")}
    return {
        "auc": roc_auc(scores, labels),
        "ap": average_precision(scores, labels),
        "acc": accuracy,
        "eer": equal_error_rate(scores, labels),
    }


def video_scores(
    scores: np.ndarray,
    labels: np.ndarray,
    video_ids: np.ndarray,
    how: VideoScore = "mean",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Aggregate frame scores per video.

    Returns:
        ``(unique video ids, video scores, video labels)``, sorted by video id.

    Raises:
        ValueError: if one video id carries both labels (its frames were grouped
            under a key that is not unique).
    """
    ids, inverse, counts = np.unique(video_ids, return_inverse=True, return_counts=True)
    fake_frames = np.bincount(inverse, weights=labels, minlength=ids.size)
    mixed = (fake_frames > 0) & (fake_frames < counts)
    if mixed.any():
        raise DFBenchError(
            f"video ids {ids[mixed][:5].tolist()} hold both real and fake frames; "
            "video keys must be unique across datasets and methods"
        )
    if how == "mean":
        aggregated = np.bincount(inverse, weights=scores, minlength=ids.size) / counts
    elif how == "mean_logit":
        p = np.clip(scores, 1e-7, 1 - 1e-7)
        mean_logit = np.bincount(inverse, weights=np.log(p / (1 - p)), minlength=ids.size) / counts
        aggregated = 1.0 / (1.0 + np.exp(-mean_logit))
    elif how == "max":
        aggregated = np.full(ids.size, -np.inf)
        np.maximum.at(aggregated, inverse, scores)
    else:
        raise DFBenchError(f"unknown video score {how!r}; choose mean, mean_logit or max")
    return ids, aggregated, (fake_frames > 0).astype(np.int64)


def compute_metrics(
    scores: Any,
    labels: Any,
    video_ids: Any = None,
    *,
    threshold: float = 0.5,
    video_score: VideoScore = "mean",
) -> dict[str, float]:
    """Frame-level (and, given ``video_ids``, video-level) AUC, AP, ACC and EER.

    Args:
        scores: P(fake) per frame, shape (N,).
        labels: 1 = fake, 0 = real, shape (N,).
        video_ids: the video each frame belongs to (any hashable numeric or
            string ids), shape (N,); enables the ``video_*`` keys.
        threshold: score above which a frame or video is called fake.
        video_score: how frame scores become a video score.

    Returns:
        ``frame_auc, frame_ap, frame_acc, frame_eer, real_acc, fake_acc`` and,
        with video ids, ``video_auc, video_ap, video_acc, video_eer``; fractions
        in [0, 1], NaN where a quantity is undefined (one class only).
    """
    scores, labels = _check_inputs(scores, labels)
    frame = _binary_metrics(scores, labels, threshold, "frame level")
    called_fake = scores > threshold
    result = {f"frame_{k}": v for k, v in frame.items()}
    result["real_acc"] = (
        float(np.mean(~called_fake[labels == 0])) if (labels == 0).any() else float("nan")
    )
    result["fake_acc"] = (
        float(np.mean(called_fake[labels == 1])) if (labels == 1).any() else float("nan")
    )
    if video_ids is not None:
        video_ids = np.asarray(video_ids).reshape(-1)
        if video_ids.shape != scores.shape:
            raise ValueError(f"video_ids has {video_ids.size} entries for {scores.size} scores")
        _, v_scores, v_labels = video_scores(scores, labels, video_ids, video_score)
        video = _binary_metrics(v_scores, v_labels, threshold, "video level")
        result.update({f"video_{k}": v for k, v in video.items()})
    return result


class DeepfakeMetric(Metric):
    """Accumulates per-frame predictions and computes :func:`compute_metrics`.

    Under DDP every rank holds a shard; ``compute()`` gathers
    ``(sample_idx, video_idx, frame_idx, logit, label)`` from all ranks (shards
    may differ in length), drops the copies that a distributed sampler adds to
    even out shards (same ``sample_idx``), and only then computes, so the result
    equals a single-process run. Never average per-rank AUCs.
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self, video_score: VideoScore = "mean", threshold: float = 0.5, **kwargs: Any):
        super().__init__(**kwargs)
        self.video_score = video_score
        self.threshold = threshold
        for name in ("sample_idx", "video_idx", "frame_idx", "logit", "label"):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(
        self,
        logit: torch.Tensor,
        label: torch.Tensor,
        sample_idx: torch.Tensor,
        video_idx: torch.Tensor,
        frame_idx: torch.Tensor | None = None,
    ) -> None:
        if frame_idx is None:
            frame_idx = torch.full_like(sample_idx, -1)
        self.logit.append(logit.detach().float().reshape(-1))
        self.label.append(label.detach().float().reshape(-1))
        self.sample_idx.append(sample_idx.detach().long().reshape(-1))
        self.video_idx.append(video_idx.detach().long().reshape(-1))
        self.frame_idx.append(frame_idx.detach().long().reshape(-1))

    def predictions(self) -> dict[str, np.ndarray]:
        """The gathered, de-duplicated predictions, sorted by ``sample_idx``.

        Must be called on every rank under DDP (it is a collective operation).
        """
        # As compute() does: the gather given at construction (dist_sync_fn), if any.
        with self.sync_context(dist_sync_fn=self.dist_sync_fn, should_unsync=True):
            return self._deduplicated()

    def _deduplicated(self) -> dict[str, np.ndarray]:
        """Columns of the states as they stand (synced by the caller), one row per sample."""
        names = ("sample_idx", "video_idx", "frame_idx", "logit", "label")
        states = [getattr(self, name) for name in names]
        if any(isinstance(state, list) and not state for state in states):
            return {name: np.empty(0) for name in (*names, "score")}
        arrays = {
            name: (torch.cat(state) if isinstance(state, list) else state).cpu().numpy()
            for name, state in zip(names, states, strict=True)
        }
        _, first = np.unique(arrays["sample_idx"], return_index=True)
        arrays = {name: a[first] for name, a in arrays.items()}
        arrays["label"] = arrays["label"].astype(np.int64)
        arrays["score"] = 1.0 / (1.0 + np.exp(-arrays["logit"].astype(np.float64)))
        return arrays

    def compute(self) -> dict[str, float]:
        # torchmetrics has already gathered the states of every rank here.
        return self.summarise(self._deduplicated())

    def summarise(self, predictions: dict[str, np.ndarray]) -> dict[str, float]:
        """:func:`compute_metrics` plus counts, from :meth:`predictions`' columns."""
        if predictions["score"].size == 0:
            raise RuntimeError("DeepfakeMetric: no predictions (compute() before any update()?)")
        result = compute_metrics(
            predictions["score"],
            predictions["label"],
            predictions["video_idx"],
            threshold=self.threshold,
            video_score=self.video_score,
        )
        result["n_frames"] = float(predictions["score"].size)
        result["n_videos"] = float(np.unique(predictions["video_idx"]).size)
        return result


def format_metrics_table(results: dict[str, dict[str, float]], title: str = "") -> str:
    """A plain-text table: one row per (test set, level), values in percent."""
    header = [
        "test set",
        "level",
        "AUC",
        "AP",
        "ACC",
        "EER",
        "real ACC",
        "fake ACC",
        "frames",
        "videos",
    ]
    rows: list[Sequence[str]] = []

    def pct(value: float | None) -> str:
        return "-" if value is None or np.isnan(value) else f"{100 * value:.2f}"

    for name, m in results.items():
        for level in ("frame", "video"):
            if f"{level}_auc" not in m:
                continue
            rows.append(
                [
                    name,
                    level,
                    pct(m[f"{level}_auc"]),
                    pct(m[f"{level}_ap"]),
                    pct(m[f"{level}_acc"]),
                    pct(m[f"{level}_eer"]),
                    pct(m.get("real_acc")) if level == "frame" else "",
                    pct(m.get("fake_acc")) if level == "frame" else "",
                    str(int(m["n_frames"])) if "n_frames" in m else "",
                    str(int(m["n_videos"])) if "n_videos" in m else "",
                ]
            )
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [title] if title else []
    lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


# ----------------------------------------------------------------- pixel level
PIXEL_KEYS = ("pixel_auc", "pixel_iou", "pixel_f1")


def pixel_summaries(
    mask_logit: torch.Tensor, true_mask: torch.Tensor, bins: int = 1024, logit_range: float = 16.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """What each sample contributes to the pixel metrics, so masks never travel between ranks.

    A pixel is positive where the true mask is above 0.5 and predicted
    positive where its probability is above 0.5 (logit > 0). The prediction is
    resized (bilinear) to the true mask's size if they differ.

    Returns:
        ``histograms`` (N, 2, bins) int32: pixel counts per logit bin of the
        negatives (row 0) and positives (row 1); the bins split
        [-logit_range, logit_range] evenly, the outer ones also take what lies
        beyond. ``confusion`` (N, 3) int64: true positives, false positives
        and false negatives at 0.5.
    """
    if mask_logit.shape[-2:] != true_mask.shape[-2:]:
        mask_logit = torch.nn.functional.interpolate(
            mask_logit.float(), size=true_mask.shape[-2:], mode="bilinear", align_corners=False
        )
    logit = mask_logit.detach().float().flatten(1)
    positive = true_mask.detach().float().flatten(1) > 0.5
    if logit.shape != positive.shape:
        raise ValueError(
            f"mask_logit {tuple(mask_logit.shape)} and true mask {tuple(true_mask.shape)} "
            "differ in samples or channels"
        )
    n = logit.shape[0]
    width = 2 * logit_range / bins
    index = ((logit + logit_range) / width).floor().clamp(0, bins - 1).long()
    rows = torch.arange(n, device=logit.device).unsqueeze(1) * 2 + positive.long()
    counts = torch.bincount((rows * bins + index).flatten(), minlength=n * 2 * bins)
    predicted = logit > 0
    confusion = torch.stack(
        (
            (predicted & positive).sum(1),
            (predicted & ~positive).sum(1),
            (~predicted & positive).sum(1),
        ),
        dim=1,
    )
    return counts.view(n, 2, bins).int(), confusion.long()


def binned_auc(negatives: np.ndarray, positives: np.ndarray) -> tuple[float, float]:
    """ROC AUC from per-bin counts (bins in increasing score order) and its binning error bound.

    Pairs in different bins are ordered by their bins; pairs sharing a bin
    count half, as tied scores do in scikit-learn. The exact AUC of the
    unbinned scores therefore lies within ``bound = 0.5 * sum(pos_b * neg_b) /
    (P N)`` of the result, and equals it when scores are constant per bin.
    """
    negatives = np.asarray(negatives, dtype=np.float64)
    positives = np.asarray(positives, dtype=np.float64)
    pairs = positives.sum() * negatives.sum()
    below = np.cumsum(negatives) - negatives
    shared = float(np.sum(positives * negatives))
    return float((np.sum(positives * below) + 0.5 * shared) / pairs), 0.5 * shared / pairs


def pixel_metrics(
    histograms: np.ndarray, confusion: np.ndarray, labels: np.ndarray
) -> dict[str, float]:
    """Pixel AUC over every pixel of every sample, and mean per-frame IoU and F1 over fakes.

    Args:
        histograms: (N, 2, bins) from :func:`pixel_summaries`, one row per sample.
        confusion: (N, 3) true/false positives and false negatives at 0.5.
        labels: (N,) 1 = fake.

    Returns:
        ``pixel_auc`` and ``pixel_auc_binning_bound`` (the largest possible
        difference from the unbinned AUC), ``pixel_iou`` = TP / (TP + FP + FN)
        and ``pixel_f1`` = 2 TP / (2 TP + FP + FN), each per fake frame then
        averaged (1 for a frame with nothing to find and nothing found), and
        the counts ``n_pixel_frames``, ``n_pixel_fakes``. NaN where undefined.
    """
    labels = np.asarray(labels).reshape(-1)
    result = {"n_pixel_frames": float(labels.size), "n_pixel_fakes": float((labels == 1).sum())}
    totals = np.asarray(histograms, dtype=np.int64).sum(0)
    if totals[0].sum() == 0 or totals[1].sum() == 0:
        warnings.warn(
            "pixel level: no manipulated or no pristine pixel; pixel AUC is reported as NaN",
            RuntimeWarning,
            stacklevel=2,
        )
        result["pixel_auc"] = result["pixel_auc_binning_bound"] = float("nan")
    else:
        result["pixel_auc"], result["pixel_auc_binning_bound"] = binned_auc(totals[0], totals[1])
    tp, fp, fn = np.asarray(confusion, dtype=np.float64)[labels == 1].T.reshape(3, -1)
    union = tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / union, 1.0)
        f1 = np.where(union > 0, 2 * tp / (2 * tp + fp + fn), 1.0)
    result["pixel_iou"] = float(iou.mean()) if iou.size else float("nan")
    result["pixel_f1"] = float(f1.mean()) if f1.size else float("nan")
    return result


class PixelMetric(Metric):
    """Accumulates :func:`pixel_summaries` per sample and computes :func:`pixel_metrics`.

    Like :class:`DeepfakeMetric`, ``compute()`` gathers the per-sample
    summaries of every rank (8 KB a sample with 1024 bins, never the masks)
    and keeps one row per ``sample_idx`` before computing, so a distributed
    run equals a single-process one. ``keep`` selects the samples whose mask
    is known (reals, fakes with a mask); the others are left out.
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self, bins: int = 1024, logit_range: float = 16.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bins = bins
        self.logit_range = logit_range
        for name in ("sample_idx", "label", "histogram", "confusion"):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(
        self,
        mask_logit: torch.Tensor,
        true_mask: torch.Tensor,
        label: torch.Tensor,
        sample_idx: torch.Tensor,
        keep: torch.Tensor | None = None,
    ) -> None:
        if keep is not None:
            keep = keep.bool()
            mask_logit, true_mask, label, sample_idx = (
                mask_logit[keep],
                true_mask[keep],
                label[keep],
                sample_idx[keep],
            )
        histogram, confusion = pixel_summaries(mask_logit, true_mask, self.bins, self.logit_range)
        self.histogram.append(histogram)
        self.confusion.append(confusion)
        self.label.append(label.detach().long().reshape(-1))
        self.sample_idx.append(sample_idx.detach().long().reshape(-1))

    def compute(self) -> dict[str, float]:
        # torchmetrics has already gathered the states of every rank here.
        columns = {
            name: getattr(self, name) for name in ("sample_idx", "label", "histogram", "confusion")
        }
        arrays = {
            name: (torch.cat(state) if isinstance(state, list) else state).cpu().numpy()
            for name, state in columns.items()
            if not (isinstance(state, list) and not state)
        }
        if len(arrays) < len(columns):
            raise RuntimeError("PixelMetric: no masks (compute() before any update()?)")
        _, first = np.unique(arrays["sample_idx"], return_index=True)
        return pixel_metrics(
            arrays["histogram"][first], arrays["confusion"][first], arrays["label"][first]
        )
