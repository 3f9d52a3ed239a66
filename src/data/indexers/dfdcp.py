"""DFDC-Preview (DFDCP): the preview release described by its ``dataset.json``.

Layout (as distributed; ``docs/datasets.md``)::

    <root>/dataset.json
        {"method_A/.../x.mp4": {"label": "fake"|"real", "set": "train"|"test", ...}}
    <root>/original_videos/...  method_A/...  method_B/...

Every entry of ``dataset.json`` is one video; its ``set`` is the split and its
``label`` the class. Keys are ``dfdcp/<path without extension>`` (the relative
path is what makes a preview video unique) and the method is the path's first
folder (``original_videos``, ``method_A``, ``method_B``).

Decisions where the layout is silent:

* A ``videos/`` level may sit anywhere along an entry's path (at the root or
  inside a method folder); the first existing variant is used.
* The preview has no validation split; a ``set`` of ``val`` is accepted should
  a user's copy carry one. Any other value is an error.
* ``dataset.json`` does not say which real a fake was made from in a form
  dfbench relies on, so ``target_id``/``source_id`` stay empty.
* Entry paths are normalised and must stay inside the root: ``../x.mp4`` and
  ``/abs/x.mp4`` are errors naming the entry, and an alias such as
  ``method_A/../original_videos/x.mp4`` meets the entry it spells
  differently: two entries naming one video are an error naming both (else a
  fake would take a real's key and cache folder).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from src.data.indexers.base import (
    DatasetLayoutError,
    MissingVideos,
    find_file,
    listed_path,
    read_json,
    register_indexer,
    video_row,
)
from src.data.tables import SPLITS

DATASET_JSON = (
    'a JSON object {"<folder>/.../<video>.mp4": {"label": "fake" | "real", '
    '"set": "train" | "test"}}'
)


def read_dataset_json(path: Path, root: Path) -> list[tuple[str, PurePosixPath, int, str]]:
    """(entry as written, its path inside ``root``, dfbench label, split) of each entry, sorted.

    Entry paths are normalised (``method_A/../original_videos/x.mp4`` is
    ``original_videos/x.mp4``) and must stay inside ``root``; two entries that
    name one video are an error naming both.
    """
    data = read_json(path, DATASET_JSON, dict)
    entries = []
    seen: dict[PurePosixPath, str] = {}
    for relative, info in sorted(data.items()):
        label = str(info.get("label", "")).lower() if isinstance(info, dict) else ""
        split = str(info.get("set", "")).lower() if isinstance(info, dict) else ""
        if label not in ("fake", "real") or split not in SPLITS:
            raise DatasetLayoutError(path, DATASET_JSON, f"entry {relative!r} is {info!r}")
        where = listed_path(root, relative, f"{path}: entry {relative!r}")
        if where in seen:
            raise DatasetLayoutError(
                path,
                "one entry per video",
                f"entries {seen[where]!r} and {relative!r} both name {where}",
            )
        seen[where] = relative
        entries.append((relative, where, int(label == "fake"), split))
    return entries


@register_indexer("dfdcp")
def index_dfdcp(root: Path, *, strict: bool = True) -> list[dict[str, Any]]:
    """Index the DFDC preview's videos with the splits and labels of ``dataset.json``.

    Args:
        root: the folder holding ``dataset.json``.
        strict: raise on a listed video that is missing (else skip it with a warning).
    """
    listed_in = root / "dataset.json"
    missing = MissingVideos("dfdcp", strict)
    rows = []
    found: dict[Path, str] = {}
    for entry, relative, label, split in read_dataset_json(listed_in, root):
        path = find_file(root, relative)
        if path is None:
            missing.add(root / relative, listed_in)
            continue
        if path in found:
            # `x.mp4` and `videos/x.mp4` listed apart but only one file on disk.
            raise DatasetLayoutError(
                listed_in,
                "one entry per video",
                f"entries {found[path]!r} and {entry!r} are both {path}",
            )
        found[path] = entry
        stem = relative.with_suffix("")
        rows.append(
            video_row("dfdcp", stem.parts, path, label=label, split=split, method=stem.parts[0])
        )
    missing.report()
    return rows
