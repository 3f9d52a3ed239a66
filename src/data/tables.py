"""The tables that carry a dataset through dfbench: videos, then frames.

raw dataset tree --index--> **video table** (one row per video) --preprocess-->
**frame table** (one row per cached face frame) --DataModule--> batches.

Video table columns (:data:`VIDEO_COLUMNS`):

=============  =====  ===========================================================
column         type   meaning
=============  =====  ===========================================================
video_key      str    unique across datasets, methods and compressions, e.g.
                      ``ffpp/Deepfakes/c23/000_003``, ``cdf2/Celeb-real/id0_0000``
path           str    absolute path of the video file; for a face sequence, of
                      its folder of frames, or ``<archive>::<member folder>``
                      for one inside a tar archive (WildDeepfake)
label          int    1 = fake, 0 = real (dfbench's convention, whatever the
                      dataset's own files say); -1 = unknown (a user's own files)
split          str    ``train`` / ``val`` / ``test``
dataset        str    ``ffpp, cdf2, dfd, dfdc, dfdcp, dfw, df1``
method         str    manipulation (``Deepfakes`` ...) or the real source
                      (``youtube``, ``Celeb-real`` ...); free-form per dataset
compression    str    ``raw, c23, c40`` for the FF++ family, else ``""``
mask_path      str    absolute path of the manipulation-mask video, or ``""``
source_id      str    identity pasted in (FF++ ``b`` of ``a_b``), or ``""``
target_id      str    identity whose frames are kept (FF++ ``a``), or ``""``
=============  =====  ===========================================================

Frame table columns (:data:`FRAME_COLUMNS`) add, per cached face frame:
``frame_idx`` (frame number in the video), ``face_idx`` (0 = the largest
face of the frame; more only with ``keep_all_faces``), ``crop_path`` (PNG, relative to
the cache root), ``crop_mask_path`` (PNG or ``""``), the crop's box in the
original frame ``crop_x0, crop_y0, crop_x1, crop_y1``, the detected face box
in crop coordinates ``face_x0 .. face_y1``, the detector's ``score``, and
``landmarks`` (68 x 2 float32 in crop coordinates, stored flattened).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

VIDEO_COLUMNS = (
    "video_key",
    "path",
    "label",
    "split",
    "dataset",
    "method",
    "compression",
    "mask_path",
    "source_id",
    "target_id",
)
SPLITS = ("train", "val", "test")
DATASETS = ("ffpp", "cdf2", "dfd", "dfdc", "dfdcp", "dfw", "df1")

FRAME_COLUMNS = (
    *VIDEO_COLUMNS,
    "frame_idx",
    "face_idx",
    "crop_path",
    "crop_mask_path",
    "crop_x0",
    "crop_y0",
    "crop_x1",
    "crop_y1",
    "face_x0",
    "face_y0",
    "face_x1",
    "face_y1",
    "score",
    "landmarks",
)


class TableError(ValueError):
    """A table that breaks its schema; the message names the table and the problem."""


def _missing(frame: pd.DataFrame, columns: Iterable[str]) -> list[str]:
    return [c for c in columns if c not in frame.columns]


def video_table(rows: Iterable[dict] | pd.DataFrame, name: str = "video table") -> pd.DataFrame:
    """Build (or check) a video table: all columns, typed, unique keys, valid labels and splits."""
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    if frame.empty:
        raise TableError(f"{name}: no videos")
    for column in ("compression", "mask_path", "source_id", "target_id"):
        if column not in frame.columns:
            frame[column] = ""
    missing = _missing(frame, VIDEO_COLUMNS)
    if missing:
        raise TableError(f"{name}: missing columns {missing}")
    frame = frame.loc[
        :, [*VIDEO_COLUMNS, *[c for c in frame.columns if c not in VIDEO_COLUMNS]]
    ].copy()
    for column in VIDEO_COLUMNS:
        if column != "label":
            frame[column] = frame[column].fillna("").astype(str)
    frame["label"] = frame["label"].astype(int)
    if not frame["label"].isin((-1, 0, 1)).all():
        raise TableError(f"{name}: labels must be 0 (real), 1 (fake) or -1 (unknown)")
    bad_splits = sorted(set(frame["split"]) - set(SPLITS))
    if bad_splits:
        raise TableError(f"{name}: unknown splits {bad_splits}; expected {SPLITS}")
    duplicated = frame["video_key"][frame["video_key"].duplicated()]
    if not duplicated.empty:
        raise TableError(f"{name}: video keys are not unique, e.g. {duplicated.iloc[:3].tolist()}")
    return frame.reset_index(drop=True)


_FLOAT_COLUMNS = [
    *(c for c in FRAME_COLUMNS if c.startswith(("crop_x", "crop_y", "face_")) and c != "face_idx"),
    "score",
]


def frame_table(frame: pd.DataFrame, name: str = "frame table") -> pd.DataFrame:
    """Check and type a frame table: the video columns as :func:`video_table` does, per video."""
    missing = [c for c in FRAME_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{name}: missing columns {missing}")
    if frame.empty:
        raise ValueError(f"{name}: no frames")
    video_table(frame.drop_duplicates("video_key")[list(VIDEO_COLUMNS)], name=name)
    varying = frame.groupby("video_key")[["label", "split", "dataset"]].nunique()
    if (varying > 1).any().any():
        raise ValueError(f"{name}: a video's frames disagree on its label, split or dataset")
    if frame.duplicated(["video_key", "frame_idx"]).any():
        raise ValueError(f"{name}: a (video_key, frame_idx) pair occurs twice")
    frame = frame[[*FRAME_COLUMNS, *(c for c in frame.columns if c not in FRAME_COLUMNS)]].copy()
    for column in (*VIDEO_COLUMNS, "crop_path", "crop_mask_path"):
        if column != "label":
            frame[column] = frame[column].fillna("").astype(str)
    frame["label"] = frame["label"].astype(int)
    frame["frame_idx"] = frame["frame_idx"].astype(np.int64)
    frame["face_idx"] = frame["face_idx"].fillna(0).astype(np.int64)
    frame[_FLOAT_COLUMNS] = frame[_FLOAT_COLUMNS].astype(np.float64)
    frame["landmarks"] = frame["landmarks"].astype(object)
    return frame.reset_index(drop=True)
