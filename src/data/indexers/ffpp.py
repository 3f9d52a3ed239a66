"""FaceForensics++ (FF++): the official splits over the youtube reals and the manipulations.

Layout (as distributed; ``docs/datasets.md``)::

    <root>/original_sequences/youtube/<comp>/videos/000.mp4
    <root>/manipulated_sequences/<method>/<comp>/videos/000_003.mp4
    <root>/manipulated_sequences/<method>/masks/videos/000_003.mp4
    <splits_dir>/train.json  val.json  test.json

A split pair ``[a, b]`` owns the reals ``a``, ``b`` and, in every manipulation
folder, the fakes ``a_b`` and ``b_a``. A fake ``a_b`` keeps the frames of ``a``
(``target_id``) and pastes in ``b`` (``source_id``); a real's ``target_id`` is
its own id. Keys are ``ffpp/<method>/<comp>/<name>``, reals having the method
``youtube`` (``ffpp/youtube/c23/000``), so one name under four methods and
three compressions gives twelve distinct videos.

Decisions where the layout is silent:

* Masks have no compression level: the one mask video of a fake serves all its
  compressions. A method without a ``masks`` folder (FaceShifter) gets
  ``mask_path = ""``; a ``masks`` folder that lacks some fakes gives ``""`` for
  those and one warning per method.
* The split files are looked for in ``splits_dir`` when given, else in the root
  and then in ``<root>/splits`` (where the FF++ repository keeps them).
* Methods may be named by folder or by the usual abbreviations
  (DF, F2F, FS, NT, FSh); compressions ``raw|c0``, ``c23|HQ``, ``c40|LQ``.
* An id in pairs of two splits is an error: its videos would be in both.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from src.data.indexers.base import (
    DatasetLayoutError,
    DatasetLayoutWarning,
    MissingVideos,
    absolute,
    as_compressions,
    as_list,
    check_split,
    read_json,
    register_indexer,
    scan_or_skip,
    scan_videos,
    video_dir,
    video_row,
)
from src.data.tables import SPLITS
from src.errors import DFBenchError

CLASSIC_METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures")
METHODS = (*CLASSIC_METHODS, "FaceShifter")
ABBREVIATIONS = {
    "df": "Deepfakes",
    "f2f": "Face2Face",
    "fs": "FaceSwap",
    "nt": "NeuralTextures",
    "fsh": "FaceShifter",
}
REALS = "youtube"
SPLIT_FILE = "an FF++ split file: a JSON list of [id, id] pairs"


def ffpp_methods(methods: str | Sequence[str] | None) -> list[str]:
    """Method folder names from names or abbreviations; ``None`` means the classic four."""
    if methods is None:
        return list(CLASSIC_METHODS)
    names: list[str] = []
    for item in as_list(methods):
        lookup = {m.lower(): m for m in METHODS} | ABBREVIATIONS
        name = lookup.get(item.lower())
        if name is None:
            raise DFBenchError(f"unknown FF++ method {item!r}; expected some of {METHODS}")
        if name not in names:
            names.append(name)
    return names


def split_file(root: Path, splits_dir: str | Path | None, split: str) -> Path:
    """Where ``<split>.json`` is: in ``splits_dir``, else the root, else ``<root>/splits``."""
    if splits_dir is not None:
        return absolute(splits_dir) / f"{split}.json"
    in_root = root / f"{split}.json"
    in_splits = root / "splits" / f"{split}.json"
    return in_splits if not in_root.exists() and in_splits.is_file() else in_root


def _id(value: Any) -> str | None:
    """A video id of a split pair; None for anything else (ids become file names and keys)."""
    if isinstance(value, str) and value.strip():
        text = value.strip()
        unsafe = any(c in text for c in "/\\\x00") or text in (".", "..")
        return None if unsafe else text
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:03d}"
    return None


def read_pairs(path: Path) -> list[tuple[str, str]]:
    """The ``[a, b]`` pairs of an official split file."""
    data = read_json(path, SPLIT_FILE)
    if not isinstance(data, list) or not data:
        raise DatasetLayoutError(path, SPLIT_FILE, "not a non-empty JSON list")
    pairs = []
    for index, item in enumerate(data):
        ids = [_id(v) for v in item] if isinstance(item, list) and len(item) == 2 else [None]
        if None in ids:
            raise DatasetLayoutError(path, SPLIT_FILE, f"item {index} is {item!r}")
        pairs.append((ids[0], ids[1]))
    return pairs


def _check_disjoint(pairs: dict[str, list[tuple[str, str]]], files: dict[str, Path]) -> None:
    owner: dict[str, str] = {}
    for split, split_pairs in pairs.items():
        for video_id in {i for pair in split_pairs for i in pair}:
            other = owner.setdefault(video_id, split)
            if other != split:
                raise DatasetLayoutError(
                    files[split],
                    "official splits whose ids are disjoint",
                    f"id {video_id!r} is also in {files[other]}",
                )


def _names(pairs: list[tuple[str, str]], real: bool) -> list[tuple[str, str, str]]:
    """(name, target_id, source_id) of a split's reals or fakes, each once, in pair order."""
    if real:
        names = [(i, i, "") for pair in pairs for i in pair]
    else:
        names = [(f"{a}_{b}", a, b) for x, y in pairs for a, b in ((x, y), (y, x))]
    return list(dict.fromkeys(names))


