"""The results folder's lock: refused while held, named holder, taken over after a kill."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from src.bench.lock import BenchLock, FolderInUseError, Holder

ROOT = Path(__file__).resolve().parents[1]
HOLD = """
import sys, time
from pathlib import Path
from src.bench.lock import BenchLock
lock = BenchLock(Path(sys.argv[1]), sys.argv[2] or None).acquire()
Path(sys.argv[3]).write_text("locked")
time.sleep(120)
"""


def hold(root: Path, tmp_path: Path, cell: str = "") -> subprocess.Popen:
    """Another process that takes the lock and keeps it."""
    ready = tmp_path / f"ready-{cell or 'grid'}"
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(root), cell, str(ready)],
        cwd=ROOT,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
    )
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert process.poll() is None and time.monotonic() < deadline, "holder did not start"
        time.sleep(0.05)
    return process


def kill(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait()


def test_second_run_names_the_holder_and_a_dead_ones_lock_is_taken_over(tmp_path: Path) -> None:
    root = tmp_path / "results" / "grid" / "demo"
    holder = hold(root, tmp_path)
    try:
        for cell in (None, "000-x-s0-abc"):  # a whole-grid run and a --cell run are refused
            with pytest.raises(FolderInUseError) as refused:
                BenchLock(root, cell, orphan_wait_s=0).acquire()
            message = str(refused.value)
            assert message.startswith(
                f"results folder {root} is in use by dfbench bench (pid {holder.pid}, started "
            ), message
            assert message.endswith("; wait for it to finish or stop it, or choose another --out")
            assert "\n" not in message
    finally:
        kill(holder)
    notes: list[str] = []
    with BenchLock(root, say=notes.append) as lock:
        assert len(notes) == 1
        assert notes[0].startswith(f"took over the lock of dfbench bench (pid {holder.pid}, ")
        assert notes[0].endswith(", which is no longer running")
        record = json.loads((root / "bench.lock").read_text())
        assert record["pid"] == os.getpid() and len(lock.fds) == 1
    assert (root / "bench.lock").read_text() == ""  # released: nobody is named any more


def test_cell_runs_share_the_folder_but_not_a_cell(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    other = hold(root, tmp_path, cell="001-b")
    try:
        with BenchLock(root, "000-a") as mine:  # another cell: side by side
            assert len(mine.fds) == 2
            with pytest.raises(FolderInUseError, match=r"^cell 000-a in .* is in use by dfbench"):
                BenchLock(root, "000-a", orphan_wait_s=0).acquire()
        with pytest.raises(FolderInUseError) as refused:
            BenchLock(root, "001-b", orphan_wait_s=0).acquire()
        assert f"cell 001-b in {root} is in use by dfbench bench (pid {other.pid}, " in str(
            refused.value
        )
        # A whole-grid run waits for no one: it names a --cell run that holds the folder.
        with pytest.raises(FolderInUseError, match=f"in use by dfbench bench \\(pid {other.pid}"):
            BenchLock(root, orphan_wait_s=0).acquire()
    finally:
        kill(other)
    BenchLock(root, orphan_wait_s=0).acquire().release()


def test_holder_liveness(tmp_path: Path) -> None:
    me = Holder.me()
    assert me.alive() and me.pid == os.getpid()
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead = Holder(int(finished.stdout), me.host, me.started, "dfbench bench x")
    assert not dead.alive()
    # Our pid, but another process start time: a reused pid, not the holder.
    if me.process_start is not None:
        assert not Holder(me.pid, me.host, me.started, "", "1").alive()
    elsewhere = Holder(
        1, "another-host-" + socket.gethostname(), me.started, "dfbench bench --cell 3"
    )
    assert elsewhere.alive()  # cannot be checked from here: assumed running
    assert str(elsewhere).startswith("dfbench bench --cell (pid 1 on another-host-")
    (tmp_path / "garbage.lock").write_text("not json")
    assert Holder.read(tmp_path / "garbage.lock") is None
    assert Holder.read(tmp_path / "missing.lock") is None


def test_a_cell_run_also_locks_the_zoo_cells_it_trains(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    with BenchLock(root, "003-prle", also=["000-a", "001-b"]) as mine:
        assert len(mine.fds) == 4  # the folder (shared) and three cells
        for cell in ("000-a", "001-b"):  # the zoo cells' own array jobs are refused, named
            with pytest.raises(FolderInUseError) as refused:
                BenchLock(root, cell, orphan_wait_s=0).acquire()
            assert f"cell {cell} in {root} is in use by dfbench bench (pid {os.getpid()}, " in str(
                refused.value
            )
        BenchLock(root, "002-c", orphan_wait_s=0).acquire().release()
    assert (root / "locks" / "000-a.lock").read_text() == ""
    BenchLock(root, "000-a", orphan_wait_s=0).acquire().release()


def one_cell_grid(tmp_path: Path) -> Path:
    """A grid named ``grid`` with one xception cell on the in-memory faces."""
    spec = {
        "name": "grid",
        "profiles": {"demo": {"data": ["configs/data/synthetic.yaml"]}},
        "detectors": [{"name": "xception", "configs": ["configs/detectors/xception.yaml"]}],
    }
    grid = tmp_path / "grid.yaml"
    grid.write_text(json.dumps(spec))
    return grid


def test_a_second_bench_on_a_busy_folder_says_so_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from src.cli import main

    grid = one_cell_grid(tmp_path)
    root = tmp_path / "results" / "grid" / "demo"
    holder = hold(root, tmp_path)
    try:
        code = main(["bench", str(grid), "--out", str(tmp_path / "results"), "--no-wandb"])
    finally:
        kill(holder)
    assert code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"dfbench bench: results folder {root} is in use by dfbench bench ")


def test_bench_list_tells_a_dead_cell_from_a_running_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """After a SIGKILL, a cell's status.json still says running; --list said running too."""
    from src.bench.grid import load_grid
    from src.cli import main

    grid = one_cell_grid(tmp_path)
    (cell,) = load_grid(grid, "demo")
    root = tmp_path / "results" / "grid" / "demo"
    (root / "cells" / cell.id).mkdir(parents=True)
    (root / "cells" / cell.id / "status.json").write_text(
        json.dumps({"status": "running", "cell": cell.id, "pid": 4_000_000})
    )
    listing = ["bench", str(grid), "--out", str(tmp_path / "results"), "--no-wandb", "--list"]

    def shown() -> str:
        assert main(listing) == 0
        return capsys.readouterr().out.splitlines()[1].split()[1]

    assert shown() == "stopped"  # nobody holds its locks
    for holder in (BenchLock(root), BenchLock(root, cell.id)):  # a whole-grid run, a --cell run
        with holder:
            assert shown() == "running"
    assert shown() == "stopped"
