"""Hand-made results rows and per-frame predictions for the bench tests."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from src.bench.schema import PREDICTION_COLUMNS, RESULT_COLUMNS

NAN = float("nan")


def result(detector, test_set, seed, level="frame", flags=None, train_set="ffpp_c23", **metrics):
    """One results row; metrics not given are NaN."""
    row = {column: NAN for column in RESULT_COLUMNS}
    row.update(
        benchmark="grid",
        profile="demo",
        cell=f"{detector}-{seed}",
        detector=detector,
        flags=json.dumps(flags or {}),
        train_set=train_set,
        test_set=test_set,
        level=level,
        seed=seed,
    )
    row.update(metrics)
    return row


def cross_dataset_results() -> pd.DataFrame:
    """Four detectors on cdf2 and dfdc, two seeds (sbi: one seed, cdf2 only).

    Designed so that: dfdc AUC ties (xception = effnet = 62), laa_net has NaN on
    dfdc, sbi is best on cdf2 AUC but only second on EER (lower is better).
    """
    metrics = {  # (detector, test set): per seed (auc, ap, eer)
        ("xception", "cdf2"): [(0.70, 0.80, 0.30), (0.72, 0.80, 0.32)],
        ("xception", "dfdc"): [(0.60, 0.60, 0.40), (0.64, 0.62, 0.40)],
        ("effnet", "cdf2"): [(0.75, 0.85, 0.25), (0.77, 0.87, 0.27)],
        ("effnet", "dfdc"): [(0.64, 0.61, 0.35), (0.60, 0.63, 0.37)],
        ("laa_net", "cdf2"): [(0.80, 0.90, 0.20), (0.82, 0.92, 0.22)],
        ("laa_net", "dfdc"): [(NAN, NAN, NAN), (NAN, NAN, NAN)],
        ("sbi", "cdf2"): [(0.90, 0.95, 0.24)],
    }
    rows = []
    for (detector, test_set), seeds in metrics.items():
        for seed, (auc, ap, eer) in enumerate(seeds):
            rows.append(result(detector, test_set, seed, auc=auc, ap=ap, eer=eer, acc=0.5))
            # Video rows must not leak into a frame table.
            rows.append(result(detector, test_set, seed, level="video", auc=0.1, ap=0.1, eer=0.9))
    return pd.DataFrame(rows, columns=list(RESULT_COLUMNS))


def make_predictions(
    seed: int, n_videos: int, signal: float = 1.0, decimals: int = 1, name: str = "cdf2"
) -> pd.DataFrame:
    """Videos of 1-12 frames, one label each, scores rounded so that ties abound."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(1, 13, n_videos)
    labels = rng.integers(0, 2, n_videos)
    keys = np.array([f"v{i:03d}" for i in rng.permutation(n_videos)])
    video = np.repeat(np.arange(n_videos), frames)
    base = rng.normal(size=n_videos) * 0.5 + signal * labels
    logits = base[video] + rng.normal(size=video.size)
    scores = np.round(1.0 / (1.0 + np.exp(-logits)), decimals)
    frame = pd.DataFrame(
        {
            "set": name,
            "video_key": keys[video],
            "video_idx": video,
            "frame_idx": np.concatenate([np.arange(f) for f in frames]),
            "label": labels[video],
            "score": scores,
        }
    )
    return frame[list(PREDICTION_COLUMNS)]
