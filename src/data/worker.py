"""One video of a video table -> its face crops, frame rows and failure rows in the cache.

What is compared to reuse a cached video is in :mod:`src.data.cache`; what
the run as a whole does (and its failure rules) in :mod:`src.data.preprocess`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from functools import cached_property, partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from src.data.cache import (
    MARKER,
    MARKER_VERSION,
    crop_damage,
    index_record,
    read_marker,
    source_identity,
    write_marker,
)
from src.data.faces import Face, FaceDetector, Landmarker, crop_box, select_faces
from src.data.paths import check_key, inside, key_folder
from src.data.settings import PreprocessConfig
from src.data.space import DiskFullError, writing
from src.data.tables import FRAME_COLUMNS
from src.data.video_io import VideoReadError, is_sequence, read_frames, read_masks, write_png
from src.errors import DFBenchError
from src.files import fsync_directory, fsync_files

FAILURE_COLUMNS = ("video_key", "frame_idx", "path", "reason")
#: Errors in one video's or frame's data that become a failure row (a machine's
#: OSError, such as a full disk, stops the run instead).
DATA_ERRORS = (cv2.error, ValueError, RuntimeError, IndexError)
#: Files a video's folder may hold besides its marker: crops, masks, and the
#: temporary files of an interrupted atomic write.
_VIDEO_FILE = re.compile(r"^(\d{6}(_face\d+)?(_mask)?\.png|\..+\.tmp)$")


def _absent(path: str) -> str:
    """Why a source without identity cannot be read: it is missing, or unreadable."""
    file = Path(path.split("::", 1)[0])
    if file.exists():
        return "cannot be read (permissions?)"
    return "archive not found" if "::" in path else "file not found"


def _total_bytes(files: list[Path]) -> int:
    return sum(file.stat().st_size for file in files)


def _estimate(written: list[Path], expected: int) -> int | None:
    """About how many bytes a video's ``expected`` crops take, from those ``written`` so far."""
    if not written:
        return None
    return _total_bytes(written) * max(expected, len(written)) // len(written)


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
        # Absolute and normalised like the folders `inside` returns, so relative_to works
        # for a cache given relative to the working directory.
        self.cache_root = Path(os.path.normpath(os.path.abspath(os.path.expanduser(cache_root))))
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
        """The video's cache folder (:func:`~src.data.paths.key_folder`), inside the cache."""
        check_key(video_key, "preprocess")
        return inside(self.cache_root, key_folder(video_key), f"video key {video_key!r}")

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
    ) -> tuple[str, pd.DataFrame, list[dict]] | str | None:
        """What the cache holds for ``video``.

        Returns:
            ``("fresh" | "reindexed", rows, failures)`` when the cached video can
            serve; a string saying why when it was made from the same source and
            settings but its crops are damaged (missing, another size than
            recorded); None when there is nothing to reuse.
        """
        if produced_by["source"] is None:
            return None
        marker = self.marker(video["video_key"])
        found = read_marker(marker)
        if found is None or found[1].get("produced_by") != produced_by:
            return None
        rows, record = found
        files = [
            self.cache_root / relative
            for column in ("crop_path", "crop_mask_path")
            for relative in rows[column]
            if relative
        ]
        damage = crop_damage(files, record.get("crop_bytes"))
        if damage is not None:
            return damage
        failures = list(record.get("failures", []))
        index = index_record(video)
        if record.get("version") != MARKER_VERSION:
            # Checked the slow way once; from now on their sizes tell.
            record["crop_bytes"] = {file.name: file.stat().st_size for file in files}
            if record.get("index") == index:
                with writing(marker):
                    write_marker(marker, rows, record)
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
        with writing(marker):
            write_marker(marker, rows, record)
        return "reindexed", rows, failures

    def run(self, video: dict[str, Any], produced_by: dict[str, Any]) -> tuple[pd.DataFrame, list]:
        """:meth:`__call__`, with any data error of the video recorded as its failure."""
        try:
            return self(video, produced_by)
        except DiskFullError:
            raise  # the machine's problem, not the video's: stop the run
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

        if produced_by["source"] is None:
            # Missing (or unreadable) source: say so, but leave its cache alone and
            # cache nothing, so the video is looked for again on the next run.
            fail(-1, _absent(path))
            return pd.DataFrame(columns=list(FRAME_COLUMNS)), failures
        if (out_dir / MARKER).exists():
            (out_dir / MARKER).unlink()
            fsync_directory(out_dir)
        empty = pd.DataFrame(columns=list(FRAME_COLUMNS))
        try:
            frames, wanted = read_frames(path, self.config.frames_for(video["split"]))
        except VideoReadError as error:
            fail(-1, str(error))
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
        expected = len(usable) * (2 if mask_path else 1)
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
                needed = partial(_estimate, written, expected)
                try:
                    row, files = self._save(
                        video, out_dir, index, face_idx, face, box, image, mask, needed
                    )
                except DiskFullError:
                    raise
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
        with writing(out_dir / MARKER, _total_bytes(written)):
            fsync_files(written)
            if written:
                fsync_directory(out_dir)
            record = {
                "produced_by": produced_by,
                "index": index_record(video),
                "failures": failures,
                "crop_bytes": {file.name: file.stat().st_size for file in written},
            }
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
        needed: Callable[[], int | None] | None = None,
    ) -> tuple[dict[str, Any], list[Path]]:
        """Write one face's crop (and mask crop); ``needed`` estimates the video's space
        for the message of a full disk."""
        x0, y0, x1, y1 = (int(v) for v in box)
        if x1 - x0 < 1 or y1 - y0 < 1:
            height, width = image.shape[:2]
            raise DFBenchError(f"the face box leaves no crop inside the {width} x {height} frame")
        stem = f"{index:06d}" if face_idx == 0 else f"{index:06d}_face{face_idx}"
        crop_path = out_dir / f"{stem}.png"
        with writing(crop_path, needed):
            write_png(crop_path, image[y0:y1, x0:x1], self.config.png_compression)
        written = [crop_path]
        mask_rel = ""
        if mask is not None:
            mask_path = out_dir / f"{stem}_mask.png"
            with writing(mask_path, needed):
                write_png(mask_path, mask[y0:y1, x0:x1], self.config.png_compression)
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
