"""Names and paths that come from files and options: checked before anything is read or written.

A dataset's list file, a JSON index, a tar member, a user's index CSV or a
table name given on the command line can all name something outside the folder
they belong to (``../outside.mp4``, ``/etc/x``, ``--table ../../x``). Every such
name goes through one of three checks here before it is used:

* :func:`inside` resolves a path against its root and refuses one that leaves it;
* :func:`check_key` refuses a video key that would not be a folder of the cache;
* :func:`check_name` refuses a table name that is not a single file name;
* :func:`no_parent_parts` refuses an entry of a dataset's own file (a list
  file's line, a JSON key or path) with a ``..`` part, even one that stays
  inside: such an entry is an error naming the file and the entry, never
  rewritten.

A safe key can still be too long for a file system (a name part over 255
bytes): :func:`key_folder` gives the cache folder of a key, with long parts
shortened deterministically; the tables keep the full key.

**Symbolic links are not followed.** Containment is decided on the path as
written, with ``.`` and ``..`` resolved lexically: a dataset copy whose
folders are links to another disk (common for FF++) stays valid, while no
*name read from a file* can climb out of its root. Links inside a dataset
root are the user's own doing and are trusted like the rest of the tree.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from pathlib import Path, PurePosixPath

from src.errors import DFBenchError, UnsafeNameError
from src.files import check_path_name

#: First part of a video key that the cache keeps for itself (``<cache>/tables/``).
RESERVED_KEY_PARTS = ("tables",)
#: Longest folder name (in UTF-8 bytes) taken from a key part as it is; most
#: file systems allow 255, and the cache's temporary files add to a name.
MAX_PART_BYTES = 128
#: Bytes of a long part kept in front of its hash, so the folder stays recognisable.
_KEPT_BYTES = 96
#: Longest cache folder (UTF-8 bytes) made from a key before it is folded into one hashed part.
MAX_FOLDER_BYTES = 1024


class UnsafePathError(DFBenchError):
    """A name or path that would read or write outside its folder; the message names where it came from."""


def _has_control(text: str) -> bool:
    return any(ord(c) < 32 for c in text)


def inside(root: str | Path, path: str | Path, where: str) -> Path:
    """``path`` (relative to ``root``, or absolute) as an absolute path that stays inside ``root``.

    Args:
        root: the folder ``path`` must stay in.
        path: a path read from a file or an option; backslashes count as separators.
        where: what named it, for the message (e.g. ``"<list file>: line 3"``).

    Raises:
        UnsafePathError: ``path`` is empty, holds a NUL, or lands outside ``root``.
    """
    text = str(path)
    if not text.strip():
        raise UnsafePathError(f"{where}: empty path")
    if "\x00" in text:
        raise UnsafePathError(f"{where}: path {text!r} contains a NUL character")
    base = os.path.normpath(os.path.abspath(os.path.expanduser(str(root))))
    candidate = os.path.normpath(os.path.join(base, text.replace("\\", "/")))
    if os.path.commonpath([base, candidate]) != base:
        raise UnsafePathError(f"{where}: {text!r} leads outside {base}")
    return Path(candidate)


def key_problem(key: object) -> str | None:
    """Why ``key`` cannot be a video key (a relative folder of the cache), or None if it can."""
    if not isinstance(key, str) or not key:
        return "is empty" if key == "" else f"is not a string ({type(key).__name__})"
    if "\x00" in key or _has_control(key):
        return "contains a control character"
    if "\\" in key:
        return "contains a backslash (parts are separated by '/')"
    if key.startswith("/") or PurePosixPath(key).is_absolute():
        return "is absolute"
    parts = key.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return "has an empty, '.' or '..' part"
    if parts[0] in RESERVED_KEY_PARTS:
        return f"starts with {parts[0]!r}, a folder the cache keeps for itself"
    return None


def _hashed(text: str, kept: str) -> str:
    """``kept`` cut to :data:`_KEPT_BYTES` (on a character boundary) plus a hash of ``text``."""
    prefix = kept.encode()[:_KEPT_BYTES].decode("utf-8", errors="ignore")
    return f"{prefix}~{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def key_folder(key: str) -> str:
    """The cache folder (relative, ``/``-separated) of a safe video key.

    A part longer than :data:`MAX_PART_BYTES` bytes becomes its first bytes,
    ``~`` and 16 hex digits of the SHA-256 of the key up to and including that
    part, so keys that differ anywhere get different folders and siblings stay
    siblings. A folder still longer than :data:`MAX_FOLDER_BYTES` keeps its
    first part and folds the rest into one hashed part.
    """
    parts = key.split("/")
    folder = [
        _hashed("/".join(parts[: i + 1]), part) if len(part.encode()) > MAX_PART_BYTES else part
        for i, part in enumerate(parts)
    ]
    if len("/".join(folder).encode()) > MAX_FOLDER_BYTES:
        folder = [folder[0], _hashed(key, "/".join(parts[1:]).replace("/", "_"))]
    return "/".join(folder)


def no_parent_parts(text: str, where: str) -> str:
    """``text`` (``\\`` read as ``/``) if it has no ``..`` part.

    For entries of a dataset's own files (list files, JSON indexes, tar
    members), checked after :func:`inside`: an entry that leaves its root says
    so; one that leaves and comes back (``a/../b.mp4``) is refused here rather
    than read as ``b.mp4``.

    Raises:
        UnsafePathError: the message starts with ``where`` and names the entry.
    """
    path = text.replace("\\", "/")
    if ".." in path.split("/"):
        raise UnsafePathError(
            f"{where}: {text!r} has a '..' part; name the file by its path without '..'"
        )
    return path


def member_folder(name: str) -> str:
    """The folder of a tar member as the archive writes it (``"."`` at its top).

    Kept as written (``./7/a``, not ``7/a``), so a face sequence's
    ``archive::folder`` finds its members again.
    """
    return posixpath.dirname(name) or "."


def check_key(key: object, where: str) -> str:
    """``key`` if it is a safe video key, else :class:`UnsafePathError` naming ``where``."""
    problem = key_problem(key)
    if problem is not None:
        raise UnsafePathError(f"{where}: video key {key!r} {problem}")
    return key  # type: ignore[return-value]


def check_name(name: object, what: str = "table name") -> str:
    """``name`` if it is one plain file name (:func:`src.files.check_path_name`), else an error."""
    try:
        return check_path_name(name, what)
    except UnsafeNameError as error:
        raise UnsafePathError(str(error)) from None
