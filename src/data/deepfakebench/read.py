"""Reading a DeepfakeBench JSON index into a dfbench frame table (see :mod:`src.data.deepfakebench`)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

from src.data.indexers.base import (
    COMPRESSIONS,
    HELD_OUT_ORDER,
    DatasetLayoutError,
    DatasetLayoutWarning,
    absolute,
    as_list,
    check_split,
    read_json,
)
from src.data.paths import check_key, inside, no_parent_parts
from src.data.tables import FRAME_COLUMNS, SPLITS, frame_table

PREFIX = "dfb"
FORMAT = (
    'a DeepfakeBench index {"<Dataset>": {"<label_key>": {"<split>": {["<comp>":] '
    '{"<video>": {"label": ..., "frames": [...], "masks": [...]}}}}}}'
)
#: DeepfakeBench dataset name -> dfbench dataset name.
DATASET_NAMES = {
    "FaceForensics++": "ffpp",
    "FaceForensics++_c40": "ffpp",
    "FF-DF": "ffpp",
    "FF-F2F": "ffpp",
    "FF-FS": "ffpp",
    "FF-NT": "ffpp",
    "FaceShifter": "ffpp",
    "Celeb-DF-v2": "cdf2",
    "DeepFakeDetection": "dfd",
    "DFDC": "dfdc",
    "DFDCP": "dfdcp",
    "WDF": "dfw",
    "DeeperForensics-1.0": "df1",
}


def label_of(label_key: str, label_map: Mapping[str, int] | None = None) -> int:
    """0/1 of a DeepfakeBench label key: ``label_map`` first, else "real" in it -> 0."""
    if label_map and label_key in label_map:
        return int(label_map[label_key])
    return 0 if "real" in label_key.lower() else 1


def landmark_path(frame: Path) -> Path | None:
    """Where DeepfakeBench keeps a frame's landmarks (``frames`` -> ``landmarks``, ``.npy``)."""
    parts = list(frame.parts)
    if "frames" not in parts:
        return None
    at = len(parts) - 1 - parts[::-1].index("frames")
    parts[at] = "landmarks"
    return Path(*parts).with_suffix(".npy")


def load_landmarks(frame: Path) -> np.ndarray | None:
    """The first 68 landmarks of a frame, flattened to (136,) float32, or None."""
    path = landmark_path(frame)
    if path is None or not path.is_file():
        return None
    points = np.load(path, allow_pickle=False)
    if points.ndim != 2 or points.shape[1] != 2 or points.shape[0] < 68:
        warnings.warn(
            f"{path}: landmarks of shape {points.shape} ignored; expected (81, 2) or (68, 2)",
            DatasetLayoutWarning,
            stacklevel=2,
        )
        return None
    return np.ascontiguousarray(points[:68], dtype=np.float32).reshape(-1)


def frame_numbers(frames: Sequence[str]) -> list[int]:
    """Numbers from the file names when all are distinct numbers, else positions."""
    stems = [PurePosixPath(f).stem for f in frames]
    if all(s.isdigit() for s in stems) and len({int(s) for s in stems}) == len(stems):
        return [int(s) for s in stems]
    return list(range(len(frames)))


def _videos(data: Any, path: Path) -> list[tuple[str, str, str, str, str, dict]]:
    """(dataset, label key, split, compression, name, entry) of every video in the JSON."""
    if not isinstance(data, dict):
        raise DatasetLayoutError(path, FORMAT, "not a JSON object")
    found = []
    for dataset, labels in data.items():
        for label_key, splits in _items(labels, path, dataset):
            for split, videos in _items(splits, path, f"{dataset}/{label_key}"):
                where = f"{dataset}/{label_key}/{split}"
                if split not in SPLITS:
                    raise DatasetLayoutError(path, FORMAT, f"{where}: unknown split")
                for name, entry in _items(videos, path, where):
                    if isinstance(entry, dict) and "frames" in entry:
                        found.append((dataset, label_key, split, "", name, entry))
                    elif name in COMPRESSIONS:
                        for video, inner in _items(entry, path, f"{where}/{name}"):
                            if not (isinstance(inner, dict) and "frames" in inner):
                                raise DatasetLayoutError(
                                    path, FORMAT, f"{where}/{name}/{video} has no frames"
                                )
                            found.append((dataset, label_key, split, name, video, inner))
                    else:
                        raise DatasetLayoutError(path, FORMAT, f"{where}/{name} has no frames")
    return found


def _items(value: Any, path: Path, where: str) -> list[tuple[str, Any]]:
    if not isinstance(value, dict):
        raise DatasetLayoutError(path, FORMAT, f"{where} is not a JSON object")
    return list(value.items())


