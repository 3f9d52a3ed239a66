"""What a cached video was made from, and the marker that says so.

A video's folder in the frame cache (``<cache>/<video_key>/``, with over-long
key parts shortened by :func:`~src.data.paths.key_folder`) holds its face
crops and, written last, ``frames.parquet``: its frame rows, with a JSON
record in the file's metadata of

* ``produced_by``: what the crops are made from: the source's identity, the
  mask video's identity and the preprocessing settings that shape crops;
* ``index``: the video's index row (every video-table column);
* ``failures``: the failure rows of the run that made it;
* ``crop_bytes``: the size of each crop and mask crop it wrote (file name ->
  bytes), so a re-run can tell a crop cut short or replaced from the one it
  vouches for by a ``stat`` alone (markers of version 2, written before, have
  none: their crops are checked for a complete PNG instead, once, and the
  marker is rewritten with the sizes).

One file carries rows and record, so they are replaced together by one
atomic rename: a run killed between two writes can never pair new rows with
an old record.

On a re-run a video is

* **fresh** when both records match: reused as it is;
* **re-indexed** when only the index row changed (split, label, method, ids,
  dataset, or the path of a source whose identity is unchanged): its rows are
  rewritten from the new row, without detecting faces again;
* **stale** otherwise (source, mask or settings changed, or no marker): redone;
* **damaged** when it is fresh or re-indexed but a crop it lists is missing,
  of another size than recorded, or (version 2) not a complete PNG: redone,
  and the run says which video and why.

A source's identity is its size and modification time in nanoseconds, or,
with ``content_hash``, its size and SHA-256. A face sequence's identity covers
its images (names, sizes, times or contents); one inside an archive, the
archive and the member folder. A missing source has no identity and is never
reused.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from src.data.tables import VIDEO_COLUMNS
from src.files import IMAGE_SUFFIXES, atomic_write

MARKER = "frames.parquet"
#: Bumped when the record changes meaning: older markers are redone, except those
#: of :data:`UPGRADABLE_VERSIONS`.
MARKER_VERSION = 3
#: Older versions whose record is still right, only missing ``crop_bytes``.
UPGRADABLE_VERSIONS = (2,)
#: The last bytes of every complete PNG file: its IEND chunk.
PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"
_META_KEY = b"dfbench"
_CHUNK = 1 << 20


def _file_digest(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _stat(path: str | Path, content_hash: bool) -> dict[str, Any]:
    info = os.stat(path)
    if content_hash:
        return {"size": info.st_size, "sha256": _file_digest(path)}
    return {"size": info.st_size, "mtime_ns": info.st_mtime_ns}


def _images(folder: Path) -> Iterator[Path]:
    return iter(sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES))


def source_identity(path: str, content_hash: bool = False) -> dict[str, Any] | None:
    """What identifies the content of ``path`` (a file, a folder of images, ``archive::member``).

    None when it does not exist (or cannot be read): nothing cached from it is reused.
    """
    try:
        if "::" in path:
            archive, member = path.split("::", 1)
            return {"archive": _stat(archive, content_hash), "member": member}
        file = Path(path)
        if file.is_dir():
            listing = hashlib.sha256()
            for image in _images(file):
                listing.update(json.dumps([image.name, _stat(image, content_hash)]).encode())
            return {"folder": listing.hexdigest()}
        return _stat(file, content_hash)
    except OSError:
        return None


def index_record(video: dict[str, Any]) -> dict[str, str | int]:
    """A video's index row as stored in its marker (every video-table column)."""
    return {
        column: int(video[column]) if column == "label" else str(video[column])
        for column in VIDEO_COLUMNS
    }


def read_record(path: Path) -> dict[str, Any] | None:
    """The dfbench record in a parquet file's metadata (a marker's, a frame table's), or None."""
    try:
        metadata = pq.read_schema(path).metadata or {}
        return json.loads(metadata[_META_KEY])
    except (OSError, ValueError, KeyError, pa.ArrowException):
        return None


def read_marker(path: Path) -> tuple[pd.DataFrame, dict[str, Any]] | None:
    """A video's rows and record, or None when there is no readable current marker."""
    if not path.is_file():
        return None
    record = read_record(path)
    if record is None or record.get("version") not in (MARKER_VERSION, *UPGRADABLE_VERSIONS):
        return None
    try:
        return pd.read_parquet(path), record
    except (OSError, ValueError, pa.ArrowException):
        return None


def write_with_record(path: Path, rows: pd.DataFrame, record: dict[str, Any]) -> Path:
    """Write rows as parquet with ``record`` in its metadata, atomically and durably."""
    table = pa.Table.from_pandas(rows, preserve_index=False)
    metadata = {**(table.schema.metadata or {}), _META_KEY: json.dumps(record).encode()}
    table = table.replace_schema_metadata(metadata)
    return atomic_write(path, lambda handle: pq.write_table(table, handle))


def write_marker(path: Path, rows: pd.DataFrame, record: dict[str, Any]) -> Path:
    """Write a video's rows and record into its marker, atomically and durably."""
    return write_with_record(path, rows, {**record, "version": MARKER_VERSION})


def crop_damage(files: list[Path], recorded: dict[str, int] | None) -> str | None:
    """Why the crops ``files`` are not the ones a marker vouches for, or None when they are.

    Args:
        files: the crops and mask crops its rows list.
        recorded: their sizes by file name (``crop_bytes``); None for a marker of
            version 2: then each must end like a complete PNG.
    """
    for file in files:
        try:
            size = file.stat().st_size
        except FileNotFoundError:
            return f"crop {file.name} is missing"
        if recorded is None:
            with open(file, "rb") as handle:
                handle.seek(max(size - len(PNG_END), 0))
                if handle.read() != PNG_END:
                    return f"crop {file.name} is not a complete PNG ({size} bytes, cut short?)"
        elif size != recorded.get(file.name):
            return f"crop {file.name} is {size} bytes, {recorded.get(file.name)} recorded"
    return None
