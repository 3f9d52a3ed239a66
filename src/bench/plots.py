"""Figures of benchmark results: ROC curves per test set.

Figures are drawn on a bare :class:`matplotlib.figure.Figure` with the Agg
canvas, never through pyplot, so nothing needs a display and no global figure
state leaks between calls (or threads).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import roc_curve

from src.files import atomic_write
from src.metrics import roc_auc, video_scores

FIGSIZE = (5.0, 5.0)  # inches
DPI = 100  # so a figure is 500 x 500 pixels


def _scores_and_labels(predictions: pd.DataFrame, level: str) -> tuple[np.ndarray, np.ndarray]:
    scores = predictions["score"].to_numpy(dtype=np.float64)
    labels = predictions["label"].to_numpy().astype(np.int64)
    if level == "video":
        _, scores, labels = video_scores(scores, labels, predictions["video_key"].to_numpy())
    elif level != "frame":
        raise ValueError(f"level must be 'frame' or 'video', got {level!r}")
    return scores, labels


def roc_curves(
    predictions_by_detector: dict[str, pd.DataFrame],
    test_set: str,
    level: str,
    path: str | Path,
) -> Path:
    """Plot one ROC curve per detector on one test set and write it as a PNG.

    Args:
        predictions_by_detector: per-frame predictions of the test set (columns
            :data:`src.bench.schema.PREDICTION_COLUMNS`, e.g. from
            :func:`src.bench.schema.read_predictions`) by curve label, in
            legend order. They are not filtered by ``test_set``: a table's test
            set name need not be the name inside the predictions file.
        test_set: the test set's name, for the title and the file name.
        level: ``"frame"`` or ``"video"`` (video score = mean of its frames).
        path: the PNG to write, or a directory to write
            ``roc_<test_set>_<level>.png`` into.

    Returns:
        The path written (atomically), a 500 x 500 pixel PNG.

    Raises:
        ValueError: if some predictions span several sets, or no detector has
            predictions of both classes.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        path = path / f"roc_{test_set}_{level}.png"
    figure = Figure(figsize=FIGSIZE, dpi=DPI)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    plotted = 0
    for detector, predictions in predictions_by_detector.items():
        if "set" in predictions.columns and predictions["set"].nunique() > 1:
            raise ValueError(f"the predictions of {detector!r} span several sets; select one")
        if predictions.empty:
            continue
        scores, labels = _scores_and_labels(predictions, level)
        if labels.min() == labels.max():
            continue  # one class only: no curve to draw
        fpr, tpr, _ = roc_curve(labels, scores)
        auc = 100.0 * roc_auc(scores, labels)
        axes.plot(fpr, tpr, linewidth=1.5, label=f"{detector} (AUC {auc:.2f})")
        plotted += 1
    if plotted == 0:
        raise ValueError(f"no predictions with both classes on {test_set!r}")
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
    axes.set_xlim(0.0, 1.0)
    axes.set_ylim(0.0, 1.0)
    axes.set_aspect("equal")
    axes.set_xlabel("false positive rate")
    axes.set_ylabel("true positive rate")
    axes.set_title(f"ROC, {test_set} ({level} level)")
    axes.legend(loc="lower right", fontsize="small")
    figure.tight_layout()
    buffer = io.BytesIO()
    # No bbox_inches="tight": it would change the pixel size from figure to figure.
    figure.savefig(buffer, format="png", dpi=DPI)
    return atomic_write(path, lambda handle: handle.write(buffer.getvalue()))
