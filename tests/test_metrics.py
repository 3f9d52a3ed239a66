"""Metrics against scikit-learn (an independent implementation) and hand-computed cases."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

from src.metrics import DeepfakeMetric, compute_metrics, format_metrics_table, video_scores


def reference_eer(scores: np.ndarray, labels: np.ndarray) -> float:
    """EER from scikit-learn's ROC curve: where FPR = FNR, by linear interpolation."""
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    fnr = 1 - tpr
    grid = np.linspace(0, 1, 200001)
    # fpr - fnr is increasing along the curve; interpolate it as a function of fpr.
    diff = np.interp(grid, fpr, fpr - fnr, left=-1, right=1)
    return float(grid[np.argmin(np.abs(diff))])


def random_with_ties(seed: int, n: int = 400) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    video = rng.integers(0, 60, n)
    video_label = rng.integers(0, 2, 60)
    labels = video_label[video]
    # Rounded to 0.05: many tied scores, within and across classes.
    scores = np.round(np.clip(rng.normal(0.4 + 0.2 * labels, 0.25), 0, 1) / 0.05) * 0.05
    return scores, labels, video


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_frame_metrics_match_sklearn(seed: int) -> None:
    scores, labels, _ = random_with_ties(seed)
    m = compute_metrics(scores, labels)
    assert m["frame_auc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert m["frame_ap"] == pytest.approx(average_precision_score(labels, scores), abs=1e-12)
    assert m["frame_acc"] == pytest.approx(accuracy_score(labels, scores > 0.5), abs=1e-12)
    assert m["frame_eer"] == pytest.approx(reference_eer(scores, labels), abs=1e-4)
    assert m["real_acc"] == pytest.approx(recall_score(labels, scores > 0.5, pos_label=0))
    assert m["fake_acc"] == pytest.approx(recall_score(labels, scores > 0.5, pos_label=1))


@pytest.mark.parametrize("seed", [0, 1])
def test_video_metrics_match_pandas_and_sklearn(seed: int) -> None:
    scores, labels, video = random_with_ties(seed)
    frame = pd.DataFrame({"video": video, "score": scores, "label": labels})
    per_video = frame.groupby("video").agg(score=("score", "mean"), label=("label", "first"))
    ids, v_scores, v_labels = video_scores(scores, labels, video)
    assert ids.tolist() == per_video.index.tolist()
    assert v_scores == pytest.approx(per_video.score.values, abs=1e-12)
    assert v_labels.tolist() == per_video.label.tolist()
    # Equal means can differ in the last bit between summation orders, which
    # changes tie-breaking; so sklearn gets exactly the video scores under test.
    m = compute_metrics(scores, labels, video)
    assert m["video_auc"] == pytest.approx(roc_auc_score(v_labels, v_scores), abs=1e-12)
    assert m["video_ap"] == pytest.approx(average_precision_score(v_labels, v_scores), abs=1e-12)
    assert m["video_acc"] == pytest.approx(accuracy_score(v_labels, v_scores > 0.5))
    assert m["video_eer"] == pytest.approx(reference_eer(v_scores, v_labels), abs=1e-4)
    # String video keys group the same way as integer ids.
    keys = np.array([f"ffpp/Deepfakes/c23/{v:03d}" for v in video])
    assert compute_metrics(scores, labels, keys)["video_auc"] == m["video_auc"]


def test_hand_computed_case() -> None:
    scores = np.array([0.1, 0.4, 0.35, 0.8])
    labels = np.array([0, 0, 1, 1])
    m = compute_metrics(scores, labels)
    # 3 of the 4 (fake, real) pairs are ordered correctly.
    assert m["frame_auc"] == pytest.approx(0.75)
    # Precision at the two fakes' ranks: 1/1 and 2/3, each recall step 1/2.
    assert m["frame_ap"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    # FPR = FNR = 0.5 at the threshold 0.35 < t <= 0.4.
    assert m["frame_eer"] == pytest.approx(0.5)
    assert m["frame_acc"] == pytest.approx(0.75)
    # A score of exactly 0.5 counts as real.
    assert compute_metrics([0.5, 0.5], [0, 1])["frame_acc"] == pytest.approx(0.5)


def test_video_score_options() -> None:
    scores = np.array([0.2, 0.9, 0.6, 0.6])
    labels = np.array([1, 1, 0, 0])
    video = np.array([7, 7, 3, 3])
    ids, mean, vlabels = video_scores(scores, labels, video, "mean")
    assert ids.tolist() == [3, 7] and vlabels.tolist() == [0, 1]
    assert mean == pytest.approx([0.6, 0.55])
    _, maximum, _ = video_scores(scores, labels, video, "max")
    assert maximum == pytest.approx([0.6, 0.9])
    _, mean_logit, _ = video_scores(scores, labels, video, "mean_logit")
    logit = np.log(0.2 / 0.8) / 2 + np.log(0.9 / 0.1) / 2
    assert mean_logit == pytest.approx([0.6, 1 / (1 + np.exp(-logit))])
    with pytest.raises(ValueError, match="unknown video score"):
        video_scores(scores, labels, video, "median")


def test_single_class_gives_nan_with_warning() -> None:
    with pytest.warns(RuntimeWarning, match="every sample is real"):
        m = compute_metrics([0.1, 0.7, 0.3], [0, 0, 0], [0, 0, 1])
    assert np.isnan(m["frame_auc"]) and np.isnan(m["frame_ap"]) and np.isnan(m["frame_eer"])
    assert np.isnan(m["video_auc"]) and np.isnan(m["fake_acc"])
    assert m["frame_acc"] == pytest.approx(2 / 3) and m["real_acc"] == pytest.approx(2 / 3)


def test_bad_inputs_are_named() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        compute_metrics([0.1, 0.2], [0])
    with pytest.raises(ValueError, match="labels must be 0"):
        compute_metrics([0.1, 0.2], [0, 2])
    with pytest.raises(ValueError, match="NaN"):
        compute_metrics([0.1, float("nan")], [0, 1])
    with pytest.raises(ValueError, match="hold both real and fake"):
        compute_metrics([0.1, 0.2, 0.3], [0, 1, 1], [5, 5, 6])


def test_metric_drops_sampler_padding_duplicates() -> None:
    """A distributed sampler repeats samples to even out shards; they must count once."""
    scores, labels, video = random_with_ties(5, n=51)
    logits = torch.logit(torch.tensor(scores).clamp(1e-4, 1 - 1e-4)).float()
    expected = compute_metrics(1 / (1 + np.exp(-logits.double().numpy())), labels, video)

    metric = DeepfakeMetric()
    order = np.r_[np.arange(51), [0]]  # 52 items on two ranks: sample 0 twice
    for chunk in np.array_split(order, 4):
        idx = torch.as_tensor(chunk)
        metric.update(
            logits[idx], torch.as_tensor(labels[chunk]), idx, torch.as_tensor(video[chunk])
        )
    result = metric.compute()
    assert result["n_frames"] == 51
    assert result["n_videos"] == np.unique(video).size
    for key, value in expected.items():
        assert result[key] == pytest.approx(value, abs=1e-9), key


def test_table_lists_both_levels_in_percent() -> None:
    table = format_metrics_table(
        {"cdf2": compute_metrics([0.1, 0.9, 0.8, 0.3], [0, 1, 1, 0], [0, 1, 2, 3])}
    )
    rows = [line.split() for line in table.splitlines()[2:]]
    assert [r[:3] for r in rows] == [["cdf2", "frame", "100.00"], ["cdf2", "video", "100.00"]]


def _table_cells(table: str) -> tuple[list[str], list[list[str]]]:
    """Header names and row cells, cut at the columns the dashed rule marks."""
    lines = table.splitlines()
    rule = next(i for i, line in enumerate(lines) if set(line) <= {"-", " "} and "-" in line)
    spans = [(m.start(), m.end()) for m in re.finditer(r"-+", lines[rule])]

    def cut(line: str) -> list[str]:
        return [line[start:end].strip() for start, end in spans]

    return cut(lines[rule - 1]), [cut(line) for line in lines[rule + 1 :]]


def test_table_cells_hold_the_hand_computed_metrics_under_their_headers() -> None:
    """Every value in its own column; all frame-level values differ, so do the video ones.

    Frames (score, label, video): reals 0.1, 0.3 (v0), 0.6, 0.2 (v1); fakes 0.7, 0.9 (v2),
    0.25, 0.45 (v3), 0.8 (v4). Frame level, 4 reals and 5 fakes:
    AUC: the fakes beat 4, 4, 2, 3, 4 reals = 17/20 = 85.00;
    AP: ranked 0.9F 0.8F 0.7F 0.6R 0.45F 0.3R 0.25F ..., precision 1, 1, 1, 4/5, 5/7 at
    the fakes, mean 90.29; ACC at 0.5: reals right 3/4 (75.00), fakes right 3/5 (60.00),
    together 6/9 = 66.67; EER: FNR falls from 0.4 to 0.2 at FPR 0.25, so 25.00.
    Video level (means 0.2, 0.4 real; 0.8, 0.35, 0.8 fake): AUC (2 + 2 + 1)/6 = 83.33;
    AP 2/3 * 1 + 1/3 * 3/4 = 91.67; ACC 4/5 = 80.00; EER: FPR runs 0 -> 0.5 at FNR 1/3,
    so 33.33.
    """
    scores = [0.1, 0.3, 0.6, 0.2, 0.7, 0.9, 0.25, 0.45, 0.8]
    labels = [0, 0, 0, 0, 1, 1, 1, 1, 1]
    videos = [0, 0, 1, 1, 2, 2, 3, 3, 4]
    results = {"cdf2": {**compute_metrics(scores, labels, videos), "n_frames": 9, "n_videos": 5}}
    table = format_metrics_table(results, "test")
    assert table.splitlines()[0] == "test"
    header, rows = _table_cells(table)
    assert header == [
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
    assert rows == [
        ["cdf2", "frame", "85.00", "90.29", "66.67", "25.00", "75.00", "60.00", "9", "5"],
        ["cdf2", "video", "83.33", "91.67", "80.00", "33.33", "", "", "9", "5"],
    ]
