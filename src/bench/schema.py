"""The results store's schema: one row per (cell, test set, level).

``<results>/<benchmark>/<profile>/results.csv`` holds the rows of every
finished cell; ``cells/<cell>/`` holds each cell's run (checkpoint, logs,
``test_metrics.json``, ``test_predictions.parquet``) and ``status.json``.
Every path stored there is relative to ``<results>/<benchmark>/<profile>/``
(the benchmark's results root), so the folder can be moved or copied whole.

Per-frame test predictions (``test_predictions.parquet``) have the columns
:data:`PREDICTION_COLUMNS`: the test set's name, the video key and index, the
frame number, the label (1 = fake) and the score P(fake); they feed the
bootstrap intervals and the ROC curves.

Rows written before a column existed read it as NaN (the runner's ``collect``
reindexes every cell's rows to :data:`RESULT_COLUMNS`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from src.errors import DFBenchError

if TYPE_CHECKING:
    from src.bench.grid import Cell

RESULT_COLUMNS = (
    "benchmark",  # grid name, e.g. cross_dataset
    "profile",  # demo | paper
    "cell",  # cell id (stable hash of its configuration)
    "detector",  # name given in the grid (e.g. xception, laa_net, laa_net_no_efpn)
    "flags",  # JSON object of the cell's overrides (ablation switches, perturbations ...)
    "train_set",  # e.g. ffpp_c23
    "test_set",  # e.g. cdf2
    "level",  # frame | video
    "seed",
    "auc",
    "ap",
    "acc",
    "eer",
    "real_acc",  # frame level only (NaN on video rows)
    "fake_acc",
    "n_videos",
    "n_frames",
    "train_time_s",
    "test_images_per_s",
    "params",  # parameter count
    "config_hash",
    "code_version",  # git commit of the code that produced the row
    "predictions",  # path of test_predictions.parquet, relative to the benchmark's folder
    "prediction_set",  # the test set's name inside that file
    "val_auc",  # validation frame AUC the checkpoint was chosen at (the fit's best score)
    "best_epoch",  # the selected checkpoint's epoch (0-based)
    "val_fakes",  # what val_auc's fakes were: pseudo (pseudo-fakes of the val reals) | real
    "pixel_auc",  # pixel level, detectors that output a mask; frame rows only, NaN otherwise
    "pixel_iou",  # IoU of the mask thresholded at 0.5, over fakes with a mask
    "pixel_f1",  # F1 at 0.5, same pixels
    "n_pixel_frames",  # frames the pixel metrics were computed over
)
#: Pixel-level metrics of detectors that output a mask, from test_metrics.json; own table.
PIXEL_METRICS = ("pixel_auc", "pixel_iou", "pixel_f1")
PREDICTION_COLUMNS = ("set", "video_key", "video_idx", "frame_idx", "label", "score")


def read_predictions(root: str | Path, row: pd.Series) -> pd.DataFrame:
    """A results row's per-frame predictions: its file, only the rows of its test set.

    A row's ``test_set`` names what the table shows and may differ from the
    name inside the file: a test restricted to some manipulations is reported
    as ``ffpp:Deepfakes`` while the file calls the set ``ffpp``. The file's
    name is ``prediction_set``.

    Args:
        root: the benchmark's results root (the folder of its ``results.csv``).
        row: one results row.

    Raises:
        ValueError: if the file holds no predictions of the row's set.
    """
    path = Path(root) / str(row["predictions"])
    name = row["prediction_set"] if "prediction_set" in row.index else row["test_set"]
    frame = pd.read_parquet(path)
    selected = frame[frame["set"] == name].reset_index(drop=True)
    if selected.empty:
        raise DFBenchError(
            f"{path} holds no predictions of set {name!r} (it has {sorted(frame['set'].unique())})"
        )
    return selected


def rows_of_test(
    cell: Cell,
    fit: dict[str, Any],
    variant: dict[str, Any],
    metrics: dict[str, dict[str, Any]],
    predictions: str,
    test_time: float,
    code_version: str,
) -> list[dict[str, Any]]:
    """The results rows of one test run of a cell: per test set, a frame and a video row.

    Args:
        cell: the cell tested.
        fit: its ``fit.json`` (training time, parameters, selection score).
        variant: the test variant's options.
        metrics: the run's ``test_metrics.json`` (one entry per test set).
        predictions: where its ``test_predictions.parquet`` is, relative to the
            benchmark's results folder.
        test_time: the test run's wall time in seconds.
        code_version: the git commit of the code.
    """
    frames = sum(m["n_frames"] for m in metrics.values())
    # A test restricted to some methods (cross-manipulation) is its own test set;
    # the "methods" flag stays the training set's.
    tested_methods = variant.get("data.init_args.methods")
    flags = cell.flags | {
        key.split(".")[-1]: value
        for key, value in variant.items()
        if key != "data.init_args.methods"
    }
    # The selection score is a validation frame AUC unless a config chose another monitor.
    by_auc = fit.get("monitor", "val/frame_auc") == "val/frame_auc"
    nan = math.nan
    rows = []
    for name, m in metrics.items():
        test_set = f"{name}:{'+'.join(tested_methods)}" if tested_methods else name
        for level in ("frame", "video"):
            frame_level = level == "frame"
            row = {
                "benchmark": cell.benchmark,
                "profile": cell.profile,
                "cell": cell.id,
                "detector": cell.detector,
                "flags": json.dumps(flags, sort_keys=True),
                "train_set": cell.train_set,
                "test_set": test_set,
                "level": level,
                "seed": cell.seed,
                "auc": m[f"{level}_auc"],
                "ap": m[f"{level}_ap"],
                "acc": m[f"{level}_acc"],
                "eer": m[f"{level}_eer"],
                "real_acc": m["real_acc"] if frame_level else nan,
                "fake_acc": m["fake_acc"] if frame_level else nan,
                "n_videos": int(m["n_videos"]),
                "n_frames": int(m["n_frames"]),
                "train_time_s": fit["train_time_s"],
                "test_images_per_s": frames / test_time,
                "params": fit["params"],
                "config_hash": cell.config_hash,
                "code_version": code_version,
                "predictions": predictions,
                "prediction_set": name,
                "val_auc": fit.get("val_score", nan) if by_auc else nan,
                "best_epoch": fit.get("best_epoch", nan),
                "val_fakes": fit.get("val_fakes") or "real",
            }
            for key in (*PIXEL_METRICS, "n_pixel_frames"):
                row[key] = m.get(key, nan) if frame_level else nan
            rows.append(row)
    return rows
