"""Celeb-DF-v2 (CDF2): the 518 listed test videos, the rest for training.

Layout (as distributed; ``docs/datasets.md``)::

    <root>/Celeb-real/id0_0000.mp4               (590 reals)
    <root>/Celeb-synthesis/id0_id1_0000.mp4      (5639 fakes)
    <root>/YouTube-real/00000.mp4                (300 reals)
    <root>/List_of_testing_videos.txt            (518 lines "<label> <folder>/<file>")

The list's labels are **1 = real, 0 = fake**; they are inverted here to dfbench's
1 = fake. A list label that contradicts its folder (e.g. a ``1`` on a
``Celeb-synthesis`` video, as a list "fixed" to the other convention would
have) is an error rather than a silent label flip. Keys are
``cdf2/<folder>/<stem>`` and the method is the folder name.

Decisions where the layout is silent:

* **Splits.** The listed videos are ``test``; every other video is ``train``.
  CDF2 has no official validation split. ``val_fraction`` (default 0) moves a
  deterministic share of the non-test *target identities* to ``val``: a
  celebrity ``idN`` with all of its ``Celeb-real`` videos and every fake that
  keeps its frames (``idN_idM_*``), and each ``YouTube-real`` video on its own.
  Grouping by identity keeps a real and the fakes made from it on one side.
  The choice hashes names (no random state), so it is the same everywhere and
  barely moves when videos are added. Use e.g. ``val_fraction=0.1`` to train on
  CDF2 with checkpoint selection on held-out data.
* **Ids.** A fake ``id0_id1_0000`` keeps the frames of the real ``id0_0000``
  (``target_id``) and pastes in ``id1`` (``source_id``); a real's ``target_id``
  is its own name.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Annotated, Any

from src.data.indexers.base import (
    DatasetLayoutError,
    MissingVideos,
    absolute,
    deterministic_subset,
    find_file,
    listed_path,
    read_lines,
    register_indexer,
    scan_videos,
    video_dir,
    video_row,
)
from src.data.options import Interval

#: Folder -> dfbench label (1 = fake).
FOLDERS = {"Celeb-real": 0, "Celeb-synthesis": 1, "YouTube-real": 0}
TEST_LIST = "List_of_testing_videos.txt"
LIST_LINE = 'lines "<label> <folder>/<file>" with label 1 = real, 0 = fake'
_REAL = re.compile(r"^(?P<person>id\d+)_(?P<clip>\d+)$")
_FAKE = re.compile(r"^(?P<target>id\d+)_(?P<source>id\d+)_(?P<clip>\d+)$")


def cdf2_ids(folder: str, name: str) -> tuple[str, str, str]:
    """(target_id, source_id, identity group) of a CDF2 video."""
    if folder == "Celeb-synthesis" and (match := _FAKE.match(name)):
        return f"{match['target']}_{match['clip']}", match["source"], match["target"]
    if folder == "Celeb-real" and (match := _REAL.match(name)):
        return name, "", match["person"]
    real = FOLDERS.get(folder) == 0
    return (name if real else ""), "", f"{folder}/{name}"


def read_test_list(path: Path, root: Path) -> list[tuple[int, int, str, str]]:
    """(line number, dfbench label, folder, stem) of each listed video.

    A listed path must stay inside ``root`` (``1 ../outside.mp4`` is an error naming the line).
    """
    entries = []
    for number, line in read_lines(path, f"the Celeb-DF-v2 test list: {LIST_LINE}"):
        fields = line.split()
        if len(fields) != 2 or fields[0] not in ("0", "1"):
            raise DatasetLayoutError(path, LIST_LINE, f"line {number} is {line!r}")
        parts = listed_path(root, fields[1], f"{path}: line {number}").parts
        if len(parts) < 2:
            raise DatasetLayoutError(path, LIST_LINE, f"line {number} names no folder: {line!r}")
        label = 1 - int(fields[0])
        folder, stem = parts[0], PurePosixPath(parts[-1]).stem
        if FOLDERS.get(folder, label) != label:
            raise DatasetLayoutError(
                path,
                LIST_LINE,
                f"line {number} labels a {folder} video {'fake' if label else 'real'}",
            )
        entries.append((number, label, folder, stem))
    return entries


@register_indexer("cdf2")
def index_cdf2(
    root: Path,
    *,
    test_list: str | Path | None = None,
    val_fraction: Annotated[float, Interval(0, 1, high_open=True)] = 0.0,
    strict: bool = True,
) -> list[dict[str, Any]]:
    """Index Celeb-DF-v2: listed videos as ``test``, the others ``train`` (and ``val``).

    Args:
        root: the ``Celeb-DF-v2`` folder.
        test_list: the test list (default ``<root>/List_of_testing_videos.txt``).
        val_fraction: share of the non-test identities moved to ``val`` (default none).
        strict: raise on a listed video that is missing (else skip it with a warning).
    """
    list_path = absolute(test_list) if test_list is not None else root / TEST_LIST
    listed = read_test_list(list_path, root)
    videos = {f: scan_videos(root / f, f"the Celeb-DF-v2 {f} videos") for f in FOLDERS}

    def row(folder: str, name: str, path: Path, label: int, split: str) -> dict[str, Any]:
        target, source, _ = cdf2_ids(folder, name)
        return video_row(
            "cdf2",
            (folder, name),
            path,
            label=label,
            split=split,
            method=folder,
            source_id=source,
            target_id=target,
        )

    missing = MissingVideos("cdf2", strict)
    rows, tested = [], set()
    for _, label, folder, name in listed:
        if (folder, name) in tested:
            continue
        tested.add((folder, name))
        path = videos.get(folder, {}).get(name) or find_file(root / folder, f"{name}.mp4")
        if path is None:
            missing.add(video_dir(root / folder) / f"{name}.mp4", list_path)
            continue
        rows.append(row(folder, name, path, label, "test"))
    missing.report()

    rest = [(f, n, p) for f, found in videos.items() for n, p in found.items()]
    rest = [(f, n, p) for f, n, p in rest if (f, n) not in tested]
    groups = {(f, n): cdf2_ids(f, n)[2] for f, n, _ in rest}
    val = deterministic_subset(groups.values(), val_fraction, salt="cdf2")
    for folder, name, path in rest:
        split = "val" if groups[folder, name] in val else "train"
        rows.append(row(folder, name, path, FOLDERS[folder], split))
    return rows
