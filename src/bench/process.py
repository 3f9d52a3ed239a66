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
a cell that the next run continues.

A child is either a new program (``command``) or, with ``fork_main``, a fork of
``bench`` that calls ``fork_main(command)``: ``bench`` imports torch, Lightning
and the detectors once (about 8 s on 2 cores) and every fit and test starts
from that copy instead of importing them again. The forked child gets the same
session, log, folder, environment and death signal as a new program would.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import NoReturn

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


class ForkedChild:
    """A fork of ``bench`` that runs ``main(args)`` (``subprocess.Popen``'s pid, poll and wait).

    The fork must happen while ``bench`` has no threads and has run no parallel
    torch operation, which holds between cells: ``bench`` only reads and writes files.
    """

    def __init__(
        self,
        main: Callable[[list[str]], int],
        args: Sequence[str],
        log_fd: int,
        cwd: Path,
        env: dict[str, str],
    ) -> None:
        preexec = _die_with_parent()
        for stream in (sys.stdout, sys.stderr):  # else the child would print them again
            stream.flush()
        self.returncode: int | None = None
        self.pid = os.fork()
        if self.pid == 0:
            _run_forked(main, list(args), log_fd, cwd, env, preexec)

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout or 0.0)
            time.sleep(0.05)
        return self.returncode


def _run_forked(
    main: Callable[[list[str]], int],
    args: list[str],
    log_fd: int,
    cwd: Path,
    env: dict[str, str],
    preexec: Callable[[], None] | None,
) -> NoReturn:
    """The forked child: become a new program's equivalent, run ``main(args)``, exit."""
    code = 1
    try:
        os.setsid()
        if preexec is not None:
            preexec()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        # bench's exit handlers are not the child's; keep the ones every Python process has.
        atexit._clear()
        for module, name in (("logging", "shutdown"), ("multiprocessing.util", "_exit_function")):
            if module in sys.modules:
                atexit.register(getattr(sys.modules[module], name))
        stdin = os.open(os.devnull, os.O_RDONLY)
        os.dup2(stdin, 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.close(stdin)
        # Line-buffered, as PYTHONUNBUFFERED makes a new program's output (bench's own
        # streams may be captured objects that do not write to descriptors 1 and 2).
        sys.stdout = open(1, "w", buffering=1, errors="backslashreplace", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", buffering=1, errors="backslashreplace", closefd=False)  # noqa: SIM115
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        sys.argv = ["dfbench", *args]
        code = main(args)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
    except BaseException:  # noqa: BLE001 (reported in the log, as an uncaught error would be)
        traceback.print_exc()
    finally:
        with contextlib.suppress(BaseException):
            atexit._run_exitfuncs()
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code & 0xFF)


def stop_child(
    process: subprocess.Popen | ForkedChild, grace_s: float, state: StopSignals | None
) -> None:
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
    fork_main: Callable[[list[str]], int] | None = None,
) -> int:
    """Run ``command`` with its output in ``log``; returns its exit status.

    Args:
        command: the program and its arguments, or with ``fork_main`` the arguments
            of ``fork_main``, which a fork of this process runs.
        log: file that receives stdout and stderr.
        cwd, env: the child's folder and environment.
        pass_fds: descriptors the child inherits (the results folder's lock).
        watch: called every ``poll_s`` seconds while the child runs (progress).
        state: the active :func:`handle_stop_signals` state, if any.
        grace_s: how long a stopped child may take to exit before SIGKILL.
        fork_main: run ``fork_main(command)`` in a fork instead of starting a program;
            the fork inherits every descriptor, so ``pass_fds`` is implied.

    Raises:
        Interrupted: ``bench`` was asked to stop; the child has been stopped.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as handle:
        if fork_main is not None:
            process: subprocess.Popen | ForkedChild = ForkedChild(
                fork_main, command, handle.fileno(), cwd, env
            )
        else:
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
