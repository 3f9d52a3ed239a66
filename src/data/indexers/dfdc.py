"""DFDC, the full Deepfake Detection Challenge data: its public test set and training parts.

Layout (as distributed; ``docs/datasets.md``)::

    <root>/test/*.mp4  +  labels.csv           ("filename,label", 1 = fake; 5000 videos)
    <root>/dfdc_train_part_<n>/*.mp4  +  metadata.json
        {"aaqaifqrwn.mp4": {"label": "FAKE"|"REAL", "split": "train", "original": "x.mp4"}}

Either half may be absent (most users evaluate on the test set only), not both.
Keys are ``dfdc/<folder>/<stem>`` (``dfdc/test/aaqaifqrwn``,
``dfdc/dfdc_train_part_0/abc``); the method is ``real`` or ``fake`` (DFDC does
not name the manipulation of each video).

Decisions where the layout is silent:

* ``labels.csv`` is read from ``test/`` and, failing that, from the root.
  Videos of ``test/`` that it does not list are ignored (they have no label).
* Training parts are ``train``; DFDC has no official validation split, so
  ``val_parts`` names whole parts (e.g. ``[49]``) to hold out as ``val``: parts
  were filmed separately, so a held-out part shares no clip with training.
  The metadata's own ``split`` field is ``train`` everywhere and is not used.
* A training fake's ``target_id`` is the stem of its ``original`` (the real it
  was made from) and a training real's is its own stem. Test videos carry no
  such information: their ids are empty. An ``original`` given as a list of
  exactly one name (``["x.mp4"]``, as some re-packaged copies write it) is
  that name; a longer list or any other non-name is an error, since picking
  one would pair the fake with a guess.
* Names in ``labels.csv`` and ``metadata.json`` are plain file names; one with
  a folder or ``..`` in it is an error. A file listed twice in ``labels.csv``
  with one label is kept once (a warning says so); with two labels it is an
  error naming both lines.
"""

from __future__ import annotations

import csv
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from src.data.indexers.base import (
    DatasetLayoutError,
    DatasetLayoutWarning,
    MissingVideos,
    file_name,
    read_json,
    read_lines,
    register_indexer,
    scan_videos,
    video_dir,
    video_row,
)
from src.errors import DFBenchError

_PART = re.compile(r"^dfdc_train_part_(\d+)$")
LABELS_CSV = 'a CSV with the header "filename,label" and labels 0 (real) / 1 (fake)'
METADATA = 'a JSON object {"<video>.mp4": {"label": "FAKE" | "REAL", "original": ...}}'


def _labels_csv(root: Path) -> Path:
    in_test = root / "test" / "labels.csv"
    return (
        root / "labels.csv" if not in_test.exists() and (root / "labels.csv").is_file() else in_test
    )


def read_labels_csv(path: Path) -> dict[str, int]:
    """File stem -> label of the test set's ``labels.csv``.

    A file listed twice with one label is kept once (with a warning); with two
    different labels it is an error naming both lines, since either choice
    would be a guess.
    """
    lines = read_lines(path, LABELS_CSV)
    rows = list(csv.reader(line for _, line in lines))
    header = [h.strip().lower() for h in rows[0]] if rows else []
    if "filename" not in header or "label" not in header:
        raise DatasetLayoutError(path, LABELS_CSV, f"line 1 is {lines[0][1] if lines else ''!r}")
    name_at, label_at = header.index("filename"), header.index("label")
    labels: dict[str, tuple[int, int]] = {}
    repeated = []
    for (number, line), fields in zip(lines[1:], rows[1:], strict=True):
        try:
            name, label = fields[name_at].strip(), float(fields[label_at])
        except (IndexError, ValueError):
            raise DatasetLayoutError(path, LABELS_CSV, f"line {number} is {line!r}") from None
        if label not in (0.0, 1.0) or not name:
            raise DatasetLayoutError(path, LABELS_CSV, f"line {number} is {line!r}")
        stem = Path(file_name(name, f"{path}: line {number}")).stem
        if stem in labels:
            first, first_label = labels[stem]
            if first_label != int(label):
                raise DatasetLayoutError(
                    path,
                    "one label per video",
                    f"lines {first} and {number} label {name} {first_label} and {int(label)}",
                )
            repeated.append(f"{name} (lines {first} and {number})")
            continue
        labels[stem] = (number, int(label))
    if repeated:
        warnings.warn(
            f"{path}: {len(repeated)} video{' is' if len(repeated) == 1 else 's are'} listed "
            "twice with the same label, "
            f"e.g. {repeated[0]}; each is kept once",
            DatasetLayoutWarning,
            stacklevel=2,
        )
    return {stem: label for stem, (_, label) in labels.items()}


