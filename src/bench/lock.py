"""One ``dfbench bench`` at a time per results folder, one per cell, and one fit per run.

Two runs writing one cell would delete each other's checkpoints. The lock is
an advisory ``flock`` on ``<root>/bench.lock`` (``root`` = the benchmark's
results folder, ``<out>/<benchmark>/<profile>``):

* a run of the whole grid holds it exclusively;
* a ``--cell N`` run (a cluster array job) holds it shared, so array jobs run
  side by side, plus ``<root>/locks/<cell id>.lock`` exclusively (and the
  locks of the unfinished zoo cells a PRLE cell trains first).

The kernel releases a ``flock`` when its holder dies, so the lock of a killed
run is taken over without any clean-up. The holder writes who it is (pid,
host, start time, command) into the file it holds exclusively, and a refused
run names that process. The descriptors are handed to the fit/test
subprocesses (see :mod:`src.bench.process`): if ``bench`` itself is killed
with SIGKILL, its child keeps the folder locked until it has stopped too, so
a re-run never overlaps it; the re-run waits for such a child for a while.

``flock`` works on local file systems and on NFSv4; on a file system without
locking a second run is not refused.
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from src.errors import DFBenchError

#: How long a run waits for the children of a killed run to stop (seconds).
ORPHAN_WAIT_S = 120.0


class FolderInUseError(DFBenchError):
    """Another ``dfbench`` holds the results folder, the cell or the run; one line saying which."""


def _process_start(pid: int) -> str | None:
    """The start time of process ``pid`` in clock ticks since boot (Linux), to tell reused pids."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


@dataclass(frozen=True)
class Holder:
    """Who holds a lock, as written into the lock file."""

    pid: int
    host: str
    started: float
    command: str
    process_start: str | None = None
    #: The dfbench verb that holds the lock (``bench``, ``fit``).
    verb: str = "bench"

    @classmethod
    def me(cls, verb: str = "bench") -> Holder:
        return cls(
            pid=os.getpid(),
            host=socket.gethostname(),
            started=time.time(),
            command=shlex.join(["dfbench", *sys.argv[1:]]),
            process_start=_process_start(os.getpid()),
            verb=verb,
        )

    @classmethod
    def read(cls, path: Path) -> Holder | None:
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None  # no file, an empty one (released), or not ours

    def alive(self) -> bool:
        """Whether the process still runs; a process on another host counts as running."""
        if self.host != socket.gethostname():
            return True
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # someone else's process: it exists
        return self.process_start is None or _process_start(self.pid) == self.process_start

    def __str__(self) -> str:
        where = "" if self.host == socket.gethostname() else f" on {self.host}"
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started))
        command = f"dfbench {self.verb}" + (" --cell" if " --cell" in self.command else "")
        return f"{command} (pid {self.pid}{where}, started {started})"


