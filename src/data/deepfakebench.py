"""Read and write DeepfakeBench's JSON index of preprocessed frames.

DeepfakeBench (and DF40, ForensicHub) describe a preprocessed dataset with one
JSON file (as distributed; ``docs/datasets.md``)::

    {"<DatasetName>": {"<label_key>": {"train"|"val"|"test": {["c23"|"c40"|"raw":]
        {"<video name>": {"label": "<label_key>", "frames": [...], "masks": [...]}}}}}}

:func:`read_deepfakebench_json` turns one into a dfbench frame table (one row
per frame, columns :data:`src.data.tables.FRAME_COLUMNS`), so data a user has
already prepared with DeepfakeBench can be used as is;
:func:`write_deepfakebench_json` writes a frame table back in that format.

Decisions:

* **Keys** are ``dfb/<DatasetName>/<label_key>[/<comp>]/<video name>``: unique
  across label keys (FF++'s ``000_003`` under FF-DF and FF-F2F stay two videos)
  and compressions, and never equal to a key made by dfbench's own indexers.
* **Labels**: ``label_map`` (label key -> 0/1) is consulted first; any other key
  is real (0) when it contains "real" in any case, else fake (1).
* **Columns**: ``method`` is the label key, ``dataset`` the dfbench name when
  known (``FaceForensics++`` -> ``ffpp`` ...) else DeepfakeBench's, ``path`` the
  folder of the frames, ``crop_path`` the frame (absolute; relative paths are
  resolved against ``data_root`` and are an error without it, since guessing
  the base would give a table of paths that do not exist), ``crop_mask_path``
  its mask or ``""``. Box and score columns are NaN (the format has none).
* **Order**: rows are sorted by video key, then frame number, whatever the
  order of the JSON's keys.
* **Frame numbers**: the file names' numbers when every frame of a video has a
  distinct numeric name (``017.png`` -> 17), else the positions in the list.
* **Landmarks**: DeepfakeBench keeps 81 points beside each frame
  (``.../frames/<v>/017.png`` -> ``.../landmarks/<v>/017.npy``); the first 68
  (the dlib 68-point layout dfbench uses) are kept as a flat float32 array of
  136 values, or None where the file is missing.
* **A video listed under several splits** (DeepfakeBench's own Celeb-DF-v2 JSON
  repeats its test videos under ``val`` and ``train``) is kept once, in the most
  held-out split (test, then val, then train), with a warning: a test video must
  never be trained on or choose a checkpoint.
* **Containment.** With ``data_root``, every frame and mask path (relative or
  absolute) must lie inside it; without, only absolute paths are read. Keys
  built from the JSON's names are checked like any video key (no ``..``).
  An entry whose ``frames``/``masks`` is not a list, or whose frame is not a
  path, is an error naming it.
* **Writing** keeps the frame order, writes ``masks`` only for videos that have
  one, and no landmark files (DeepfakeBench expects 81 points; dfbench keeps 68).
  Rows read by :func:`read_deepfakebench_json` are written back under their
  original dataset, label key, compression and name, so a read-write-read
  round trip returns the same table. Other frame tables are placed under
  DeepfakeBench's names for their dataset and method (``ffpp`` Deepfakes ->
  ``FaceForensics++`` / ``FF-DF``), which ``label_keys`` can override.
"""

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
from src.data.paths import check_key, check_name, inside
from src.data.tables import FRAME_COLUMNS, SPLITS, frame_table
from src.files import atomic_write_json

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
#: dfbench dataset name -> DeepfakeBench dataset name (for writing).
DFB_NAMES = {
    "ffpp": "FaceForensics++",
    "cdf2": "Celeb-DF-v2",
    "dfd": "DeepFakeDetection",
    "dfdc": "DFDC",
    "dfdcp": "DFDCP",
    "dfw": "WDF",
    "df1": "DeeperForensics-1.0",
}
#: (dfbench dataset, method) -> DeepfakeBench label key, where a plain "<Dataset>_real/fake"
#: is not what DeepfakeBench calls it.
LABEL_KEYS = {
    ("ffpp", "youtube"): "FF-real",
    ("ffpp", "Deepfakes"): "FF-DF",
    ("ffpp", "Face2Face"): "FF-F2F",
    ("ffpp", "FaceSwap"): "FF-FS",
    ("ffpp", "NeuralTextures"): "FF-NT",
    ("ffpp", "FaceShifter"): "FF-FH",
    ("dfdcp", "method_A"): "DFDCP_FakeA",
    ("dfdcp", "method_B"): "DFDCP_FakeB",
}
#: dfbench dataset -> (real, fake) label keys.
BINARY_LABEL_KEYS = {
    "ffpp": ("FF-real", "FF-fake"),
    "cdf2": ("CelebDFv2_real", "CelebDFv2_fake"),
    "dfd": ("DFD_real", "DFD_fake"),
    "dfdc": ("DFDC_Real", "DFDC_Fake"),
    "dfdcp": ("DFDCP_Real", "DFDCP_Fake"),
    "dfw": ("WDF_real", "WDF_fake"),
    "df1": ("DF_real", "DF_fake"),
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
    must lie inside it.
    """
    if not isinstance(frame, str) or not frame.strip():
        raise DatasetLayoutError(path, FORMAT, f"{where}: frame path {frame!r} is not a path")
    text = frame.replace("\\", "/")
    if data_root is not None:
        return inside(data_root, text, f"{path}: {where}")
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


def _coordinates(
    videos: pd.DataFrame, dataset_name: str | None, label_keys: Mapping[str, str] | None
) -> pd.DataFrame:
    """DeepfakeBench (dataset, label key, video name) of each video, one row per video."""
    out = []
    for video in videos.itertuples(index=False):
        parts = video.video_key.split("/")
        from_dfb = parts[0] == PREFIX and len(parts) >= (5 if video.compression else 4)
        if from_dfb:
            dataset, label_key = parts[1], parts[2]
            name = "/".join(parts[4:] if video.compression else parts[3:])
        else:
            dataset = DFB_NAMES.get(video.dataset, video.dataset)
            real, fake = BINARY_LABEL_KEYS.get(
                video.dataset, (f"{dataset}_real", f"{dataset}_fake")
            )
            label_key = LABEL_KEYS.get((video.dataset, video.method), fake if video.label else real)
            name = parts[-1]
        if label_keys and video.method in label_keys:
            label_key = label_keys[video.method]
        out.append((dataset_name or dataset, label_key, name, "/".join(parts[1:])))
    table = pd.DataFrame(out, columns=["dfb_dataset", "label_key", "name", "long_name"])
    table["split"] = videos["split"].to_numpy()
    table["compression"] = videos["compression"].to_numpy()
    # A short name that two videos share in one place would merge them: use the long one.
    place = ["dfb_dataset", "label_key", "split", "compression", "name"]
    clash = table.duplicated(place, keep=False)
    table.loc[clash, "name"] = table.loc[clash, "long_name"]
    if table.duplicated(place).any():
        raise ValueError("two videos map to one DeepfakeBench entry; pass distinct label_keys")
    return table


def _relative(path: str, data_root: Path | None) -> str:
    if data_root is None or not path:
        return path
    try:
        return Path(path).relative_to(data_root).as_posix()
    except ValueError:
        return path


def to_deepfakebench(
    frames: pd.DataFrame,
    data_root: str | Path | None = None,
    dataset_name: str | None = None,
    label_keys: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A frame table as a DeepfakeBench index (the dict :func:`write_deepfakebench_json` saves).

    Args:
        frames: a frame table (:data:`src.data.tables.FRAME_COLUMNS`).
        data_root: write frame paths under it relative to it (others stay as they are).
        dataset_name: put every video under this DeepfakeBench dataset name.
        label_keys: method -> label key, overriding the defaults.
    """
    frames = frame_table(frames)
    if (frames["label"] == -1).any():
        unknown = frames.loc[frames["label"] == -1, "video_key"].iloc[0]
        raise ValueError(
            f"video {unknown} has an unknown label (-1); a DeepfakeBench index needs 0 or 1"
        )
    root = absolute(data_root) if data_root is not None else None
    videos = frames.drop_duplicates("video_key").reset_index(drop=True)
    places = _coordinates(videos, dataset_name, label_keys)
    places.index = videos["video_key"]
    index: dict[str, Any] = {}
    for key, group in frames.groupby("video_key", sort=False):
        place = places.loc[key]
        entry: dict[str, Any] = {
            "label": place["label_key"],
            "frames": [_relative(p, root) for p in group["crop_path"]],
        }
        if (group["crop_mask_path"] != "").any():
            entry["masks"] = [_relative(p, root) for p in group["crop_mask_path"]]
        level = index.setdefault(place["dfb_dataset"], {}).setdefault(place["label_key"], {})
        level = level.setdefault(place["split"], {})
        if place["compression"]:
            level = level.setdefault(place["compression"], {})
        level[place["name"]] = entry
    return index


def write_deepfakebench_json(
    frames: pd.DataFrame,
    path: str | Path,
    data_root: str | Path | None = None,
    dataset_name: str | None = None,
    label_keys: Mapping[str, str] | None = None,
) -> Path:
    """Write a frame table as a DeepfakeBench JSON index, atomically.

    Arguments as for :func:`to_deepfakebench`; returns ``path``.
    """
    index = to_deepfakebench(frames, data_root, dataset_name, label_keys)
    return atomic_write_json(path, index)


def export_deepfakebench(
    cache_dir: str | Path,
    table: str,
    out: str | Path,
    dataset_name: str | None = None,
    label_keys: Mapping[str, str] | None = None,
) -> Path:
    """Write the frame table ``table`` of a dfbench cache as a DeepfakeBench JSON index.

    Frame and mask paths are written relative to ``cache_dir``, which is
    therefore the ``data_root`` (DeepfakeBench's ``rgb_dir``) to read the index
    with; :func:`read_deepfakebench_json` then gives back the same frames,
    labels and splits (under ``dfb/...`` keys). This is what the verb
    ``dfbench export-deepfakebench`` runs.

    Args:
        cache_dir: the frame cache (``dfbench preprocess --cache-dir``).
        table: a frame table name in it (``<cache_dir>/tables/<table>.parquet``).
        out: the JSON file to write.
        dataset_name: DeepfakeBench dataset name for every video (default per dataset).
        label_keys: method -> label key, overriding the defaults.

    Raises:
        FileNotFoundError: no such table.
        UnsafePathError: ``table`` is not a plain name.
    """
    cache = absolute(cache_dir)
    source = cache / "tables" / f"{check_name(table)}.parquet"
    if not source.is_file():
        raise FileNotFoundError(f"frame table not found: {source} (run `dfbench preprocess` first)")
    frames = pd.read_parquet(source)
    return write_deepfakebench_json(frames, out, cache, dataset_name, label_keys)
