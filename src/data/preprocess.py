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
before a video is redone, so it never vouches for half-rewritten crops.

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
cached as a video's failure. Face sequences (WildDeepfake) are already face
crops: their frames are landmarked in place, not re-cropped.

Outputs, for a table named ``NAME`` (a plain name): ``<cache>/tables/NAME.parquet``
(the frame table, :data:`~src.data.tables.FRAME_COLUMNS`, paths relative to
``<cache>``) and ``<cache>/tables/NAME_failures.csv``.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any

import cv2
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from src.data.cache import MARKER, index_record, read_marker, source_identity, write_marker
from src.data.faces import MIN_DETECTABLE, Face, FaceDetector, Landmarker, crop_box, select_faces
from src.data.options import Interval, describe, matches
from src.data.paths import check_key, check_name, inside
from src.data.tables import FRAME_COLUMNS, SPLITS, TableError, video_table
from src.data.video_io import (
    VideoReadError,
    is_sequence,
    read_frames,
    read_masks,
    sample_indices,
    write_png,
)
from src.files import atomic_write, atomic_write_csv, fsync_directory, fsync_files

__all__ = [
    "FAILURE_COLUMNS",
    "PreprocessConfig",
    "PreprocessResult",
    "VideoPreprocessor",
    "VideoReadError",
    "load_frame_table",
    "preprocess",
    "read_frames",
    "sample_indices",
]

FAILURE_COLUMNS = ("video_key", "frame_idx", "path", "reason")
#: Frames per video for a split that ``PreprocessConfig.frames`` does not name.
DEFAULT_FRAMES = 32
#: Errors in one video's or frame's data that become a failure row (a machine's
#: OSError, such as a full disk, stops the run instead).
DATA_ERRORS = (cv2.error, ValueError, RuntimeError, IndexError)
#: Files a video's folder may hold besides its marker: crops, masks, and the
#: temporary files of an interrupted atomic write.
_VIDEO_FILE = re.compile(r"^(\d{6}(_face\d+)?(_mask)?\.png|\..+\.tmp)$")

_write_png = write_png  # the name benchmarks/preprocess_throughput.py imports

_SETTINGS_SCHEMA: dict[str, Any] = {
    "crop_scale": Annotated[float, Interval(0, None, low_open=True)],
    "keep_all_faces": bool,
    "detect_size": Annotated[int, Interval(MIN_DETECTABLE, None)],
    "min_face_fraction": Annotated[float, Interval(0, 1, low_open=True)],
    "threshold": Annotated[float, Interval(0, 1)],
    "mask_threshold": Annotated[int, Interval(1, 255)],
    "png_compression": Annotated[int, Interval(0, 9)],
}
_FRAME_COUNT = Annotated[int, Interval(1, None)]


@dataclass
class PreprocessConfig:
    """Settings of one preprocessing run (each video's marker records those that shape it).

    Values are checked on construction; a bad one is a one-line ``ValueError``
    naming the setting, the value and what is allowed.

    Attributes:
        frames: frames per video for each split (protocol defaults: 32; LAA-Net
            trains on 128); a split not named gets 32.
        crop_scale: side of the square crop over the face box's longer side (> 0).
        keep_all_faces: keep every face at least half the largest's size
            (``face_idx`` 0 is the largest) instead of the largest only.
        detect_size: shorter side of the frame MTCNN sees (>= 12, MTCNN's window).
        min_face_fraction: smallest face MTCNN looks for, relative to that side (0, 1].
        threshold: minimum face probability [0, 1].
        mask_threshold: mask-video pixels at or above this (1-255) are manipulated.
        png_compression: PNG compression level 0-9 (lossless either way; 1 is
            fast). It changes no pixel, so changing it redoes nothing.
    """

    frames: dict[str, int] = field(default_factory=lambda: {"train": 32, "val": 32, "test": 32})
    crop_scale: float = 1.3
    keep_all_faces: bool = False
    detect_size: int = 360
    min_face_fraction: float = 0.1
    threshold: float = 0.9
    mask_threshold: int = 128
    png_compression: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.frames, dict):
            raise ValueError(
                f"preprocess setting frames must be a mapping split -> count, got {self.frames!r}"
            )
        for split, count in self.frames.items():
            if split not in SPLITS:
                raise ValueError(
                    f"preprocess setting frames names the unknown split {split!r}; "
                    f"expected some of {', '.join(SPLITS)}"
                )
            _check_setting(f"frames[{split!r}]", count, _FRAME_COUNT)
        self.frames = {split: int(count) for split, count in self.frames.items()}
        for name, hint in _SETTINGS_SCHEMA.items():
            _check_setting(name, getattr(self, name), hint)
        # Plain Python values: they are compared with the ones a marker stored as JSON.
        for name in ("crop_scale", "min_face_fraction", "threshold"):
            setattr(self, name, float(getattr(self, name)))
        for name in ("detect_size", "mask_threshold", "png_compression"):
            setattr(self, name, int(getattr(self, name)))
        self.keep_all_faces = bool(self.keep_all_faces)

    def frames_for(self, split: str) -> int:
        return self.frames.get(split, DEFAULT_FRAMES)

    def settings(self, split: str) -> dict[str, Any]:
        """The settings that shape the crops of a video of ``split`` (recorded in its marker)."""
        values = asdict(self)
        del values["frames"], values["png_compression"]
        return values | {"frames": self.frames_for(split)}

    def digest(self) -> str:
        return hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