class BenchLock:
    """The lock of one results folder, for a whole-grid run or for one cell.

    Args:
        root: the benchmark's results folder.
        cell: the cell id of a ``--cell`` run; None for a whole-grid run.
        say: where waiting and take-over notes go.
        also: more cell ids a ``--cell`` run locks (the zoo cells it trains first).
        orphan_wait_s: how long to wait for the children of a killed run.
    """

    def __init__(
        self,
        root: Path,
        cell: str | None = None,
        say: Callable[[str], None] = print,
        orphan_wait_s: float = ORPHAN_WAIT_S,
        also: Sequence[str] = (),
    ) -> None:
        self.root = Path(root)
        self.cell = cell
        self.say = say
        self.orphan_wait_s = orphan_wait_s
        self.path = self.root / "bench.lock"
        self.cell_path = self.root / "locks" / f"{cell}.lock" if cell else None
        self.also = tuple(also) if cell else ()
        self._fds: list[int] = []
        self._claimed: list[int] = []  # the descriptors whose files hold our record

    @property
    def fds(self) -> tuple[int, ...]:
        """The open lock descriptors (to hand to child processes)."""
        return tuple(self._fds)

    def _holders(self) -> list[Holder]:
        """Live processes recorded in this folder's lock files."""
        files = [self.path, *sorted((self.root / "locks").glob("*.lock"))]
        return [h for h in map(Holder.read, files) if h is not None and h.alive()]

    def _lock(self, path: Path, mode: int, what: str) -> int:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        deadline = time.monotonic() + self.orphan_wait_s
        waiting = False
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holders = [Holder.read(path)] if path != self.path else self._holders()
                holders = [h for h in holders if h is not None and h.alive()]
                if holders or time.monotonic() > deadline:
                    os.close(fd)
                    if holders:
                        raise FolderInUseError(
                            f"{what} is in use by {holders[0]}; wait for it to finish "
                            "or stop it, or choose another --out"
                        ) from None
                    raise FolderInUseError(
                        f"{what} is still locked by the child processes of a stopped "
                        f"dfbench bench ({Holder.read(path) or 'unknown'}); end them, then re-run"
                    ) from None
                if not waiting:
                    self.say(f"{what}: waiting for the fit/test process of a stopped run to exit")
                    waiting = True
                time.sleep(0.5)
        self._fds.append(fd)
        return fd

    def _claim(self, fd: int, path: Path) -> None:
        previous = Holder.read(path)
        if previous is not None and previous.pid != os.getpid():
            self.say(f"took over the lock of {previous}, which is no longer running")
        data = json.dumps(asdict(Holder.me())).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        self._claimed.append(fd)

    def acquire(self) -> BenchLock:
        """Lock, or raise :class:`FolderInUseError` naming the process that holds the lock."""
        try:
            if self.cell_path is None:
                fd = self._lock(self.path, fcntl.LOCK_EX, f"results folder {self.root}")
                self._claim(fd, self.path)
            else:
                self._lock(self.path, fcntl.LOCK_SH, f"results folder {self.root}")
                fd = self._lock(self.cell_path, fcntl.LOCK_EX, f"cell {self.cell} in {self.root}")
                self._claim(fd, self.cell_path)
                for other in self.also:
                    path = self.root / "locks" / f"{other}.lock"
                    fd = self._lock(path, fcntl.LOCK_EX, f"cell {other} in {self.root}")
                    self._claim(fd, path)
        except BaseException:
            self.release()
            raise
        return self

    def release(self) -> None:
        """Unlock; the holder's record is erased, so nobody is named for a lock no one holds."""
        for fd in self._claimed:
            os.ftruncate(fd, 0)  # ours: we hold that file exclusively
        self._claimed.clear()
        for fd in self._fds:
            os.close(fd)
        self._fds.clear()

    def __enter__(self) -> BenchLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def lock_run(run_dir: Path) -> int:
    """Lock a run folder for one fit: ``<run_dir>/run.lock``, held until the process exits.

    Two fits writing one run's ``checkpoints/`` would leave ``best`` and ``last``
    picking between two unrelated trainings. The lock is the same advisory
    ``flock`` as a results folder's, released by the kernel when the fit ends
    (however it ends).

    Returns:
        The lock's descriptor (kept open by the caller).

    Raises:
        FolderInUseError: another live process holds it; the message names it.
    """
    path = Path(run_dir) / "run.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        holder = Holder.read(path)
        raise FolderInUseError(
            f"run {run_dir} is in use by {holder or 'another process'}; wait for it to finish "
            "or stop it, or choose another --run_name"
        ) from None
    data = json.dumps(asdict(Holder.me("fit"))).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
    return fd


def _held(path: Path, mode: int) -> bool:
    """Whether another process holds ``path`` so that ``mode`` cannot be had now."""
    if not path.is_file():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops a lock taken here
    return False


def cell_in_use(root: Path, cell: str) -> bool:
    """Whether a live ``dfbench bench`` is running ``cell`` of the results folder ``root``.

    A whole-grid run holds ``bench.lock`` exclusively, a ``--cell`` run the cell's
    own lock: a cell whose ``status.json`` says running while neither is held was
    left by a process that died (killed, a crashed node).
    """
    root = Path(root)
    return _held(root / "bench.lock", fcntl.LOCK_SH) or _held(
        root / "locks" / f"{cell}.lock", fcntl.LOCK_EX
    )
