"""Reading the frames preprocessing needs (videos, face sequences, images, mask videos) and
writing face crops.

Every problem with a source is a :class:`VideoReadError` (an ``OSError``)
whose message says what is wrong without the path (the failures table has the
path in a column of its own). Mask videos report their problems instead of
raising: a fake whose mask is missing or short still has usable faces.
"""

from __future__ import annotations

import tarfile
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from src.data.paths import member_folder
from src.errors import DFBenchError
from src.files import IMAGE_SUFFIXES, atomic_write


class VideoReadError(OSError):
    """A video (or face sequence, or image) that cannot be read at all."""


def sample_indices(n_frames: int, count: int) -> np.ndarray:
    """``count`` frame numbers spread evenly from the first to the last frame."""
    if n_frames <= 0 or count <= 0:
        return np.empty(0, dtype=np.int64)
    return np.unique(np.round(np.linspace(0, n_frames - 1, min(count, n_frames))).astype(np.int64))


def is_sequence(path: str) -> bool:
    """Whether ``path`` is a face sequence (a folder of images, or ``archive::folder``)."""
    return "::" in path or Path(path).is_dir()


def _grab(capture: cv2.VideoCapture, wanted: set[int], last: int) -> dict[int, np.ndarray]:
    """Decode the frames numbered in ``wanted`` (BGR), reading sequentially up to ``last``."""
    frames: dict[int, np.ndarray] = {}
    # Sequential grab is exact where seeking in mp4 is not; retrieve decodes
    # only the frames we keep.
    for index in range(last + 1):
        if not capture.grab():
            break
        if index in wanted:
            ok, frame = capture.retrieve()
            if ok and frame is not None and frame.size:
                frames[index] = frame
    return frames


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
        decoded = _grab(capture, set(wanted.tolist()), int(wanted[-1]))
        if not decoded:
            raise VideoReadError("no frame could be decoded (truncated or corrupt video)")
        return {i: cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for i, f in decoded.items()}, wanted
    finally:
        capture.release()


def _decode_sequence(
    names: list[str], count: int, read: Callable[[str], bytes]
) -> tuple[dict[int, np.ndarray], np.ndarray]:
    wanted = sample_indices(len(names), count)
    if wanted.size == 0:
        raise VideoReadError("the face sequence holds no images")
    frames = {}
    for index in wanted.tolist():
        image = cv2.imdecode(np.frombuffer(read(names[index]), np.uint8), cv2.IMREAD_COLOR)
        if image is not None and image.size:
            frames[index] = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if not frames:
        raise VideoReadError("no image of the face sequence could be decoded")
    return frames, wanted


def _sequence_frames(path: str, count: int) -> tuple[dict[int, np.ndarray], np.ndarray]:
    """Frames of a face sequence: a folder of images, or ``archive::folder`` in a tar."""
    if "::" not in path and not Path(path).is_dir():
        raise VideoReadError("face-sequence folder not found")
    try:
        if "::" in path:
            archive_path, folder = path.split("::", 1)
            if not Path(archive_path).is_file():
                raise VideoReadError("archive not found")
            folder = folder.rstrip("/") or "."
            with tarfile.open(archive_path) as archive:
                names = sorted(
                    m.name
                    for m in archive.getmembers()
                    if m.isfile()
                    and member_folder(m.name) == folder
                    and m.name.lower().endswith(IMAGE_SUFFIXES)
                )
                return _decode_sequence(names, count, lambda name: archive.extractfile(name).read())
        names = sorted(str(p) for p in Path(path).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        return _decode_sequence(names, count, lambda name: Path(name).read_bytes())
    except VideoReadError:
        raise
    except (tarfile.TarError, OSError, EOFError) as error:
        raise VideoReadError(f"cannot read the face sequence: {error}") from error


def read_frames(path: str, count: int) -> tuple[dict[int, np.ndarray], np.ndarray]:
    """Evenly spaced RGB frames ``{frame number: image}`` and the frame numbers asked for.

    ``path`` is a video file, a face-sequence folder (or ``archive::folder``),
    or a single image (one frame).

    Raises:
        VideoReadError: nothing could be read; the message says why.
    """
    if is_sequence(path):
        return _sequence_frames(path, count)
    if Path(path).suffix.lower() in IMAGE_SUFFIXES:
        if not Path(path).is_file():
            raise VideoReadError("file not found")
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None or not image.size:
            raise VideoReadError("cannot be read as an image (empty or corrupt)")
        return {0: cv2.cvtColor(image, cv2.COLOR_BGR2RGB)}, np.zeros(1, dtype=np.int64)
    return _video_frames(path, count)


def read_masks(
    path: str, indices: list[int], threshold: int
) -> tuple[dict[int, np.ndarray], str | None]:
    """Binary uint8 masks (0/255) of the frames numbered ``indices`` of a mask video.

    Returns the masks found and, when the file cannot be read at all, why
    (None otherwise). Frames past a truncated end are simply absent.
    """
    file = Path(path)
    if not file.is_file():
        return {}, "mask video not found"
    if file.stat().st_size == 0:
        return {}, "mask video is empty (0 bytes)"
    capture = cv2.VideoCapture(path)
    try:
        if not capture.isOpened():
            return {}, "mask video cannot be opened (truncated, corrupt or not a video)"
        decoded = _grab(capture, set(indices), max(indices) if indices else -1)
    finally:
        capture.release()
    masks = {
        i: np.where(frame.max(axis=2) >= threshold, 255, 0).astype(np.uint8)
        for i, frame in decoded.items()
    }
    return masks, None


def write_png(path: Path, image: np.ndarray, compression: int) -> Path:
    """Encode an RGB (or grey) image as PNG and write it atomically, without an fsync.

    The caller syncs the files (:func:`src.files.fsync_files`) before the
    marker that vouches for them.

    Raises:
        ValueError: the image is empty or cannot be encoded.
    """
    if image.size == 0:
        raise DFBenchError(f"empty image ({image.shape[1]} x {image.shape[0]} px)")
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    ok, encoded = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, compression])
    if not ok:
        raise DFBenchError("PNG encoding failed")
    return atomic_write(path, lambda handle: handle.write(encoded.tobytes()), durable=False)
