"""The fit/test subprocesses of a benchmark: started, watched, and stopped with ``bench``.

Each child runs in a session (process group) of its own, so that its DDP
workers and data-loader processes can be signalled together, and so that a
Ctrl-C in the terminal reaches ``bench`` alone, which then stops the child in
order. While :func:`handle_stop_signals` is active, SIGINT, SIGTERM and SIGUSR1
(a scheduler's warning: src/cli/signals.py) raise :class:`Interrupted` in ``bench``; :func:`run_child` then sends SIGTERM to the
child's group (Lightning ends a fit or test at the next batch on SIGTERM),
waits ``grace_s`` seconds, and sends SIGKILL to whatever is left. A second
signal skips the wait. A child writes stdout and stderr, line-buffered, to its
log, runs in the folder and environment it is given, and holds the results
folder's lock descriptors (:mod:`src.bench.lock`) until it exits.

How a child starts. A fit or test is a *worker* (:class:`Workers`): a process
forked from multiprocessing's fork server (a ``forkserver`` context of its own,
not the global default), which imports torch, Lightning and the detectors once
(``set_forkserver_preload``); ``bench`` starts it right after parsing its
arguments, so that this import runs alongside ``bench``'s own. The worker then makes
itself what a new ``dfbench`` program would be (session, log on descriptors 1
and 2, folder, environment, ``sys.argv``) and calls ``dfbench``'s main. A new
program per child (``command``) is what DDP cells use, since Lightning's launcher
starts the command line again, and what tests' stand-in commands use.

Why this model. Three were measured with ``benchmarks/cell_overhead.py`` (a
child that imports everything a fit needs and resolves its configuration): a
new program per child pays those imports again for every fit, test and map
build, which multiplies across a grid and does not fit the demo's time budget;
a worker starts in about the time a fork of ``bench`` did (the fork runner this
replaces), for one more import of those modules, in the fork server. The
fork runner needed private Python APIs to make a fork of ``bench`` behave like a
new program (``atexit._clear``, ``atexit._run_exitfuncs``, re-registering
``multiprocessing.util._exit_function``); the worker uses public ones only:

* descriptors reach a worker (not forked from ``bench``) over a Unix socket
  (``socket.send_fds``): the log and the very lock files ``bench`` holds;
* a multiprocessing child ends with ``os._exit``, so exit handlers do not run;
  the one a cell needs, W&B's (an offline run is written out when it finishes),
  is done through W&B's documented ``wandb.teardown``, and logging is flushed
  (:func:`_finish`; a test fails if either behaviour changes upstream);
* the worker learns that ``bench`` died, even by SIGKILL, from its parent
  process's sentinel (``multiprocessing.parent_process().sentinel``, whose
  other end only ``bench`` holds): a thread then sends SIGTERM to the worker's
  group and SIGKILL after ``grace_s``, as :func:`stop_child` would.

A new program learns the same through Linux's ``PR_SET_PDEATHSIG``, the one
operating-system call made through ctypes, kept in :mod:`src.bench.parent_death`.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import NoReturn

from src.bench.parent_death import sigterm_on_parent_death

#: Seconds a child gets to stop after SIGTERM before SIGKILL.
GRACE_S = 30.0
#: The most descriptors a worker receives: its log and the results folder's locks.
_MAX_FDS = 64


class Interrupted(BaseException):  # noqa: N818 (a signal, named like KeyboardInterrupt)
    """``bench`` received SIGINT, SIGTERM or SIGUSR1; the exit status is 128 + the signal number.

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
    """SIGINT, SIGTERM and SIGUSR1 raise :class:`Interrupted` (main thread only; else a no-op)."""
    state = StopSignals()
    if threading.current_thread() is not threading.main_thread():
        yield state
        return
    stops = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)
    previous = {s: signal.signal(s, state.handler) for s in stops}
    try:
        yield state
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


class Workers:
    """Starts each fit and test in a process forked from a server that has imported ``preload``.

    The server is multiprocessing's ``forkserver`` (a context of its own, not the
    global default), started with this process's environment by :meth:`start_server`
    or else by the first worker.

    Args:
        main: ``dfbench``'s main (``main(args) -> exit code``); picklable by reference.
        preload: modules the server imports once (torch, Lightning and the detectors
            come with ``src.cli.lightning``).
    """

    def __init__(self, main: Callable[[list[str]], int], preload: Sequence[str]) -> None:
        self.main = main
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(list(preload))

    def start_server(self) -> None:
        """Start the server now, in the background, so that its imports overlap this process's.

        Otherwise it starts with the first worker, which then waits for them. Like
        any child, the server shares this process's stdout and stderr; it ends once
        this process has ended and its imports are done, so a reader of a pipe from
        ``bench`` may see the end of the output a few seconds after ``bench`` exits.
        """

        def start_nothing() -> None:
            process = self._context.Process(target=os.getpid, name="dfbench warm-up")
            process.start()
            process.join()
            process.close()

        threading.Thread(target=start_nothing, name="forkserver-start", daemon=True).start()

    def start(
        self,
        args: Sequence[str],
        log_fd: int,
        cwd: Path,
        env: dict[str, str],
        pass_fds: Sequence[int],
        grace_s: float,
    ) -> Worker:
        """Start ``main(args)``; returns once the worker runs in its own session with its log."""
        bench_end, worker_end = socket.socketpair()
        with bench_end:
            with worker_end:
                process = self._context.Process(
                    target=_run_worker,
                    args=(self.main, list(args), worker_end, cwd, env, grace_s),
                    name=f"dfbench {args[0]}",
                )
                process.start()
            worker = Worker(process)
            try:
                # A descriptor reaches a process that this one did not fork only through a
                # Unix socket: the log and the results folder's locks (same open files).
                socket.send_fds(bench_end, [b"fds"], [log_fd, *pass_fds])
                bench_end.recv(1)  # b"" if the worker died before it was ready
            except BaseException:
                # Stopped before the worker had a session: nothing of the cell ran yet.
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signal.SIGKILL)
                worker.wait()
                raise
        return worker


