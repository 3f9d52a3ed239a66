"""The fit/test subprocesses of a benchmark: started, watched, and stopped with ``bench``.

Each child runs in a session (process group) of its own, so that its DDP
workers and data-loader processes can be signalled together, and so that a
Ctrl-C in the terminal reaches ``bench`` alone, which then stops the child in
order. While :func:`handle_stop_signals` is active, SIGINT and SIGTERM raise
:class:`Interrupted` in ``bench``; :func:`run_child` then sends SIGTERM to the
child's group (Lightning ends a fit or test at the next batch on SIGTERM),
waits ``grace_s`` seconds, and sends SIGKILL to whatever is left. A second
signal skips the wait.

If ``bench`` dies without a chance to react (SIGKILL, a crashed node), Linux
sends the child SIGTERM (``PR_SET_PDEATHSIG``), so no fit goes on writing into
a cell that the next run redoes.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

#: Seconds a child gets to stop after SIGTERM before SIGKILL.
GRACE_S = 30.0
_PR_SET_PDEATHSIG = 1


class Interrupted(BaseException):  # noqa: N818 (a signal, named like KeyboardInterrupt)
    """``bench`` received SIGINT or SIGTERM; the exit status is 128 + the signal number.

    A ``BaseException``, as ``KeyboardInterrupt`` is, so that the runner's
    ``except Exception`` (one cell's failure) never takes a stop for a failure.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class StopSignals:
    """The stop signals received while :func:`handle_stop_signals` is active."""

    def __init__(self) -> None:
        self.received: list[int] = []

    def handler(self, signum: int, frame: object) -> None:
        self.received.append(signum)
        if len(self.received) == 1:  # later ones only hurry the clean-up up
            raise Interrupted(signum)

    @property
    def hurry(self) -> bool:
        return len(self.received) > 1


@contextlib.contextmanager
def handle_stop_signals() -> Iterator[StopSignals]:
    """SIGINT and SIGTERM raise :class:`Interrupted` (main thread only; elsewhere a no-op)."""
    state = StopSignals()
    if threading.current_thread() is not threading.main_thread():
        yield state
        return
    previous = {s: signal.signal(s, state.handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield state
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that asks Linux to send the child SIGTERM when ``bench`` dies."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    except OSError:
        return None
    parent = os.getpid()

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # bench died before prctl took effect
            os._exit(1)

    return preexec


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def stop_child(process: subprocess.Popen, grace_s: float, state: StopSignals | None) -> None:
    """SIGTERM to the child's group, SIGKILL after ``grace_s`` (or at a second signal)."""
    _signal_group(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while process.poll() is None and time.monotonic() < deadline:
        if state is not None and state.hurry:
            break
        time.sleep(0.1)
    # The group outlives its leader while workers remain: end them too.
    _signal_group(process.pid, signal.SIGKILL)
    process.wait()


def run_child(
    command: Sequence[str],
    log: Path,
    *,
    cwd: Path,
    env: dict[str, str],
    pass_fds: Sequence[int] = (),
    watch: Callable[[], None] | None = None,
    state: StopSignals | None = None,
    grace_s: float = GRACE_S,
    poll_s: float = 1.0,
) -> int:
    """Run ``command`` with its output in ``log``; returns its exit status.

    Args:
        command: the program and its arguments.
        log: file that receives stdout and stderr.
        cwd, env: the child's folder and environment.
        pass_fds: descriptors the child inherits (the results folder's lock).
        watch: called every ``poll_s`` seconds while the child runs (progress).
        state: the active :func:`handle_stop_signals` state, if any.
        grace_s: how long a stopped child may take to exit before SIGKILL.

    Raises:
        Interrupted: ``bench`` was asked to stop; the child has been stopped.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as handle:
        process = subprocess.Popen(
            list(command),
            cwd=cwd,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            pass_fds=tuple(pass_fds),
            preexec_fn=_die_with_parent(),  # noqa: PLW1509 (bench has no threads when it forks)
        )
        try:
            while True:
                try:
                    return process.wait(timeout=poll_s)
                except subprocess.TimeoutExpired:
                    if watch is not None:
                        watch()
        finally:
            if process.poll() is None:
                stop_child(process, grace_s, state)