def _check_setting(name: str, value: Any, hint: Any) -> None:
    if not matches(value, hint):
        raise ValueError(f"preprocess setting {name} must be {describe(hint)}, got {value!r}")


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class VideoPreprocessor:
    """Turns one video-table row into frame rows and failure records, and reuses what it can.

    Args:
        cache_root: the frame cache.
        config: preprocessing settings.
        content_hash: identify sources by their SHA-256 rather than size and
            modification time (slower: every source is read on every run).
    """

    def __init__(
        self, cache_root: str | Path, config: PreprocessConfig, content_hash: bool = False
    ) -> None:
        self.cache_root = Path(cache_root)
        self.config = config
        self.content_hash = content_hash

    # The models load only when a video has to be (re)done: a fully cached re-run needs neither.
    @cached_property
    def detector(self) -> FaceDetector:
        config = self.config
        return FaceDetector(config.detect_size, config.min_face_fraction, config.threshold)

    @cached_property
    def landmarker(self) -> Landmarker:
        return Landmarker()

    def folder(self, video_key: str) -> Path:
        """The video's cache folder, checked to stay inside the cache."""
        check_key(video_key, "preprocess")
        return inside(self.cache_root, video_key, f"video key {video_key!r}")

    def marker(self, video_key: str) -> Path:
        return self.folder(video_key) / MARKER

    def produced_by(self, video: dict[str, Any]) -> dict[str, Any]:
        """What a video's crops are made from: source and mask identities and its settings."""
        mask = None
        if video["mask_path"]:
            mask = source_identity(video["mask_path"], self.content_hash) or {
                "missing": video["mask_path"]
            }
        return {
            "source": source_identity(video["path"], self.content_hash),
            "mask": mask,
            "settings": self.config.settings(video["split"]),
        }

    def reuse(
        self, video: dict[str, Any], produced_by: dict[str, Any]
    ) -> tuple[str, pd.DataFrame, list[dict]] | None:
        """``("fresh" | "reindexed", rows, failures)`` when the cached video can serve, else None."""
        if produced_by["source"] is None:
            return None
        found = read_marker(self.marker(video["video_key"]))
        if found is None or found[1].get("produced_by") != produced_by:
            return None
        rows, record = found
        failures = list(record.get("failures", []))
        index = index_record(video)
        if record.get("index") == index:
            return "fresh", rows, failures
        # Only the index row changed: new values into the rows, no face detection.
        old_path = record.get("index", {}).get("path")
        for column, value in index.items():
            if column in rows.columns:
                rows[column] = value
        for failure in failures:
            if failure.get("path") == old_path:
                failure["path"] = video["path"]
        record = {**record, "index": index, "failures": failures}
        write_marker(self.marker(video["video_key"]), rows, record)
        return "reindexed", rows, failures

    def run(self, video: dict[str, Any], produced_by: dict[str, Any]) -> tuple[pd.DataFrame, list]:
        """:meth:`__call__`, with any data error of the video recorded as its failure."""
        try:
            return self(video, produced_by)
        except DATA_ERRORS as error:
            reason = f"preprocessing failed ({type(error).__name__}: {_first_line(error)})"
            failure = {"video_key": video["video_key"], "frame_idx": -1, "path": video["path"]}
            return pd.DataFrame(columns=list(FRAME_COLUMNS)), [failure | {"reason": reason}]

    def __call__(
        self, video: dict[str, Any], produced_by: dict[str, Any] | None = None
    ) -> tuple[pd.DataFrame, list[dict]]:
        produced_by = produced_by or self.produced_by(video)
        key, path, mask_path = video["video_key"], video["path"], video["mask_path"]
        out_dir = self.folder(key)
        failures: list[dict] = []

        def fail(frame_idx: int, reason: str, where: str = path) -> None:
            failures.append(
                {"video_key": key, "frame_idx": int(frame_idx), "path": where, "reason": reason}
            )

        if (out_dir / MARKER).exists():
            (out_dir / MARKER).unlink()
            fsync_directory(out_dir)
        empty = pd.DataFrame(columns=list(FRAME_COLUMNS))
        try:
            frames, wanted = read_frames(path, self.config.frames_for(video["split"]))
        except VideoReadError as error:
            fail(-1, str(error))
            if produced_by["source"] is None:
                return empty, failures  # missing: not cached, looked for again next time
            return self._finish(video, out_dir, empty, failures, produced_by, [])
        for index in sorted(set(wanted.tolist()) - frames.keys()):
            fail(index, "frame could not be decoded (video shorter than its header says?)")

        masks, mask_problem = (
            read_masks(mask_path, sorted(frames), self.config.mask_threshold)
            if mask_path
            else ({}, None)
        )
        usable = {}
        for index in sorted(frames):
            problem = self.detector.problem(frames[index])
            if problem is None:
                usable[index] = frames[index]
            else:
                fail(index, problem)
        rows, written = [], []
        sequence = is_sequence(path)
        for index, found in self._detect(usable).items():
            if isinstance(found, str):
                fail(index, found)
                continue
            image = frames[index]
            height, width = image.shape[:2]
            chosen = select_faces(found, self.config.keep_all_faces)
            if not chosen and sequence:
                # Already a face crop: the whole image is the face.
                chosen = [Face(np.array([0.0, 0.0, width, height]), 0.0)]
            if not chosen:
                fail(index, "no face found")
                continue
            mask = self._mask_for(index, image, masks, mask_problem, mask_path, fail)
            for face_idx, face in enumerate(chosen):
                box = (
                    np.array([0, 0, width, height])
                    if sequence
                    else crop_box(face.box, self.config.crop_scale, height, width)
                )
                try:
                    row, files = self._save(video, out_dir, index, face_idx, face, box, image, mask)
                except DATA_ERRORS as error:
                    fail(index, f"face {face_idx} could not be saved: {_first_line(error)}")
                    continue
                rows.append(row)
                written += files
        table = pd.DataFrame(rows, columns=list(FRAME_COLUMNS))
        return self._finish(video, out_dir, table, failures, produced_by, written)

    def _detect(self, images: dict[int, np.ndarray]) -> dict[int, list[Face] | str]:
        """Faces per frame; a frame on which the detector fails gets the reason instead."""
        order = list(images)
        if not order:
            return {}
        try:
            return dict(zip(order, self.detector.detect([images[i] for i in order]), strict=True))
        except DATA_ERRORS:
            pass  # one bad frame must not cost the others: retry them one by one
        found: dict[int, list[Face] | str] = {}
        for index in order:
            try:
                found[index] = self.detector.detect([images[index]])[0]
            except DATA_ERRORS as error:
                found[index] = (
                    f"face detection failed ({type(error).__name__}: {_first_line(error)})"
                )
        return found

    @staticmethod
    def _mask_for(
        index: int,
        image: np.ndarray,
        masks: dict[int, np.ndarray],
        problem: str | None,
        mask_path: str,
        fail: Any,
    ) -> np.ndarray | None:
        """The frame's mask, or None with a failure row saying why the face has none."""
        if not mask_path:
            return None
        kept = "face kept without a mask"
        if problem is not None:
            fail(index, f"{problem}; {kept}", mask_path)
            return None
        mask = masks.get(index)
        if mask is None:
            fail(
                index,
                f"mask video has no frame {index} (shorter than the video?); {kept}",
                mask_path,
            )
            return None
        if mask.shape != image.shape[:2]:
            height, width = image.shape[:2]
            fail(
                index,
                f"mask frame is {mask.shape[1]} x {mask.shape[0]} px, the video frame "
                f"{width} x {height} px; {kept}",
                mask_path,
            )
            return None
        return mask

    def _finish(
        self,
        video: dict[str, Any],
        out_dir: Path,
        table: pd.DataFrame,
        failures: list[dict],
        produced_by: dict[str, Any],
        written: list[Path],
    ) -> tuple[pd.DataFrame, list[dict]]:
        # The crops reach the disk before the marker that vouches for them.
        fsync_files(written)
        if written:
            fsync_directory(out_dir)
        record = {"produced_by": produced_by, "index": index_record(video), "failures": failures}
        write_marker(out_dir / MARKER, table, record)
        keep = {p.name for p in written}
        for entry in out_dir.iterdir():
            if entry.name not in keep and _VIDEO_FILE.match(entry.name) and entry.is_file():
                entry.unlink()  # crops of an earlier run that this one did not make
        return table, failures

    def _save(
        self,
        video: dict[str, Any],
        out_dir: Path,
        index: int,
        face_idx: int,
        face: Face,
        box: np.ndarray,
        image: np.ndarray,
        mask: np.ndarray | None,
    ) -> tuple[dict[str, Any], list[Path]]:
        x0, y0, x1, y1 = (int(v) for v in box)
        if x1 - x0 < 1 or y1 - y0 < 1:
            height, width = image.shape[:2]
            raise ValueError(f"the face box leaves no crop inside the {width} x {height} frame")
        stem = f"{index:06d}" if face_idx == 0 else f"{index:06d}_face{face_idx}"
        crop_path = write_png(
            out_dir / f"{stem}.png", image[y0:y1, x0:x1], self.config.png_compression
        )
        written = [crop_path]
        mask_rel = ""
        if mask is not None:
            mask_path = write_png(
                out_dir / f"{stem}_mask.png", mask[y0:y1, x0:x1], self.config.png_compression
            )
            written.append(mask_path)
            mask_rel = mask_path.relative_to(self.cache_root).as_posix()
        landmarks = self.landmarker(image, face.box) - np.array([x0, y0], dtype=np.float32)
        row = {column: video[column] for column in FRAME_COLUMNS if column in video}
        row.update(
            frame_idx=index,
            face_idx=face_idx,
            crop_path=crop_path.relative_to(self.cache_root).as_posix(),
            crop_mask_path=mask_rel,
            crop_x0=x0,
            crop_y0=y0,
            crop_x1=x1,
            crop_y1=y1,
            face_x0=float(face.box[0] - x0),
            face_y0=float(face.box[1] - y0),
            face_x1=float(face.box[2] - x0),
            face_y1=float(face.box[3] - y0),
            score=face.score,
            landmarks=landmarks.reshape(-1).astype(np.float32),
        )
        return row, written


