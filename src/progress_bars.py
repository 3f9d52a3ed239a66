"""Progress bars that read well in a terminal and in a log file.

In a terminal a bar redraws in place. Written to a file (``dfbench synth > log``, a SLURM
job, a bench cell's log), every redraw would become text, so there the bar updates at most
every :data:`LOG_INTERVAL` seconds, and still prints its final count.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")

#: Seconds between two updates of a bar whose stream is not a terminal.
LOG_INTERVAL = 30.0


def progress_bar(iterable: Iterable[T], **kwargs: Any) -> tqdm:
    """``tqdm(iterable, **kwargs)``, throttled to one update per :data:`LOG_INTERVAL` off a terminal."""
    stream = kwargs.get("file") or sys.stderr
    if not getattr(stream, "isatty", lambda: False)():
        kwargs.setdefault("mininterval", LOG_INTERVAL)
    return tqdm(iterable, **kwargs)
