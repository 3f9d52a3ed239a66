"""Video table -> frame cache: evenly spaced frames, faces, landmarks, mask crops.

For each video of a video table (:mod:`src.data.tables`):

1. pick ``frames[split]`` frame numbers spread evenly over the whole video
   (``linspace``; never "the first N");
2. decode them (BGR -> RGB once), detect faces in one MTCNN batch, keep the
   largest face (or, with ``keep_all_faces``, every face at least half its size);
3. crop a square ``crop_scale`` times the face box, find dlib's 68 landmarks,
   crop the manipulation mask the same way where the dataset has masks;
4. write lossless PNGs under ``<cache>/<video_key>/``, sync them to the disk,
   and, last, the video's marker ``frames.parquet`` (its rows and what they
   were made from, :mod:`src.data.cache`).

**Reuse.** A re-run reuses a video only while its source file, its mask video
and the settings that shape its crops are unchanged; a change in its index
row alone (split, label, method, ids) rewrites its rows without detecting
faces again (:mod:`src.data.cache` says exactly what is compared). A video
interrupted halfway has no marker and is redone; the old marker is removed
before a video is redone, so it never vouches for half-rewritten crops. One
video folder holds one result: two tables that share videos in one cache but
differ in settings redo each other's videos; give them separate caches.

**Failures** are rows of the failures table, with a reason; the run goes on:

* a source that is missing, empty or unreadable (``frame_idx`` -1);
* a frame the decoder could not return, a frame too small for face detection
  (MTCNN needs 12 px), a frame on which detection failed, a frame without a
  face, a face whose crop cannot be made or saved;
* a mask video that is missing, unreadable, shorter than the video, or of
  another frame size: one row per frame concerned, whose face is kept without
  a mask (``crop_mask_path`` empty, so ``has_mask`` is False for it).

A missing source's failure is not cached (the next run looks again); the
others are part of the video's marker. Errors of the machine (a full disk, a
permission) are not the data's fault: they stop the run rather than being
cached as a video's failure; a full disk is one line naming the file being
written, the space left and the space the video needs
(:class:`~src.data.space.DiskFullError`).

**Damaged crops.** A cached video whose crops are missing or of another size
than its marker records is redone, and the result lists it (``redone``) with
why. The frame table records the command that made it (when given), so an
error at training time on an unreadable crop can name the exact command that
repairs it (:func:`repair_hint`).

Face sequences (WildDeepfake) are already face crops: their frames are
landmarked in place, not re-cropped.

**Long keys.** A video key part too long for a file name gets a shortened,
hashed folder (:func:`~src.data.paths.key_folder`); the tables keep the full key.

**Shards.** With ``shard`` a run does only the videos of one shard (a hash
of their keys) and writes that shard's part instead of the tables;
:func:`merge_shards` writes the tables from all parts, equal to a single
run's (:mod:`src.data.shards`).

Outputs, for a table named ``NAME`` (a plain name): ``<cache>/tables/NAME.parquet``
(the frame table, :data:`~src.data.tables.FRAME_COLUMNS`, paths relative to
``<cache>``) and ``<cache>/tables/NAME_failures.csv``.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from src.data.cache import read_record, write_with_record
from src.data.paths import check_name, key_folder
from src.data.settings import DEFAULT_FRAMES, PreprocessConfig
from src.data.shards import (
    Shard,
    finish_shard,
    gather_shards,
    part_path,
    plan_digest,
    start_shard,
)
from src.data.space import writing
from src.data.tables import FRAME_COLUMNS, TableError, video_table
from src.data.video_io import VideoReadError, read_frames, sample_indices
from src.data.worker import FAILURE_COLUMNS, VideoPreprocessor
from src.files import atomic_write_csv
from src.progress_bars import progress_bar

__all__ = [
    "DEFAULT_FRAMES",
    "FAILURE_COLUMNS",
    "PreprocessConfig",
    "PreprocessResult",
    "VideoPreprocessor",
    "VideoReadError",
    "Shard",
    "load_frame_table",
    "merge_shards",
    "preprocess",
    "repair_hint",
    "read_frames",
    "sample_indices",
]


# ------------------------------------------------------------- a whole table
@dataclass
class PreprocessResult:
    """What a run produced; ``updated`` counts videos whose rows were re-indexed only;
    ``redone`` lists the cached videos redone because their crops were damaged
    (``(video_key, why)``)."""

    frames: pd.DataFrame
    failures: pd.DataFrame
    table_path: Path
    failures_path: Path
    processed: int
    skipped: int
    updated: int = 0
    redone: list[tuple[str, str]] = field(default_factory=list)


def preprocess(
    videos: pd.DataFrame,
    cache_root: str | Path,
    name: str,
    config: PreprocessConfig | None = None,
    progress: bool = True,
    limit: int | None = None,
    content_hash: bool = False,
    command: Sequence[str] | None = None,
    shard: Shard | None = None,
) -> PreprocessResult:
    """Preprocess every video of ``videos`` into ``cache_root``; resumable, never stale.

    Args:
        videos: a video table (checked: safe unique keys, one row per source).
        cache_root: root of the frame cache.
        name: name of the resulting frame table (``<cache>/tables/<name>.parquet``);
            a plain name, no folders.
        config: preprocessing settings.
        progress: show a progress bar.
        limit: process at most this many unfinished videos, then stop without
            writing the combined tables (for tests of interrupted runs).
        content_hash: identify sources by content (SHA-256) instead of size + mtime.
        command: the command line that makes this table again (``dfbench
            preprocess ...``, absolute paths), recorded in the table so that a
            damaged crop found later can name it.
        shard: preprocess only this shard's videos and write its part
            (:mod:`src.data.shards`) instead of the tables; :func:`merge_shards`
            makes the tables once every shard is done.

    Raises:
        UnsafePathError: ``name`` or a video key would leave the cache.
        TableError: ``videos`` breaks the video-table schema, or two keys would
            share a cache folder.
        DiskFullError: the disk filled up; the message names the file and the space.
    """
    check_name(name, "frame table name")
    videos = video_table(videos, name)
    _check_folders(videos["video_key"], name)
    config = config or PreprocessConfig()
    plan = plan_digest(videos, config, content_hash) if shard else ""
    if shard is not None:
        start_shard(cache_root, name, shard, plan)
        videos = videos[shard.holds(videos["video_key"])]
    worker = VideoPreprocessor(cache_root, config, content_hash)
    frame_parts, failures = [], []
    processed = skipped = updated = 0
    redone: list[tuple[str, str]] = []
    bar = progress_bar(
        videos.to_dict("records"),
        total=len(videos),
        desc=f"preprocess {name}" + (f" shard {shard}" if shard else ""),
        unit="video",
        disable=not progress,
    )
    for video in bar:
        produced_by = worker.produced_by(video)
        reused = worker.reuse(video, produced_by)
        if isinstance(reused, str):
            redone.append((video["video_key"], reused))
            reused = None
        if reused is None:
            if limit is not None and processed >= limit:
                break
            rows, video_failures = worker.run(video, produced_by)
            processed += 1
        else:
            state, rows, video_failures = reused
            skipped += state == "fresh"
            updated += state == "reindexed"
        frame_parts.append(rows)
        failures.extend(video_failures)
    frames = _frame_table(frame_parts)
    failure_table = pd.DataFrame(failures, columns=list(FAILURE_COLUMNS))
    table_path, failures_path = _table_paths(cache_root, name)
    if limit is None or processed < limit:
        if shard is None:
            _write_tables(frames, failure_table, table_path, failures_path, command)
        else:
            counts = {"processed": processed, "skipped": skipped, "updated": updated}
            with writing(part_path(cache_root, name, shard)):
                table_path = failures_path = finish_shard(
                    cache_root, name, shard, plan, frames, failure_table, counts
                )
    return PreprocessResult(
        frames, failure_table, table_path, failures_path, processed, skipped, updated, redone
    )


def merge_shards(
    videos: pd.DataFrame,
    cache_root: str | Path,
    name: str,
    count: int,
    config: PreprocessConfig | None = None,
    content_hash: bool = False,
    command: Sequence[str] | None = None,
) -> PreprocessResult:
    """Build the tables of :func:`preprocess` from the ``count`` finished shards of ``videos``.

    The arguments are those the shards ran with; the tables equal a single
    process's (same rows, order, columns and dtypes; failures in video-table
    order). ``processed``, ``skipped`` and ``updated`` sum the shards' counts.

    Raises:
        ShardError: one line naming every shard that never ran, is unfinished,
            or was made for another video table or other settings.
    """
    check_name(name, "frame table name")
    videos = video_table(videos, name)
    config = config or PreprocessConfig()
    merged = gather_shards(cache_root, name, count, plan_digest(videos, config, content_hash))
    frames = _frame_table(merged.parts)
    # A single run lists failures video by video in table order; each video's stay together.
    failure_table = pd.DataFrame(merged.failures, columns=list(FAILURE_COLUMNS))
    position = pd.Series(np.arange(len(videos)), index=videos["video_key"])
    failure_table = failure_table.iloc[
        np.argsort(position[failure_table["video_key"]].to_numpy(), kind="stable")
    ].reset_index(drop=True)
    table_path, failures_path = _table_paths(cache_root, name)
    _write_tables(frames, failure_table, table_path, failures_path, command)
    counts = merged.counts
    return PreprocessResult(
        frames,
        failure_table,
        table_path,
        failures_path,
        counts.get("processed", 0),
        counts.get("skipped", 0),
        counts.get("updated", 0),
    )


def _frame_table(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Video parts -> one frame table in its canonical order (key, frame, crop)."""
    frames = pd.concat(
        [p for p in parts if not p.empty] or [pd.DataFrame(columns=list(FRAME_COLUMNS))],
        ignore_index=True,
    )
    return frames.sort_values(["video_key", "frame_idx", "crop_path"], kind="stable").reset_index(
        drop=True
    )


