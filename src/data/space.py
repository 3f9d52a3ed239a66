"""A full disk while writing the frame cache: one line naming the file and the space.

The operating system says only "No space left on device", often without the
file (a failed ``write`` has none), and pyarrow's ``OSError`` carries no
``errno`` at all. Preprocessing writes through :func:`writing`, which turns
such an error into a :class:`DiskFullError` that names the file being written,
the space left on its disk and the space the video needs, so the user knows
how much to free.
"""

from __future__ import annotations

import errno
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from src.errors import DFBenchError

_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
#: What libraries that drop ``errno`` (pyarrow) still write in the message.
_FULL_TEXTS = ("No space left on device", "Disk quota exceeded")


class DiskFullError(DFBenchError):
    """The disk (or quota) of the cache is full; the message names the file and the space."""


def is_disk_full(error: OSError) -> bool:
    """Whether ``error`` says the disk or the user's quota is full."""
    return error.errno in _FULL_ERRNOS or any(text in str(error) for text in _FULL_TEXTS)


def human_bytes(size: float) -> str:
    """``1536`` -> ``"1.5 KiB"``."""
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def free_bytes(path: Path) -> int | None:
    """Free bytes on the disk of ``path`` (or of its nearest existing folder), None if unknown."""
    for folder in (path, *path.parents):
        if folder.exists():
            try:
                return shutil.disk_usage(folder).free
            except OSError:
                return None
    return None


@contextmanager
def writing(path: Path, needed: int | Callable[[], int | None] | None = None) -> Iterator[None]:
    """Turn a full disk while writing ``path`` into a :class:`DiskFullError`.

    Args:
        path: the file being written.
        needed: about how many bytes the work in hand needs (a video's crops),
            or a function that estimates it (called only on a full disk);
            None when unknown.
    """
    try:
        yield
    except OSError as error:
        if not is_disk_full(error):
            raise
        free = free_bytes(path.parent)
        if callable(needed):
            needed = needed()
        space = f"{human_bytes(free)} free" if free is not None else "free space unknown"
        if needed:
            space += f", about {human_bytes(needed)} needed for this video's crops"
        raise DiskFullError(
            f"cannot write {path}: the disk is full ({space}); free some space (or give "
            "another --cache-dir) and run `dfbench preprocess` again: finished videos are kept, "
            "this one is redone"
        ) from error
