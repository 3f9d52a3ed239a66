"""Writing a dfbench frame table as a DeepfakeBench JSON index (see :mod:`src.data.deepfakebench`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from src.data.deepfakebench.read import PREFIX
from src.data.indexers.base import absolute
from src.data.paths import check_name
from src.data.tables import TableError, frame_table
from src.errors import DFBenchError
from src.files import atomic_write_json

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
        raise DFBenchError("two videos map to one DeepfakeBench entry; pass distinct label_keys")
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
        raise DFBenchError(
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
        FileNotFoundError: no such cache or table.
        IsADirectoryError: ``out`` is a folder.
        UnsafePathError: ``table`` is not a plain name.
        TableError: the table breaks the frame-table schema.
        ValueError: a video of unknown label, or two videos on one DeepfakeBench entry.
    """
    cache = absolute(cache_dir)
    source = cache / "tables" / f"{check_name(table)}.parquet"
    if not cache.is_dir():
        raise FileNotFoundError(
            f"frame cache not found: {cache} (a folder `dfbench preprocess` wrote)"
        )
    if not source.is_file():
        raise FileNotFoundError(f"frame table not found: {source} (run `dfbench preprocess` first)")
    if Path(out).is_dir():
        raise IsADirectoryError(f"{out} is a folder; expected the path of the JSON file to write")
    try:
        frames = pd.read_parquet(source)
    except (OSError, ValueError, pa.ArrowException) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise TableError(f"{source}: not a readable frame table ({reason})") from None
    frames = frame_table(frames, name=str(source))  # messages name the file
    return write_deepfakebench_json(frames, out, cache, dataset_name, label_keys)