def _original(value: Any, path: Path, name: str) -> str:
    """The stem of an entry's ``original``: a file name, or a list holding exactly one."""
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if value is None or value == "":
        return ""
    if not isinstance(value, str):
        raise DatasetLayoutError(
            path, METADATA, f"entry {name!r} has original {value!r}, not one file name"
        )
    return Path(file_name(value, f"{path}: entry {name!r} (original)")).stem


def read_metadata(path: Path) -> dict[str, tuple[int, str]]:
    """File stem -> (label, target_id) of a training part's ``metadata.json``.

    A fake's target_id is the stem of its ``original``; a real's is its own stem.
    """
    data = read_json(path, METADATA, dict)
    entries = {}
    for name, info in data.items():
        label = str(info.get("label", "")).upper() if isinstance(info, dict) else ""
        if label not in ("FAKE", "REAL"):
            raise DatasetLayoutError(path, METADATA, f"entry {name!r} is {info!r}")
        stem = Path(file_name(name, f"{path}: entry {name!r}")).stem
        original = _original(info.get("original"), path, name)
        entries[stem] = (1, original) if label == "FAKE" else (0, stem)
    return entries


def _part_number(value: int | str) -> int:
    """A training part's number from ``49``, ``"49"`` or ``"dfdc_train_part_49"``."""
    match = _PART.match(str(value))
    if match:
        return int(match[1])
    try:
        return int(value)
    except ValueError:
        raise DFBenchError(
            f"dfdc: option val_parts: {value!r} is not a training part; expected an integer "
            "(e.g. -o val_parts=49 or -o 'val_parts=[48, 49]') or a folder name such as "
            "dfdc_train_part_49"
        ) from None


@register_indexer("dfdc")
def index_dfdc(
    root: Path, *, val_parts: int | str | Sequence[int | str] = (), strict: bool = True
) -> list[dict[str, Any]]:
    """Index the DFDC test set (``test``) and training parts (``train``, or ``val``).

    Args:
        root: the folder holding ``test/`` and/or ``dfdc_train_part_<n>/``.
        val_parts: training parts (numbers or folder names) to use as ``val``.
        strict: raise on a listed video that is missing (else skip it with a warning).
    """
    parts = {}
    for entry in sorted(root.iterdir()):
        if entry.is_dir() and (match := _PART.match(entry.name)):
            parts[int(match[1])] = entry
    single = isinstance(val_parts, str | int)
    held_out = {_part_number(p) for p in ([val_parts] if single else val_parts)}
    if unknown := sorted(held_out - set(parts)):
        raise DatasetLayoutError(
            root / f"dfdc_train_part_{unknown[0]}", "the training part that val_parts names"
        )
    test = root / "test"
    if not test.is_dir() and not parts:
        raise DatasetLayoutError(
            root, "DFDC's test/ (with labels.csv) and/or dfdc_train_part_<n>/ folders"
        )

    missing = MissingVideos("dfdc", strict)
    rows: list[dict[str, Any]] = []

    def add(folder: Path, listed_in: Path, entries: dict[str, tuple[int, str]], split: str) -> None:
        videos = scan_videos(folder, "DFDC videos")
        for name, (label, target) in entries.items():
            if name not in videos:
                missing.add(video_dir(folder) / f"{name}.mp4", listed_in)
                continue
            rows.append(
                video_row(
                    "dfdc",
                    (folder.name, name),
                    videos[name],
                    label=label,
                    split=split,
                    method="fake" if label else "real",
                    target_id=target,
                )
            )

    if test.is_dir():
        labels_path = _labels_csv(root)
        labels = read_labels_csv(labels_path)
        add(test, labels_path, {name: (label, "") for name, label in labels.items()}, "test")
    for number, folder in sorted(parts.items()):
        metadata = folder / "metadata.json"
        add(folder, metadata, read_metadata(metadata), "val" if number in held_out else "train")
    missing.report()
    return rows