def _masks(root: Path, method: str) -> dict[str, Path]:
    folder = root / "manipulated_sequences" / method / "masks"
    return scan_videos(folder, "mask videos") if folder.is_dir() else {}


@register_indexer("ffpp")
def index_ffpp(
    root: Path,
    *,
    compression: str | Sequence[str] = "c23",
    methods: str | Sequence[str] | None = None,
    splits_dir: str | Path | None = None,
    splits: str | Sequence[str] = SPLITS,
    strict: bool = True,
) -> list[dict[str, Any]]:
    """Index FF++ reals and fakes of the official splits.

    Args:
        root: the ``FaceForensics++`` folder.
        compression: one level or several (``raw``/``c23``/``c40``).
        methods: manipulation folders (default: the classic four; ``FaceShifter`` allowed).
        splits_dir: folder of ``train.json``, ``val.json``, ``test.json``.
        splits: which splits to index (only their JSON files are needed).
        strict: raise on a listed video that is missing (else skip it with a warning).
    """
    levels = as_compressions(compression)
    method_names = ffpp_methods(methods)
    wanted = [check_split(s, "ffpp splits") for s in as_list(splits)]
    files = {split: split_file(root, splits_dir, split) for split in wanted}
    pairs = {split: read_pairs(path) for split, path in files.items()}
    _check_disjoint(pairs, files)
    masks = {method: _masks(root, method) for method in method_names}

    missing = MissingVideos("ffpp", strict)
    rows: list[dict[str, Any]] = []
    for level in levels:
        folders = {REALS: root / "original_sequences" / REALS / level}
        folders |= {m: root / "manipulated_sequences" / m / level for m in method_names}
        for method, folder in folders.items():
            videos = scan_or_skip(folder, f"the FF++ {method} {level} videos", strict)
            if videos is None:
                continue
            real = method == REALS
            unmasked = []
            for split, split_pairs in pairs.items():
                for name, target, source in _names(split_pairs, real):
                    if name not in videos:
                        missing.add(video_dir(folder) / f"{name}.mp4", files[split])
                        continue
                    mask = "" if real else masks[method].get(name, "")
                    if not real and masks[method] and not mask:
                        unmasked.append(name)
                    rows.append(
                        video_row(
                            "ffpp",
                            (method, level, name),
                            videos[name],
                            label=0 if real else 1,
                            split=split,
                            method=method,
                            compression=level,
                            mask_path=mask,
                            source_id=source,
                            target_id=target,
                        )
                    )
            if unmasked:
                warnings.warn(
                    f"ffpp: no mask video for {len(unmasked)} {method} {level} fakes "
                    f"(e.g. {', '.join(unmasked[:5])}); their mask_path is empty",
                    DatasetLayoutWarning,
                    stacklevel=2,
                )
    missing.report()
    return rows