# ------------------------------------------------------------- a whole table
@dataclass
class PreprocessResult:
    """What a run produced; ``updated`` counts videos whose rows were re-indexed only."""

    frames: pd.DataFrame
    failures: pd.DataFrame
    table_path: Path
    failures_path: Path
    processed: int
    skipped: int
    updated: int = 0


def preprocess(
    videos: pd.DataFrame,
    cache_root: str | Path,
    name: str,
    config: PreprocessConfig | None = None,
    progress: bool = True,
    limit: int | None = None,
    content_hash: bool = False,
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

    Raises:
        UnsafePathError: ``name`` or a video key would leave the cache.
        TableError: ``videos`` breaks the video-table schema.
    """
    check_name(name, "frame table name")
    videos = video_table(videos, name)
    config = config or PreprocessConfig()
    worker = VideoPreprocessor(cache_root, config, content_hash)
    frame_parts, failures = [], []
    processed = skipped = updated = 0
    bar = tqdm(
        videos.to_dict("records"),
        total=len(videos),
        desc=f"preprocess {name}",
        unit="video",
        disable=not progress,
    )
    for video in bar:
        produced_by = worker.produced_by(video)
        reused = worker.reuse(video, produced_by)
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
    tables = Path(cache_root) / "tables"
    frames = pd.concat(
        [p for p in frame_parts if not p.empty] or [pd.DataFrame(columns=list(FRAME_COLUMNS))],
        ignore_index=True,
    )
    failure_table = pd.DataFrame(failures, columns=list(FAILURE_COLUMNS))
    table_path, failures_path = tables / f"{name}.parquet", tables / f"{name}_failures.csv"
    if limit is None or processed < limit:
        frames = frames.sort_values(
            ["video_key", "frame_idx", "crop_path"], kind="stable"
        ).reset_index(drop=True)
        atomic_write(table_path, lambda handle: frames.to_parquet(handle, index=False))
        atomic_write_csv(failures_path, failure_table)
    return PreprocessResult(
        frames, failure_table, table_path, failures_path, processed, skipped, updated
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
    table["landmarks"] = [
        np.asarray(v, dtype=np.float32).reshape(-1, 2) for v in table["landmarks"]
    ]
    return table
