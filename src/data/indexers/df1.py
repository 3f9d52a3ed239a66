"""DeeperForensics-1.0 (DF-1.0): the official splits of its manipulated videos, plus reals.

Layout (as distributed; ``docs/datasets.md``)::

    <root>/manipulated_videos/<perturbation>/000_M101.mp4   (end_to_end = clean)
    <root>/source_videos/<actor>/.../*.mp4
    <root>/lists/splits/train.txt  val.txt  test.txt        (one video name a line)

DF-1.0's 1,000 fakes are FF++'s 1,000 youtube videos with the face of one of
DF-1.0's actors swapped in: ``000_M101`` keeps the frames of FF++ video
``000`` (``target_id``) and pastes in actor ``M101`` (``source_id``). Fakes are
keyed ``df1/<perturbation>/<name>`` with the perturbation folder as method;
several perturbations (``end_to_end_mix_4_distortions`` ...) may be indexed
at once.

**Where the reals come from** (``reals``), since DF-1.0 ships no real
counterpart of its fakes:

* ``"ffpp"`` (default): the FF++ youtube video each listed fake was made from
  (``<ffpp_root>/original_sequences/youtube/<ffpp_compression>/videos/000.mp4``,
  c23 by default), in the split of that fake. This is what cross-dataset work
  commonly does: the real and fake of a pair share frames and background, so
  the score measures the manipulation rather than the studio. Keys
  ``df1/youtube/<comp>/000``, method ``youtube``, compression set, and
  ``target_id`` pairs each fake with its real. Needs ``ffpp_root``.
* ``"source"``: DF-1.0's own ``source_videos`` of the actors that appear in a
  split's fakes (every video under ``source_videos/<actor>/``), keyed
  ``df1/source/<actor>/<relative path>``. Studio recordings, many per actor: a
  very different (and much larger) real class, paired with no fake (empty ids).
* ``"none"``: fakes only.

Decisions where the layout is silent:

* A list line is a video name with or without ``.mp4`` and any leading folders
  (``000_M101.mp4``, ``end_to_end/000_M101``); anything else is an error.
* A name in two split lists is an error. A real that would fall in two splits
  (an actor with fakes in both, for ``source``) is kept in the most held-out
  one (test, then val, then train).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from src.data.indexers.base import (
    HELD_OUT_ORDER,
    DatasetLayoutError,
    MissingVideos,
    absolute,
    as_compressions,
    as_list,
    read_lines,
    register_indexer,
    scan_or_skip,
    video_dir,
    video_row,
)
from src.data.tables import SPLITS
from src.errors import DFBenchError
from src.files import VIDEO_SUFFIXES

REALS_OPTIONS = ("ffpp", "source", "none")
LIST_LINE = "one manipulated video name a line, e.g. 000_M101.mp4"
_NAME = re.compile(r"^(?P<target>\d+)_(?P<source>[A-Za-z0-9]+)$")


def read_split_list(path: Path) -> list[tuple[str, str, str]]:
    """(name, target_id, source_id) of each video named by an official split list."""
    entries = []
    for number, line in read_lines(path, f"a DF-1.0 split list: {LIST_LINE}"):
        name = PurePosixPath(line.replace("\\", "/")).name
        name = name[: -len(".mp4")] if name.lower().endswith(".mp4") else name
        match = _NAME.match(name) if len(line.split()) == 1 else None
        if match is None:
            raise DatasetLayoutError(path, LIST_LINE, f"line {number} is {line!r}")
        entries.append((name, match["target"], match["source"]))
    return entries


def _held_out(splits: set[str]) -> str:
    return next(s for s in HELD_OUT_ORDER if s in splits)


@register_indexer("df1")
def index_df1(
    root: Path,
    *,
    perturbation: str | Sequence[str] = "end_to_end",
    reals: Literal["ffpp", "source", "none"] = "ffpp",
    ffpp_root: str | Path | None = None,
    ffpp_compression: str = "c23",
    strict: bool = True,
) -> list[dict[str, Any]]:
    """Index DF-1.0's listed fakes of each perturbation and the chosen reals.

    Args:
        root: the ``DeeperForensics-1.0`` folder.
        perturbation: folder(s) of ``manipulated_videos`` (default the clean ``end_to_end``).
        reals: ``ffpp``, ``source`` or ``none`` (see the module docstring).
        ffpp_root: the FF++ root, needed when ``reals="ffpp"``.
        ffpp_compression: compression level of those FF++ reals.
        strict: raise on a listed video that is missing (else skip it with a warning).
    """
    if reals not in REALS_OPTIONS:
        raise DFBenchError(f"unknown df1 reals {reals!r}; expected one of {REALS_OPTIONS}")
    if reals == "ffpp" and ffpp_root is None:
        raise DFBenchError(
            "df1 takes its reals from FF++ by default (the youtube videos its fakes were "
            "made from): pass ffpp_root=<FaceForensics++ folder>, or reals='source' / 'none'"
        )
    files = {split: root / "lists" / "splits" / f"{split}.txt" for split in SPLITS}
    listed = {split: read_split_list(path) for split, path in files.items()}
    seen: dict[str, str] = {}
    for split, entries in listed.items():
        for name, _, _ in entries:
            if seen.setdefault(name, split) != split:
                raise DatasetLayoutError(
                    files[split], "disjoint split lists", f"{name} is also in {files[seen[name]]}"
                )

    missing = MissingVideos("df1", strict)
    rows: list[dict[str, Any]] = []
    for folder_name in as_list(perturbation):
        folder = root / "manipulated_videos" / folder_name
        videos = scan_or_skip(folder, f"the DF-1.0 {folder_name} videos", strict)
        if videos is None:
            continue
        for split, entries in listed.items():
            for name, target, source in entries:
                if name not in videos:
                    missing.add(video_dir(folder) / f"{name}.mp4", files[split])
                    continue
                rows.append(
                    video_row(
                        "df1",
                        (folder_name, name),
                        videos[name],
                        label=1,
                        split=split,
                        method=folder_name,
                        source_id=source,
                        target_id=target,
                    )
                )

    if reals == "ffpp":
        rows += _ffpp_reals(absolute(ffpp_root), ffpp_compression, listed, files, missing)
    elif reals == "source":
        rows += _source_reals(root, listed, files, missing)
    missing.report()
    return rows


def _ffpp_reals(
    ffpp_root: Path,
    compression: str,
    listed: dict[str, list[tuple[str, str, str]]],
    files: dict[str, Path],
    missing: MissingVideos,
) -> list[dict[str, Any]]:
    levels = as_compressions(compression)
    if len(levels) != 1:
        raise DFBenchError(f"ffpp_compression takes one level, got {compression!r}")
    level = levels[0]
    folder = ffpp_root / "original_sequences" / "youtube" / level
    videos = scan_or_skip(folder, "the FF++ youtube reals of DF-1.0's fakes", missing.strict)
    if videos is None:
        return []
    splits: dict[str, set[str]] = {}
    for split, entries in listed.items():
        for _, target, _ in entries:
            splits.setdefault(target, set()).add(split)
    rows = []
    for target, in_splits in sorted(splits.items()):
        split = _held_out(in_splits)
        if target not in videos:
            missing.add(video_dir(folder) / f"{target}.mp4", files[split])
            continue
        row = video_row(
            "df1",
            ("youtube", level, target),
            videos[target],
            label=0,
            split=split,
            method="youtube",
            compression=level,
            target_id=target,
        )
        rows.append(row)
    return rows


def _source_reals(
    root: Path,
    listed: dict[str, list[tuple[str, str, str]]],
    files: dict[str, Path],
    missing: MissingVideos,
) -> list[dict[str, Any]]:
    splits: dict[str, set[str]] = {}
    for split, entries in listed.items():
        for _, _, actor in entries:
            splits.setdefault(actor, set()).add(split)
    rows = []
    for actor, in_splits in sorted(splits.items()):
        split = _held_out(in_splits)
        folder = root / "source_videos" / actor
        if not folder.is_dir():
            missing.add(folder, files[split])
            continue
        videos = sorted(
            p for p in folder.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file()
        )
        for path in videos:
            relative = path.relative_to(folder).with_suffix("").parts
            rows.append(
                video_row(
                    "df1",
                    ("source", actor, *relative),
                    path,
                    label=0,
                    split=split,
                    method="source",
                )
            )
    return rows