def _resolve(frame: Any, data_root: Path | None, path: Path, where: str) -> Path:
    """A frame (or mask) path of the index: inside ``data_root`` when there is one.

    Without ``data_root`` only absolute paths are accepted (the file is then
    the user's own list of files); with it, relative and absolute paths alike
    must lie inside it. A path with a ``..`` part is refused either way.
    """
    if not isinstance(frame, str) or not frame.strip():
        raise DatasetLayoutError(path, FORMAT, f"{where}: frame path {frame!r} is not a path")
    text = frame.replace("\\", "/")
    if data_root is not None:
        resolved = inside(data_root, text, f"{path}: {where}")
        no_parent_parts(text, f"{path}: {where}")
        return resolved
    no_parent_parts(text, f"{path}: {where}")
    if PurePosixPath(text).is_absolute():
        return absolute(text)
    raise DatasetLayoutError(
        path,
        "absolute frame paths, or data_root= to resolve relative ones against",
        f"frame path {text!r} is relative",
    )


def _entry_lists(entry: dict, path: Path, key: str) -> tuple[list, list]:
    """An entry's ``frames`` and ``masks`` lists, after checking their types."""
    frames, masks = entry.get("frames"), entry.get("masks")
    if frames is None:
        frames = []
    if not isinstance(frames, list):
        raise DatasetLayoutError(
            path, FORMAT, f"{key}: frames is {type(frames).__name__}, not a list"
        )
    if masks is None:
        masks = []
    if not isinstance(masks, list):
        raise DatasetLayoutError(
            path, FORMAT, f"{key}: masks is {type(masks).__name__}, not a list"
        )
    label = entry.get("label")
    if label is not None and not isinstance(label, str):
        raise DatasetLayoutError(path, FORMAT, f"{key}: label {label!r} is not a label key")
    return frames, masks


def read_deepfakebench_json(
    path: str | Path,
    data_root: str | Path | None = None,
    label_map: Mapping[str, int] | None = None,
    splits: str | Sequence[str] | None = None,
    landmarks: bool = True,
) -> pd.DataFrame:
    """Read a DeepfakeBench JSON index into a frame table (one row per frame).

    Args:
        path: the JSON file.
        data_root: base of relative frame paths (DeepfakeBench's ``rgb_dir``).
        label_map: label key -> 0 (real) / 1 (fake), overriding the "real" rule.
        splits: only these splits (default all).
        landmarks: load the landmark files beside the frames (one small file each).

    Raises:
        DatasetLayoutError: the file is missing or not in the format.
    """
    path = absolute(path)
    root = absolute(data_root) if data_root is not None else None
    data = read_json(path, FORMAT)
    wanted = {check_split(s, "splits") for s in as_list(splits)} or set(SPLITS)

    chosen: dict[str, tuple[str, tuple]] = {}
    repeated = []
    for dataset, label_key, split, comp, name, entry in _videos(data, path):
        if split not in wanted:
            continue
        key = "/".join((PREFIX, dataset, label_key, *([comp] if comp else []), name))
        check_key(key, f"{path}: {dataset}/{label_key}/{split}")
        previous = chosen.get(key)
        if previous is not None:
            repeated.append(key)
            if HELD_OUT_ORDER.index(previous[0]) <= HELD_OUT_ORDER.index(split):
                continue
        chosen[key] = (split, (dataset, label_key, comp, entry))
    if repeated:
        warnings.warn(
            f"{path}: {len(set(repeated))} videos are listed under several splits "
            f"(e.g. {sorted(set(repeated))[0]}); each is kept once, in its most held-out split",
            DatasetLayoutWarning,
            stacklevel=2,
        )

    columns: dict[str, list] = {c: [] for c in FRAME_COLUMNS}
    empty = []
    # Sorted by key: the table does not depend on the JSON's key order.
    for key, (split, (dataset, label_key, comp, entry)) in sorted(chosen.items()):
        frames, masks = _entry_lists(entry, path, key)
        label = label_of(str(entry.get("label") or label_key), label_map)
        frames = [_resolve(f, root, path, key) for f in frames]
        if not frames:
            # A video whose faces were all lost in preprocessing has nothing to read.
            empty.append(key)
            continue
        if masks and len(masks) != len(frames):
            raise DatasetLayoutError(
                path, "as many masks as frames", f"{key}: {len(masks)} masks, {len(frames)} frames"
            )
        masks = [_resolve(m, root, path, key) if m else "" for m in masks] or [""] * len(frames)
        numbers = frame_numbers([f.name for f in frames])
        for number, frame, mask in sorted(zip(numbers, frames, masks, strict=True)):
            video = {
                "video_key": key,
                "path": str(frames[0].parent),
                "label": label,
                "split": split,
                "dataset": DATASET_NAMES.get(dataset, dataset),
                "method": label_key,
                "compression": comp,
                "mask_path": "",
                "source_id": "",
                "target_id": "",
                "frame_idx": number,
                "face_idx": 0,
                "crop_path": str(frame),
                "crop_mask_path": str(mask),
                "landmarks": load_landmarks(frame) if landmarks else None,
            }
            for column in FRAME_COLUMNS:
                columns[column].append(video.get(column, np.nan))
    if empty:
        warnings.warn(
            f"{path}: skipped {len(empty)} videos without frames (e.g. {empty[0]})",
            DatasetLayoutWarning,
            stacklevel=2,
        )
    return frame_table(pd.DataFrame(columns), name=str(path))
