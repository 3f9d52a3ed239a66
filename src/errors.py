"""The suite's own error types, and which failures a user is shown as one line.

A failure the user can act on (a bad option, a malformed config, grid or
dataset file, a missing frame table) raises a :class:`DFBenchError` whose
message names the file, option or row and the problem; ``dfbench`` prints it
as one line and exits 2. So do errors of the operating system on the user's
paths (a file not found, no permission, a full disk). Anything else, a
``ValueError`` from numpy or pandas included, is a bug: ``dfbench`` shows its
traceback and says so.

``DFBenchError`` is a ``ValueError``, so code that catches ``ValueError``
around a library call keeps working.
"""

from __future__ import annotations

import errno
import sys


class DFBenchError(ValueError):
    """A failure the user can act on; the message names what to change."""


class ConfigError(DFBenchError):
    """A configuration (option, config file, constructor argument) that cannot run as given."""


class UnsafeNameError(DFBenchError):
    """A name that cannot be one folder or file name (see :func:`src.files.check_path_name`)."""


#: Operating-system errors on a user's path that are the user's to fix.
USER_OS_ERRORS: tuple[type[OSError], ...] = (
    FileNotFoundError,
    FileExistsError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
)
#: errno values of other OS errors that are the user's to fix (a full disk, a too long name).
USER_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.ENAMETOOLONG, errno.EROFS, errno.ELOOP})


def expected_error(error: BaseException) -> bool:
    """Whether ``error`` is shown as one line (see the module docstring).

    Lightning's ``MisconfigurationException`` (a Trainer setting it refuses)
    counts too; its module is looked up only when loaded, so the check imports
    nothing.
    """
    if isinstance(error, (DFBenchError, *USER_OS_ERRORS)):
        return True
    if isinstance(error, OSError) and error.errno in USER_ERRNOS:
        return True
    loaded = sys.modules.get("lightning_fabric.utilities.exceptions")
    misconfiguration = getattr(loaded, "MisconfigurationException", None)
    return misconfiguration is not None and isinstance(error, misconfiguration)


def one_line(error: BaseException) -> str:
    """The error's message on one line (wrapped or indented lines joined by single spaces)."""
    text = str(error) or type(error).__name__
    if isinstance(error, KeyError) and len(error.args) == 1:
        text = str(error.args[0])  # str(KeyError) adds quotes around the message
    if isinstance(error, OSError) and error.strerror and error.filename is not None:
        text = f"{error.filename}: {error.strerror}"
    return " ".join(part.strip() for part in text.splitlines() if part.strip())
