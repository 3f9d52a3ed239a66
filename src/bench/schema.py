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
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

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
)
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
        raise ValueError(
            f"{path} holds no predictions of set {name!r} (it has {sorted(frame['set'].unique())})"
        )
    return selected
