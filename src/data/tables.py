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

A video table is checked before it is used (:func:`video_table`; a CSV with
:func:`load_video_table`): the required columns are there, labels are -1/0/1,
splits are known, every key is a safe relative folder of the cache (no ``..``,
absolute or empty parts; :mod:`src.data.paths`) and unique, and no two rows
name one source file. A message names the first bad row (a CSV's line).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from src.data.paths import UnsafePathError, inside, key_problem
from src.errors import DFBenchError

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


class TableError(DFBenchError):
    """A table that breaks its schema; the message names the table, the row and the problem."""


#: Columns a video table CSV must have; the others default to "".
REQUIRED_VIDEO_COLUMNS = ("video_key", "path", "label", "split", "dataset", "method")
_OPTIONAL_VIDEO_COLUMNS = ("compression", "mask_path", "source_id", "target_id")


def _missing(frame: pd.DataFrame, columns: Iterable[str]) -> list[str]:
    return [c for c in columns if c not in frame.columns]


def _row_namer(first_line: int | None) -> Callable[[int], str]:
    """How a message names the row at position ``i``: a file's line, or a 1-based row."""
    if first_line is None:
        return lambda i: f"row {i + 1}"
    return lambda i: f"line {i + first_line}"


def _first_bad(bad: np.ndarray) -> int | None:
    positions = np.flatnonzero(bad)
    return int(positions[0]) if positions.size else None


def _same_value_rows(values: pd.Series) -> tuple[int, int] | None:
    """Positions of the first two rows that share a value, or None."""
    repeated = values.duplicated(keep=False).to_numpy()
    if not repeated.any():
        return None
    first = values[repeated].iloc[0]
    a, b = np.flatnonzero((values == first).to_numpy())[:2]
    return int(a), int(b)


def _normalised_source(path: str) -> str:
    """A source path compared lexically: ``a/./b`` = ``a/b``; ``archive::member`` per side."""
    archive, sep, member = path.partition("::")
    archive = os.path.normpath(archive) if archive else archive
    return archive + sep + (os.path.normpath(member) if sep else "")


def video_table(
    rows: Iterable[dict] | pd.DataFrame,
    name: str = "video table",
    first_line: int | None = None,
    unique_sources: bool = True,
) -> pd.DataFrame:
    """Build (or check) a video table: all columns, typed, safe unique keys, valid labels and splits.

    Args:
        rows: the rows, or a DataFrame.
        name: the table's name in messages (a file path for a CSV).
        first_line: the file line of the first row (2 for a CSV with a header); messages
            then say "line N", else "row N" (1-based).
        unique_sources: refuse two rows whose ``path`` is one file: they would be two
            videos made of the same frames (an alias such as ``method_A/../original_videos``).

    Raises:
        TableError: the first problem found, naming its row(s).
        UnsafePathError: a key with ``..``, an absolute or an empty part (it names a cache folder).
    """
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    if frame.empty:
        raise TableError(f"{name}: no videos")
    missing = _missing(frame, REQUIRED_VIDEO_COLUMNS)
    if missing:
        raise TableError(
            f"{name}: missing column(s) {', '.join(missing)}; a video table has "
            f"{', '.join(REQUIRED_VIDEO_COLUMNS)} (and optionally {', '.join(_OPTIONAL_VIDEO_COLUMNS)})"
        )
    frame = frame.reset_index(drop=True)
    for column in _OPTIONAL_VIDEO_COLUMNS:
        if column not in frame.columns:
            frame[column] = ""
    frame = frame.loc[
        :, [*VIDEO_COLUMNS, *[c for c in frame.columns if c not in VIDEO_COLUMNS]]
    ].copy()
    row = _row_namer(first_line)
    for column in VIDEO_COLUMNS:
        if column != "label":
            frame[column] = frame[column].fillna("").astype(str)

    label = pd.to_numeric(frame["label"], errors="coerce")
    bad = label.isna().to_numpy() | ~label.isin((-1, 0, 1)).to_numpy()
    if (i := _first_bad(bad)) is not None:
        raise TableError(
            f"{name} {row(i)}: label {frame['label'].iloc[i]!r} is not 0 (real), 1 (fake) "
            "or -1 (unknown)"
        )
    frame["label"] = label.astype(int)
    if (i := _first_bad(~frame["split"].isin(SPLITS).to_numpy())) is not None:
        raise TableError(
            f"{name} {row(i)}: split {frame['split'].iloc[i]!r} is not one of {', '.join(SPLITS)}"
        )
    for i, key in enumerate(frame["video_key"]):
        if (problem := key_problem(key)) is not None:
            raise UnsafePathError(f"{name} {row(i)}: video key {key!r} {problem}")
    if (i := _first_bad((frame["path"].str.strip() == "").to_numpy())) is not None:
        raise TableError(f"{name} {row(i)} ({frame['video_key'].iloc[i]}): empty path")
    if (pair := _same_value_rows(frame["video_key"])) is not None:
        a, b = pair
        raise TableError(
            f"{name}: {row(a)} and {row(b)} share the video key {frame['video_key'].iloc[a]!r}"
        )
    if unique_sources:
        sources = frame["path"].map(_normalised_source)
        if (pair := _same_value_rows(sources)) is not None:
            a, b = pair
            keys = frame["video_key"]
            raise TableError(
                f"{name}: {row(a)} ({keys.iloc[a]}) and {row(b)} ({keys.iloc[b]}) name the same "
                f"source {sources.iloc[a]}"
            )
    return frame


def load_video_table(path: str | Path) -> pd.DataFrame:
    """Read a video table CSV (from ``dfbench index`` or written by hand) and check its schema.

    Every cell is read as text (a key ``000`` stays ``000``). A relative ``path`` or
    ``mask_path`` is taken relative to the CSV's folder and must stay inside it;
    absolute paths (what ``dfbench index`` writes) are used as they are.

    Raises:
        FileNotFoundError: no such file.
        TableError: not a CSV, a missing column, or a bad row (named by its line).
        UnsafePathError: a key or a relative path that would leave its folder.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"video table not found: {path} (write one with `dfbench index`)"
            if not path.exists()
            else f"video table {path} is not a file"
        )
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise TableError(f"{path}: not a readable CSV ({first})") from None
    table = video_table(frame, name=str(path), first_line=2)
    base = path.resolve().parent
    for column in ("path", "mask_path"):
        table[column] = [
            _anchored(value, base, f"{path} line {i + 2} ({column})")
            for i, value in enumerate(table[column])
        ]
    return table


def _anchored(value: str, base: Path, where: str) -> str:
    """A relative source path (or ``archive::member``) made absolute under ``base``."""
    archive, sep, member = value.partition("::")
    if not archive or os.path.isabs(archive):
        return value
    return f"{inside(base, archive, where)}{sep}{member}"


_FLOAT_COLUMNS = [
    *(c for c in FRAME_COLUMNS if c.startswith(("crop_x", "crop_y", "face_")) and c != "face_idx"),
    "score",
]


def frame_table(frame: pd.DataFrame, name: str = "frame table") -> pd.DataFrame:
    """Check and type a frame table: the video columns as :func:`video_table` does, per video."""
    missing = [c for c in FRAME_COLUMNS if c not in frame.columns]
    if missing:
        raise TableError(f"{name}: missing columns {missing}")
    if frame.empty:
        raise TableError(f"{name}: no frames")
    video_table(
        frame.drop_duplicates("video_key")[list(VIDEO_COLUMNS)], name=name, unique_sources=False
    )
    varying = frame.groupby("video_key")[["label", "split", "dataset"]].nunique()
    if (varying > 1).any().any():
        raise TableError(f"{name}: a video's frames disagree on its label, split or dataset")
    if frame.duplicated(["video_key", "frame_idx", "face_idx"]).any():
        raise TableError(f"{name}: a (video_key, frame_idx, face_idx) triple occurs twice")
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
