"""SIGTERM for a program that ``bench`` started when ``bench`` dies (Linux ``PR_SET_PDEATHSIG``).

A cell's fit or test normally runs in a worker (:class:`src.bench.process.Workers`),
which watches ``bench`` through multiprocessing's public parent sentinel. A new
program (a DDP cell, whose launcher starts the command line again; a test's
stand-in command) is not Python code of ours and cannot run that watch, and no
public Python API asks the kernel to signal a child when its parent dies. So this
module makes the one ``prctl(2)`` call through ctypes, from a ``preexec_fn``: it
is an operating-system call with a fixed ABI, not a private Python API, and it is
kept here alone. ``tests/test_bench_process.py`` checks that a program started
with it receives SIGTERM when its parent is killed with SIGKILL.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
from collections.abc import Callable

#: ``PR_SET_PDEATHSIG`` from ``<linux/prctl.h>``.
PR_SET_PDEATHSIG = 1


def sigterm_on_parent_death() -> Callable[[], None] | None:
    """A ``preexec_fn`` that asks Linux to send the child SIGTERM when this process dies.

    Returns:
        None where the call is unavailable (not Linux, no C library): the child
        then outlives a killed ``bench`` until it ends by itself.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    except OSError:
        return None
    parent = os.getpid()

    def preexec() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec
