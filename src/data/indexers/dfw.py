"""WildDeepfake (DFW): face sequences from archives or from an extracted tree.

Layout (as distributed; ``docs/datasets.md``)::

    <root>/real_train/ fake_train/ real_test/ fake_test/    each holding <id>.tar.gz

Each archive unpacks to folders of already-cropped face frames (PNG). The unit
of a "video" is the face sequence: a folder that directly holds image files.
Its ``path`` is ``<archive>::<member folder>`` when it is read from an archive
and the folder itself when extracted. The class and split come from the
top folder (``real_test`` -> real, ``test``); the method is ``real``/``fake``.
There are no masks, landmarks or pairings (``source_id``/``target_id`` empty).

Decisions where the layout is silent:

* **Keys** are ``dfw/<top folder>/<sequence folder relative to it>``. An
  archive's member folders usually start with the archive's id; when they do
  not, the id is put in front. Extracting ``<id>.tar.gz`` in its top folder
  (or into a folder named ``<id>``) therefore yields the same keys as
  reading the archive, so caches made either way agree.
* **Archives or extracted** (``mode``): ``auto`` reads a top folder's extracted
  sub-folders when it has any and its archives otherwise (listing a ``.tar.gz``
  means decompressing it all); ``archives`` or ``extracted`` forces one.
* Only the top folders present are read (users of the test set need only
  ``real_test`` and ``fake_test``); having none of them is an error. DFW has
  no validation split.
* An unreadable archive raises when ``strict``, else it is skipped with a warning.
  So does an archive with image members named outside it (an absolute name or
  one with ``..``, which would become a key outside the cache): when not
  strict only those members are skipped.
"""

from __future__ import annotations

import os
import tarfile
import warnings
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from src.data.indexers.base import (
    DatasetLayoutError,
    DatasetLayoutWarning,
    record_skip,
    register_indexer,
    video_dir,
    video_row,
)
from src.data.paths import member_folder
from src.errors import DFBenchError
from src.files import IMAGE_SUFFIXES

#: Top folder -> (label, split).
FOLDERS = {
    "real_train": (0, "train"),
    "fake_train": (1, "train"),
    "real_test": (0, "test"),
    "fake_test": (1, "test"),
}
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
MODES = ("auto", "archives", "extracted")


def archive_id(path: Path) -> str:
    """``7.tar.gz`` -> ``7``."""
    name = path.name
    return next((name[: -len(s)] for s in ARCHIVE_SUFFIXES if name.endswith(s)), path.stem)


def member_problem(name: str) -> str | None:
    """Why a tar member's name cannot name a face sequence (absolute, ``..``), or None."""
    if "\x00" in name or "\\" in name:
        return "holds a NUL or a backslash"
    path = PurePosixPath(name)
    if path.is_absolute():
        return "is absolute"
    if ".." in path.parts:
        return "climbs out with '..'"
    return None


def archive_sequences(archive: Path) -> tuple[list[str], list[str]]:
    """Member folders of ``archive`` that directly hold images, sorted (``"."`` for its top),
    and the image members whose names would leave the archive (absolute or with ``..``)."""
    folders, unsafe = set(), []
    with tarfile.open(archive, "r:*") as tar:
        for member in tar:
            name = PurePosixPath(member.name)
            if not (member.isfile() and name.suffix.lower() in IMAGE_SUFFIXES):
                continue
            if member_problem(member.name) is not None:
                unsafe.append(member.name)
                continue
            folders.add(member_folder(member.name))
    return sorted(folders), unsafe


def extracted_sequences(folder: Path) -> list[Path]:
    """Folders under ``folder`` that directly hold images, sorted."""
    found = []
    for current, dirs, files in os.walk(folder):
        dirs.sort()
        if any(Path(f).suffix.lower() in IMAGE_SUFFIXES for f in files):
            found.append(Path(current))
    return sorted(found)


def _archive_key(archive: Path, member: str) -> tuple[str, ...]:
    parts = PurePosixPath(member).parts if member != "." else ()
    stem = archive_id(archive)
    return parts if parts and parts[0] == stem else (stem, *parts)


@register_indexer("dfw")
def index_dfw(
    root: Path, *, mode: Literal["auto", "archives", "extracted"] = "auto", strict: bool = True
) -> list[dict[str, Any]]:
    """Index WildDeepfake's face sequences.

    Args:
        root: the ``deepfake_in_the_wild`` folder.
        mode: ``auto``, ``archives`` or ``extracted`` (see the module docstring).
        strict: raise on an unreadable archive (else skip it with a warning).
    """
    if mode not in MODES:
        raise DFBenchError(f"unknown dfw mode {mode!r}; expected one of {MODES}")
    present = {name: root / name for name in FOLDERS if (root / name).is_dir()}
    if not present:
        raise DatasetLayoutError(root, f"WildDeepfake's folders {', '.join(FOLDERS)}")
    rows = []
    for top, folder in present.items():
        label, split = FOLDERS[top]
        for key, path in _sequences(video_dir(folder), mode, strict):
            method = "fake" if label else "real"
            rows.append(
                video_row("dfw", (top, *key), path, label=label, split=split, method=method)
            )
    return rows


def _sequences(where: Path, mode: str, strict: bool) -> list[tuple[tuple[str, ...], str | Path]]:
    """(key parts, path) of the face sequences of one top folder."""
    entries = sorted(where.iterdir())
    if mode == "extracted" or (mode == "auto" and any(e.is_dir() for e in entries)):
        found = extracted_sequences(where)
        return [(s.relative_to(where).parts, s) for s in found if s != where]
    sequences: list[tuple[tuple[str, ...], str | Path]] = []
    for archive in (e for e in entries if e.is_file() and e.name.endswith(ARCHIVE_SUFFIXES)):
        try:
            members, unsafe = archive_sequences(archive)
        except (tarfile.TarError, OSError, EOFError) as error:
            problem = DatasetLayoutError(
                archive, "a tar archive of face-sequence folders", f"unreadable ({error})"
            )
            if strict:
                raise problem from None
            warnings.warn(f"skipped: {problem}", DatasetLayoutWarning, stacklevel=2)
            record_skip(archive, f"unreadable archive ({error})")
            continue
        if unsafe:
            problem = DatasetLayoutError(
                archive,
                "members inside the archive's own folders",
                f"member {unsafe[0]!r} {member_problem(unsafe[0])}"
                + (f" ({len(unsafe) - 1} more such members)" if len(unsafe) > 1 else ""),
            )
            if strict:
                raise problem from None
            warnings.warn(f"skipped those members: {problem}", DatasetLayoutWarning, stacklevel=2)
            for name in unsafe:
                record_skip(f"{archive}::{name}", f"member {member_problem(name)}", archive)
        sequences += [(_archive_key(archive, m), f"{archive}::{m}") for m in members]
    return sequences
