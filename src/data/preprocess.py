"""Video table -> frame cache: evenly spaced frames, faces, landmarks, mask crops.

For each video of a video table (:mod:`src.data.tables`):

1. pick ``frames[split]`` frame numbers spread evenly over the whole video
   (``linspace``; never "the first N");
2. decode them (BGR -> RGB once), detect faces in one MTCNN batch, keep the
   largest face (or, with ``keep_all_faces``, every face at least half its size);
3. crop a square ``crop_scale`` times the face box, find dlib's 68 landmarks,
   crop the manipulation mask the same way where the dataset has masks;
4. write lossless PNGs under ``<cache>/<video_key>/`` and, last, the video's
   rows as ``frames.parquet`` beside them.

The per-video ``frames.parquet`` is the "done" marker: a re-run skips videos
that have one made with the same settings and redoes the rest (a video
interrupted halfway has PNGs but no marker). Every file is written atomically.
Unreadable videos and face-less frames go to a failures table with a reason;
they never stop the dataset. Face sequences (WildDeepfake) are already face
crops: their frames are landmarked in place, not re-cropped.

Outputs, for a table named ``NAME``: ``<cache>/tables/NAME.parquet`` (the frame
table, :data:`~src.data.tables.FRAME_COLUMNS`, paths relative to ``<cache>``)
and ``<cache>/tables/NAME_failures.csv``.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from src.data.faces import Face, FaceDetector, Landmarker, crop_box, select_faces
from src.data.tables import FRAME_COLUMNS, video_table
from src.files import IMAGE_SUFFIXES, atomic_write, atomic_write_csv, atomic_write_json

FAILURE_COLUMNS = ("video_key", "frame_idx", "path", "reason")


class VideoReadError(RuntimeError):
    """A video (or face sequence) that cannot be read at all."""


@dataclass
class PreprocessConfig:
    """Settings of one preprocessing run (their hash marks finished videos).

    Attributes:
        frames: frames per video for each split (protocol defaults: 32; LAA-Net
            trains on 128).
        crop_scale: side of the square crop over the face box's longer side.
        keep_all_faces: keep every face at least half the largest's size
            (``face_idx`` 0 is the largest) instead of the largest only.
        detect_size: shorter side of the frame MTCNN sees.
        min_face_fraction: smallest face MTCNN looks for, relative to that side.
        threshold: minimum face probability.
        mask_threshold: mask-video pixels at or above this (0-255) are manipulated.
        png_compression: PNG compression level 0-9 (lossless either way; 1 is fast).
    """

    frames: dict[str, int] = field(default_factory=lambda: {"train": 32, "val": 32, "test": 32})
    crop_scale: float = 1.3
    keep_all_faces: bool = False
    detect_size: int = 360
    min_face_fraction: float = 0.1
    threshold: float = 0.9
    mask_threshold: int = 128
    png_compression: int = 1

    def digest(self) -> str:
        return hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


def sample_indices(n_frames: int, count: int) -> np.ndarray:
    """``count`` frame numbers spread evenly from the first to the last frame."""
    if n_frames <= 0:
        return np.empty(0, dtype=np.int64)
    return np.unique(np.round(np.linspace(0, n_frames - 1, min(count, n_frames))).astype(np.int64))


# ------------------------------------------------------------------ reading
def _video_frames(path: str, count: int) -> tuple[dict[int, np.ndarray], np.ndarray]:
    file = Path(path)
    if not file.is_file():
        raise VideoReadError("file not found")
    if file.stat().st_size == 0:
        raise VideoReadError("file is empty (0 bytes)")
    capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        raise VideoReadError("cannot be opened as a video (truncated, corrupt or not a video)")
    try:
        n_frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        wanted = sample_indices(n_frames, count)
        if wanted.size == 0:
            raise VideoReadError("the video reports no frames")
        frames: dict[int, np.ndarray] = {}
        targets = set(wanted.tolist())
        # Sequential grab is exact where seeking in mp4 is not; retrieve decodes
        # only the frames we keep.
        for index in range(int(wanted[-1]) + 1):
            if not capture.grab():
                break
            if index in targets:
                ok, frame = capture.retrieve()
                if ok:
                    frames[index] = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        if not frames:
            raise VideoReadError("no frame could be decoded (truncated or corrupt video)")
        return frames, wanted
    finally:
        capture.release()


def _decode_sequence(
    names: list[str], count: int, read: Any
) -> tuple[dict[int, np.ndarray], np.ndarray]:
    wanted = sample_indices(len(names), count)
    if wanted.size == 0:
        raise VideoReadError("the face sequence holds no images")
    frames = {}
    for index in wanted.tolist():
        image = cv2.imdecode(np.frombuffer(read(names[index]), np.uint8), cv2.IMREAD_COLOR)
        if image is not None:
            frames[index] = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if not frames:
        raise VideoReadError("no image of the face sequence could be decoded")
    return frames, wanted


def _sequence_frames(path: str, count: int) -> tuple[dict[int, np.ndarray], np.ndarray]:
    """Frames of a face sequence: a folder of images, or ``archive::folder`` in a tar."""
    try:
        if "::" in path:
            archive_path, folder = path.split("::", 1)
            prefix = folder.rstrip("/") + "/"
            with tarfile.open(archive_path) as archive:
                names = sorted(
                    m.name
                    for m in archive.getmembers()
                    if m.isfile()
                    and m.name.startswith(prefix)
                    and m.name.lower().endswith(IMAGE_SUFFIXES)
                )
                return _decode_sequence(names, count, lambda name: archive.extractfile(name).read())
        folder = Path(path)
        if not folder.is_dir():
            raise VideoReadError("face-sequence folder not found")
        names = sorted(str(p) for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        return _decode_sequence(names, count, lambda name: Path(name).read_bytes())
    except (tarfile.TarError, OSError) as error:
        raise VideoReadError(f"cannot read the face sequence: {error}") from error


def read_frames(path: str, count: int) -> tuple[dict[int, np.ndarray], np.ndarray]:
    """Evenly spaced RGB frames ``{frame number: image}`` and the frame numbers asked for.

    ``path`` is a video file, a face-sequence folder (or ``archive::folder``),
    or a single image (one frame).
    """
    if "::" in path or Path(path).is_dir():
        return _sequence_frames(path, count)
    if Path(path).suffix.lower() in IMAGE_SUFFIXES:
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            raise VideoReadError("cannot be read as an image (missing, empty or corrupt)")
        return {0: cv2.cvtColor(image, cv2.COLOR_BGR2RGB)}, np.zeros(1, dtype=np.int64)
    return _video_frames(path, count)


def _mask_frames(path: str, indices: list[int], threshold: int) -> dict[int, np.ndarray]:
    capture = cv2.VideoCapture(path)
    masks = {}
    try:
        targets = set(indices)
        for index in range(max(indices) + 1 if indices else 0):
            if not capture.grab():
                break
            if index in targets:
                ok, frame = capture.retrieve()
                if ok:
                    masks[index] = np.where(frame.max(axis=2) >= threshold, 255, 0).astype(np.uint8)
    finally:
        capture.release()
    return masks


# --------------------------------------------------------------- one video
def _write_png(path: Path, image: np.ndarray, compression: int) -> None:
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    ok, encoded = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, compression])
    if not ok:
        raise OSError(f"PNG encoding failed for {path}")
    atomic_write(path, lambda handle: handle.write(encoded.tobytes()), durable=False)


class VideoPreprocessor:
    """Turns one video-table row into frame rows and failure records."""

    def __init__(self, cache_root: str | Path, config: PreprocessConfig) -> None:
        self.cache_root = Path(cache_root)
        self.config = config
        self.digest = config.digest()
        self.detector = FaceDetector(config.detect_size, config.min_face_fraction, config.threshold)
        self.landmarker = Landmarker()

    def marker(self, video_key: str) -> Path:
        return self.cache_root / video_key / "frames.parquet"

    def finished(self, video_key: str) -> tuple[pd.DataFrame, list[dict]] | None:
        """The stored result of a video finished with the same settings, else None."""
        marker = self.marker(video_key)
        if not marker.is_file():
            return None
        try:
            rows = pd.read_parquet(marker)
            meta = json.loads((marker.parent / "done.json").read_text())
        except (OSError, ValueError):
            return None
        if meta.get("config") != self.digest:
            return None
        return rows, meta.get("failures", [])

    def __call__(self, video: dict[str, Any]) -> tuple[pd.DataFrame, list[dict]]:
        key, path = video["video_key"], video["path"]
        failures: list[dict] = []

        def fail(frame_idx: int, reason: str) -> None:
            failures.append(
                {"video_key": key, "frame_idx": frame_idx, "path": path, "reason": reason}
            )

        count = self.config.frames.get(video["split"], 32)
        try:
            frames, wanted = read_frames(path, count)
        except VideoReadError as error:
            fail(-1, str(error))
            return pd.DataFrame(columns=list(FRAME_COLUMNS)), failures
        for index in sorted(set(wanted.tolist()) - frames.keys()):
            fail(index, "frame could not be decoded (video shorter than its header says?)")

        indices = sorted(frames)
        is_sequence = "::" in path or Path(path).is_dir()
        masks = (
            _mask_frames(video["mask_path"], indices, self.config.mask_threshold)
            if video["mask_path"]
            else {}
        )
        detections = self.detector.detect([frames[i] for i in indices])
        out_dir = self.cache_root / key
        rows = []
        for index, faces in zip(indices, detections, strict=True):
            image = frames[index]
            height, width = image.shape[:2]
            chosen = select_faces(faces, self.config.keep_all_faces)
            if not chosen and is_sequence:
                # Already a face crop: the whole image is the face.
                chosen = [Face(np.array([0.0, 0.0, width, height]), 0.0)]
            if not chosen:
                fail(index, "no face found")
                continue
            for face_idx, face in enumerate(chosen):
                box = (
                    np.array([0, 0, width, height])
                    if is_sequence
                    else crop_box(face.box, self.config.crop_scale, height, width)
                )
                rows.append(
                    self._save(video, out_dir, index, face_idx, face, box, image, masks.get(index))
                )
        table = pd.DataFrame(rows, columns=list(FRAME_COLUMNS))
        # The done marker goes last: its presence means everything above is on disk.
        atomic_write_json(out_dir / "done.json", {"config": self.digest, "failures": failures})
        atomic_write(self.marker(key), lambda handle: table.to_parquet(handle, index=False))
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
    ) -> dict[str, Any]:
        x0, y0, x1, y1 = (int(v) for v in box)
        stem = f"{index:06d}" if face_idx == 0 else f"{index:06d}_face{face_idx}"
        crop_path = out_dir / f"{stem}.png"
        _write_png(crop_path, image[y0:y1, x0:x1], self.config.png_compression)
        mask_rel = ""
        if mask is not None:
            mask_path = out_dir / f"{stem}_mask.png"
            _write_png(mask_path, mask[y0:y1, x0:x1], self.config.png_compression)
            mask_rel = str(mask_path.relative_to(self.cache_root))
        landmarks = self.landmarker(image, face.box) - np.array([x0, y0], dtype=np.float32)
        row = {column: video[column] for column in FRAME_COLUMNS if column in video}
        row.update(
            frame_idx=index,
            face_idx=face_idx,
            crop_path=str(crop_path.relative_to(self.cache_root)),
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
        return row


# ------------------------------------------------------------- a whole table
@dataclass
class PreprocessResult:
    frames: pd.DataFrame
    failures: pd.DataFrame
    table_path: Path
    failures_path: Path
    processed: int
    skipped: int


def preprocess(
    videos: pd.DataFrame,
    cache_root: str | Path,
    name: str,
    config: PreprocessConfig | None = None,
    progress: bool = True,
    limit: int | None = None,
) -> PreprocessResult:
    """Preprocess every video of ``videos`` into ``cache_root``; resumable.

    Args:
        videos: a video table.
        cache_root: root of the frame cache.
        name: name of the resulting frame table (``<cache>/tables/<name>.parquet``).
        config: preprocessing settings.
        progress: show a progress bar.
        limit: process at most this many unfinished videos, then stop without
            writing the combined tables (for tests of interrupted runs).
    """
    videos = video_table(videos, name)
    config = config or PreprocessConfig()
    worker = VideoPreprocessor(cache_root, config)
    frame_parts, failures = [], []
    processed = skipped = 0
    bar = tqdm(
        videos.to_dict("records"),
        total=len(videos),
        desc=f"preprocess {name}",
        unit="video",
        disable=not progress,
    )
    for video in bar:
        done = worker.finished(video["video_key"])
        if done is None:
            if limit is not None and processed >= limit:
                break
            done = worker(video)
            processed += 1
        else:
            skipped += 1
        frame_parts.append(done[0])
        failures.extend(done[1])
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
    return PreprocessResult(frames, failure_table, table_path, failures_path, processed, skipped)


def load_frame_table(path: str | Path) -> pd.DataFrame:
    """A frame table with ``landmarks`` as (68, 2) float32 arrays."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"frame table not found: {path} (run `dfbench preprocess` first)")
    table = pd.read_parquet(path)
    missing = [c for c in FRAME_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: not a frame table, missing columns {missing}")
    table["landmarks"] = [
        np.asarray(v, dtype=np.float32).reshape(-1, 2) for v in table["landmarks"]
    ]
    return table