class Worker:
    """A started worker, with the part of ``subprocess.Popen``'s interface that bench uses."""

    def __init__(self, process) -> None:  # noqa: ANN001 (a started forkserver Process)
        self._process = process
        self.pid: int = process.pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self._process.exitcode
            if self.returncode is not None:
                self._process.close()  # the worker's sentinel: bench no longer watches it
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            self._process.join(timeout)
        code = self.poll()
        if code is None:
            raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout or 0.0)
        return code


def _run_worker(
    main: Callable[[list[str]], int],
    args: list[str],
    channel: socket.socket,
    cwd: Path,
    env: dict[str, str],
    grace_s: float,
) -> NoReturn:
    """The worker: become what a new ``dfbench`` program would be, run ``main(args)``, exit."""
    os.setsid()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    with channel:
        _, fds, _, _ = socket.recv_fds(channel, 16, _MAX_FDS)
        if not fds:  # bench died before it sent them
            sys.exit(1)
        log_fd = fds[0]  # the others are the locks: holding them open is their whole use
        stdin = os.open(os.devnull, os.O_RDONLY)
        os.dup2(stdin, 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.close(stdin)
        os.close(log_fd)
        # Line-buffered, as PYTHONUNBUFFERED makes a new program's output.
        sys.stdout = open(1, "w", buffering=1, errors="backslashreplace", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", buffering=1, errors="backslashreplace", closefd=False)  # noqa: SIM115
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        sys.argv = ["dfbench", *args]
        _stop_group_when_bench_dies(grace_s)
        channel.sendall(b"1")
    code = 1
    try:
        code = main(args)
    except SystemExit as exit_:
        code = _exit_status(exit_)
    except BaseException:  # noqa: BLE001 (reported in the log, as an uncaught error would be)
        traceback.print_exc()
    sys.exit(_finish(code))


def _exit_status(exit_: SystemExit) -> int:
    if exit_.code is None or isinstance(exit_.code, int):
        return exit_.code or 0
    print(exit_.code, file=sys.stderr)
    return 1


def _stop_group_when_bench_dies(grace_s: float) -> None:
    """SIGTERM to the worker's group when ``bench`` dies, even by SIGKILL; SIGKILL after ``grace_s``.

    The parent process's sentinel is ready when ``bench`` is gone (only ``bench``
    holds the other end), which is how the worker learns it although its parent
    is the fork server.
    """
    sentinel = multiprocessing.parent_process().sentinel

    def watch() -> None:
        multiprocessing.connection.wait([sentinel])
        os.killpg(os.getpgrp(), signal.SIGTERM)
        time.sleep(grace_s)
        os.killpg(os.getpgrp(), signal.SIGKILL)

    threading.Thread(target=watch, name="bench-watch", daemon=True).start()


def _finish(code: int) -> int:
    """What the end of a new program would do that a worker's end does not; returns the status.

    A multiprocessing child ends with ``os._exit``: exit handlers do not run. Of
    those a cell registers, W&B's matters (an offline run is written out only when
    it finishes); W&B's documented ``wandb.teardown`` is its exit handler's work.
    Logging is flushed too; multiprocessing itself still joins or terminates the
    worker's own children (data-loader workers).
    """
    wandb = sys.modules.get("wandb")
    if wandb is not None:
        try:
            wandb.teardown(exit_code=code)
        except SystemExit as exit_:  # W&B's service failed: its exit status, as at a real exit
            code = code or _exit_status(exit_)
        except Exception:  # noqa: BLE001 (a failing teardown fails the run, with its traceback)
            traceback.print_exc()
            code = code or 1
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    return code & 0xFF


def stop_child(
    process: subprocess.Popen | Worker, grace_s: float, state: StopSignals | None
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
    workers: Workers | None = None,
) -> int:
    """Run ``command`` with its output in ``log``; returns its exit status.

    Args:
        command: the program and its arguments, or with ``workers`` the arguments
            of their ``main``, which a worker runs.
        log: file that receives stdout and stderr.
        cwd, env: the child's folder and environment.
        pass_fds: descriptors the child inherits (the results folder's locks).
        watch: called every ``poll_s`` seconds while the child runs (progress).
        state: the active :func:`handle_stop_signals` state, if any.
        grace_s: how long a stopped child may take to exit before SIGKILL.
        workers: run ``command`` in one of these workers instead of starting a program.

    Raises:
        Interrupted: ``bench`` was asked to stop; the child has been stopped.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as handle:
        if workers is not None:
            process: subprocess.Popen | Worker = workers.start(
                command, handle.fileno(), cwd, env, pass_fds, grace_s
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
                preexec_fn=sigterm_on_parent_death(),  # noqa: PLW1509 (bench starts no threads)
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
