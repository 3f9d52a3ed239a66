"""What a cached video was made from, and the marker that says so.

A video's folder in the frame cache (``<cache>/<video_key>/``) holds its face
crops and, written last, ``frames.parquet``: its frame rows, with a JSON
record in the file's metadata of

* ``produced_by``: what the crops are made from: the source's identity, the
  mask video's identity and the preprocessing settings that shape crops;
* ``index``: the video's index row (every video-table column);
* ``failures``: the failure rows of the run that made it.

One file carries rows and record, so they are replaced together by one
atomic rename: a run killed between two writes can never pair new rows with
an old record.

On a re-run a video is

* **fresh** when both records match: reused as it is;
* **re-indexed** when only the index row changed (split, label, method, ids,
  dataset, or the path of a source whose identity is unchanged): its rows are
  rewritten from the new row, without detecting faces again;
* **stale** otherwise (source, mask or settings changed, or no marker): redone.

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
#: Bumped when the record changes meaning: older markers are redone.
MARKER_VERSION = 2
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


def read_marker(path: Path) -> tuple[pd.DataFrame, dict[str, Any]] | None:
    """A video's rows and record, or None when there is no readable current marker."""
    if not path.is_file():
        return None
    try:
        metadata = pq.read_schema(path).metadata or {}
        record = json.loads(metadata[_META_KEY])
        if record.get("version") != MARKER_VERSION:
            return None
        return pd.read_parquet(path), record
    except (OSError, ValueError, KeyError, pa.ArrowException):
        return None


def write_marker(path: Path, rows: pd.DataFrame, record: dict[str, Any]) -> Path:
    """Write rows and record into one parquet file, atomically and durably."""
    table = pa.Table.from_pandas(rows, preserve_index=False)
    record = {**record, "version": MARKER_VERSION}
    metadata = {**(table.schema.metadata or {}), _META_KEY: json.dumps(record).encode()}
    table = table.replace_schema_metadata(metadata)
    return atomic_write(path, lambda handle: pq.write_table(table, handle))
