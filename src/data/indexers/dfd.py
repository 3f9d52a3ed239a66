"""DeepFakeDetection (DFD): Google's actor videos, read from inside the FF++ tree.

Layout (as distributed; ``docs/datasets.md``); ``root`` is the FF++ root::

    <root>/original_sequences/actors/<comp>/videos/01__exit_phone_room.mp4     (reals)
    <root>/manipulated_sequences/DeepFakeDetection/<comp>/videos/<name>.mp4    (fakes)
    <root>/manipulated_sequences/DeepFakeDetection/masks/videos/<name>.mp4     (masks)

with fake names such as ``01_02__meeting_serious__YVGY8LOK``.

There is no official split: cross-dataset evaluation uses every video, so every
row is ``test``. Keys are ``dfd/<method>/<comp>/<name>`` with the methods
``actors`` (reals) and ``DeepFakeDetection`` (fakes).

Decisions where the layout is silent:

* A fake ``01_02__meeting_serious__YVGY8LOK`` keeps the frames of actor 01's
  ``meeting_serious`` scene (``target_id = "01__meeting_serious"``, the name of
  that real video) and pastes in actor ``02`` (``source_id``), following FF++'s
  ``target_source`` order; a real's ``target_id`` is its own name. Names that do
  not follow the pattern get empty ids.
* As in FF++, masks have no compression level; a fake without one gets ``""``.
* With ``strict=False`` a missing reals or fakes folder is skipped with a warning.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from src.data.indexers.base import (
    DatasetLayoutError,
    as_compressions,
    register_indexer,
    scan_or_skip,
    scan_videos,
    video_row,
)

REALS = "actors"
FAKES = "DeepFakeDetection"
_FAKE_NAME = re.compile(r"^(?P<target>\d+)_(?P<source>\d+)__(?P<scene>.+?)__[A-Za-z0-9]+$")


def dfd_ids(name: str, real: bool) -> tuple[str, str]:
    """(target_id, source_id) of a DFD video name."""
    if real:
        return name, ""
    match = _FAKE_NAME.match(name)
    if match is None:
        return "", ""
    return f"{match['target']}__{match['scene']}", match["source"]


@register_indexer("dfd")
def index_dfd(
    root: Path, *, compression: str | Sequence[str] = "c23", strict: bool = True
) -> list[dict[str, Any]]:
    """Index every DFD real and fake at the given compression level(s), all as ``test``.

    Args:
        root: the ``FaceForensics++`` folder that holds DFD.
        compression: one level or several (``raw``/``c23``/``c40``).
        strict: raise on a missing or empty folder (else skip it with a warning).
    """
    mask_folder = root / "manipulated_sequences" / FAKES / "masks"
    masks = scan_videos(mask_folder, "DFD mask videos") if mask_folder.is_dir() else {}
    rows: list[dict[str, Any]] = []
    for level in as_compressions(compression):
        folders = {
            REALS: root / "original_sequences" / REALS / level,
            FAKES: root / "manipulated_sequences" / FAKES / level,
        }
        for method, folder in folders.items():
            expected = f"the DFD {method} {level} videos"
            videos = scan_or_skip(folder, expected, strict)
            if strict and videos == {}:
                raise DatasetLayoutError(folder, expected, "no videos in it")
            real = method == REALS
            for name, path in (videos or {}).items():
                target, source = dfd_ids(name, real)
                rows.append(
                    video_row(
                        "dfd",
                        (method, level, name),
                        path,
                        label=0 if real else 1,
                        split="test",
                        method=method,
                        compression=level,
                        mask_path="" if real else masks.get(name, ""),
                        source_id=source,
                        target_id=target,
                    )
                )
    return rows
