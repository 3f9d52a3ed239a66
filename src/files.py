"""Atomic file writes: a reader (or a resumed job) never sees half a file.

Files are written to a temporary file beside the target and renamed into
place. ``tempfile.mkstemp`` creates that temporary file readable by its owner
only (0600), which would leave every result, table and cache file private to
the user who ran the job; the mode is therefore set to what a plain
``open(path, "w")`` gives: the existing file's mode when one is replaced,
otherwise ``0o666`` less the process umask.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, BinaryIO

from src.errors import UnsafeNameError

#: What dfbench reads as a video or as a still image (lower-case suffixes), everywhere.
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")

_UMASK_LOCK = threading.Lock()
_umask_fallback: int | None = None


def current_umask() -> int:
    """The process umask, read without changing it where the system allows.

    POSIX offers no call that only reads the umask: ``os.umask`` sets it and
    returns the old value, and between setting and restoring it another
    thread could create a file with the wrong mode. Linux reports the umask
    in ``/proc/self/status``, which is read on every call (so a changed
    umask is seen). Elsewhere the set-and-restore is done once per process,
    under a lock.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    global _umask_fallback
    with _UMASK_LOCK:
        if _umask_fallback is None:
            _umask_fallback = os.umask(0o022)
            os.umask(_umask_fallback)
        return _umask_fallback


def _mode_for(path: Path) -> int:
    """The permission bits ``open(path, "w")`` would leave ``path`` with."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return 0o666 & ~current_umask()


def fsync_directory(directory: str | Path) -> None:
    """Make the renames, creations and removals in ``directory`` durable.

    A rename lives in the directory entry: without this, a crash can bring
    back the old file (or none) although the new one's data was synced.
    """
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_files(paths: Iterable[str | Path]) -> None:
    """Flush the data of files written without ``durable`` to the disk.

    For bulk outputs (face crops) written fast and vouched for by a marker
    written afterwards: syncing them just before the marker keeps a crash from
    leaving a marker whose files are empty.
    """
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None], durable: bool = True) -> Path:
    """Call ``write`` on a temporary file beside ``path``, then rename it into place.

    ``durable=False`` skips the fsyncs of the file and of its directory: still
    atomic for readers, but a power cut may lose the file. Fine for bulk
    outputs (face crops) that a marker written later vouches for.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = _mode_for(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            if hasattr(os, "fchmod"):
                os.fchmod(handle.fileno(), mode)
            write(handle)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        fsync_directory(path.parent)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


def atomic_write_json(path: str | Path, data: Any) -> Path:
    return atomic_write_text(
        path, json.dumps(data, indent=2, sort_keys=True, allow_nan=True) + "\n"
    )


def atomic_write_csv(path: str | Path, frame: Any) -> Path:
    """Write a pandas DataFrame as CSV (no index)."""
    return atomic_write(path, lambda handle: frame.to_csv(handle, index=False))


#: Longest file name most file systems take, in bytes (ext4, XFS, APFS, NTFS in UTF-16 units).
MAX_NAME_BYTES = 255


def check_path_name(name: object, what: str) -> str:
    """``name`` if it can be one folder or file name the suite creates, else a one-line error.

    Every name that becomes a path component (grid names, run names, frame
    table names, detector entries, cell ids) is checked here: not empty, no
    path separator, not ``.``/``..`` or hidden, no control character, at most
    :data:`MAX_NAME_BYTES` bytes. So no name can lead a write outside the folder
    it is meant for.

    Args:
        name: the name as given.
        what: what it is, for the message (``grid name``, ``--run_name`` ...).

    Raises:
        UnsafeNameError: naming ``what``, the value and the problem.
    """
    if not isinstance(name, str) or not name.strip():
        raise UnsafeNameError(f"{what} {name!r} is empty")
    if any(ord(c) < 32 or c == "\x7f" for c in name):
        problem = "contains a control character"
    elif "/" in name or "\\" in name:
        problem = "contains a path separator; give one plain name"
    elif name.startswith("."):
        problem = "starts with '.'"
    elif len(name.encode("utf-8")) > MAX_NAME_BYTES:
        problem = f"is longer than {MAX_NAME_BYTES} bytes"
    else:
        return name
    raise UnsafeNameError(f"{what} {name!r} {problem}")
