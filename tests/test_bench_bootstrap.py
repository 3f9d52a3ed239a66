"""The video bootstrap: vectorised resampling equals the direct computation."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from bench_data import cross_dataset_results, make_predictions
from sklearn.metrics import roc_auc_score

from src.bench.bootstrap import auc_resamples, bootstrap_auc, draw_video_counts
from src.bench.render import to_csv
from src.bench.tables import Intervals, cross_dataset_table
from src.metrics import roc_auc

NAN = float("nan")


def naive_aucs(predictions: pd.DataFrame, level: str, counts: np.ndarray) -> np.ndarray:
    """The direct computation: build each resample's samples and call scikit-learn."""
    keys = np.unique(predictions["video_key"])
    groups = {key: g for key, g in predictions.groupby("video_key")}
    out = []
    for row in counts:
        drawn = [groups[keys[v]] for v in range(keys.size) for _ in range(row[v])]
        if level == "frame":
            scores = np.concatenate([g["score"].to_numpy() for g in drawn])
            labels = np.concatenate([g["label"].to_numpy() for g in drawn])
        else:
            scores = np.array([g["score"].mean() for g in drawn])
            labels = np.array([g["label"].iloc[0] for g in drawn])
        out.append(roc_auc_score(labels, scores) if 0 < labels.sum() < labels.size else NAN)
    return np.array(out)


@pytest.mark.parametrize("level", ["frame", "video"])
def test_vectorised_bootstrap_equals_direct(level):
    predictions = make_predictions(seed=1, n_videos=25)
    counts = draw_video_counts(25, 60, np.random.default_rng(7))
    # A tiny video set makes some one-class resamples likely; force one to be sure.
    counts[0] = 0
    counts[0, 0] = 25
    fast = auc_resamples(predictions, level, counts)
    slow = naive_aucs(predictions, level, counts)
    assert np.isnan(fast[0]) and np.isnan(slow[0])
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-12)
    chunked = auc_resamples(predictions, level, counts, max_cells=7)
    np.testing.assert_allclose(chunked, fast, rtol=0, atol=1e-12)


def test_bootstrap_interval_contains_point_auc():
    predictions = make_predictions(seed=2, n_videos=200, signal=1.5, decimals=3)
    for level in ("frame", "video"):
        low, high = bootstrap_auc(predictions, level, n_resamples=400, seed=3)
        if level == "frame":
            point = roc_auc_score(predictions["label"], predictions["score"])
        else:
            means = predictions.groupby("video_key").agg(
                score=("score", "mean"), label=("label", "first")
            )
            point = roc_auc_score(means["label"], means["score"])
        assert low < point < high
        assert 0.02 < high - low < 0.3
        assert bootstrap_auc(predictions, level, n_resamples=400, seed=3) == (low, high)


def test_cross_dataset_table_with_intervals():
    rows = cross_dataset_results()
    predictions = make_predictions(seed=4, n_videos=60, signal=1.5, decimals=3)
    table = cross_dataset_table(
        rows[rows.detector.isin(["xception", "sbi"])],
        "frame",
        intervals=Intervals(lambda row: predictions, n_resamples=200),
    )
    cell = table.at["xception", ("cdf2", "auc")]
    assert re.fullmatch(r"71\.00 ± 1\.41 \[\d+\.\d\d, \d+\.\d\d\]", str(cell))
    point = 100 * roc_auc(predictions["score"].to_numpy(), predictions["label"].to_numpy())
    assert cell.low < point < cell.high
    assert re.fullmatch(r"90\.00 \[\d+\.\d\d, \d+\.\d\d\]", str(table.at["sbi", ("cdf2", "auc")]))
    assert str(table.at["xception", ("cdf2", "ap")]) == "80.00 ± 0.00"
    assert "/low" in to_csv(table)
