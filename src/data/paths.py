"""Names and paths that come from files and options: checked before anything is read or written.

A dataset's list file, a JSON index, a tar member, a user's index CSV or a
table name given on the command line can all name something outside the folder
they belong to (``../outside.mp4``, ``/etc/x``, ``--table ../../x``). Every such
name goes through one of three checks here before it is used:

* :func:`inside` resolves a path against its root and refuses one that leaves it;
* :func:`check_key` refuses a video key that would not be a folder of the cache;
* :func:`check_name` refuses a table name that is not a single file name.

**Symbolic links are not followed.** Containment is decided on the path as
written, with ``.`` and ``..`` resolved lexically: a dataset copy whose
folders are links to another disk (common for FF++) stays valid, while no
*name read from a file* can climb out of its root. Links inside a dataset
root are the user's own doing and are trusted like the rest of the tree.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from src.errors import DFBenchError, UnsafeNameError
from src.files import check_path_name

#: First part of a video key that the cache keeps for itself (``<cache>/tables/``).
RESERVED_KEY_PARTS = ("tables",)


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