def _table_paths(cache_root: str | Path, name: str) -> tuple[Path, Path]:
    tables = Path(cache_root) / "tables"
    return tables / f"{name}.parquet", tables / f"{name}_failures.csv"


def _write_tables(
    frames: pd.DataFrame,
    failures: pd.DataFrame,
    table_path: Path,
    failures_path: Path,
    command: Sequence[str] | None,
) -> None:
    record = {"command": list(command)} if command else {}
    with writing(table_path):
        write_with_record(table_path, frames, record)
    with writing(failures_path):
        atomic_write_csv(failures_path, failures)


def _check_folders(keys: pd.Series, name: str) -> None:
    """Refuse two keys that would share a cache folder (a long key's hashed folder
    spelled out as another key)."""
    folders = keys.map(key_folder)
    shared = folders.duplicated(keep=False)
    if shared.any():
        first, second = keys[folders == folders[shared].iloc[0]].iloc[:2]
        raise TableError(
            f"{name}: video keys {first!r} and {second!r} would share the cache folder "
            f"{folders[shared].iloc[0]!r}; rename one"
        )


def repair_hint(table_path: str | Path) -> str:
    """What to run to redo a frame table's damaged crops: the command it records, or advice."""
    record = read_record(Path(table_path)) or {}
    command = record.get("command")
    if command:
        return f"run `{shlex.join(command)}` to redo it (videos with damaged crops are redone)"
    return (
        f"re-run the preprocessing that wrote {table_path} with the same arguments "
        "(videos with damaged crops are redone)"
    )


def load_frame_table(path: str | Path) -> pd.DataFrame:
    """A frame table with ``landmarks`` as (68, 2) float32 arrays."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"frame table not found: {path} (run `dfbench preprocess` first)")
    table = pd.read_parquet(path)
    missing = [c for c in FRAME_COLUMNS if c not in table.columns]
    if missing:
        raise TableError(f"{path}: not a frame table, missing columns {missing}")
    # A frame without landmarks (null) gets NaN points, as DeepfakeBench frames do:
    # what needs landmarks (SBI) says which frame has none.
    table["landmarks"] = [
        np.full((68, 2), np.nan, np.float32)
        if v is None
        else np.asarray(v, dtype=np.float32).reshape(-1, 2)
        for v in table["landmarks"]
    ]
    return table
