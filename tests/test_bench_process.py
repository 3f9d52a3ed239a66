"""Stopping ``dfbench bench`` stops its fit/test subprocess, and the cell stays resumable.

The subprocess is a stand-in that records its pid and sleeps. The first test
drives :func:`run_child` in this process (fast); the others run ``bench``
itself (lock, preflight, runner), which takes a while to import.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from src.bench.lock import BenchLock
from src.bench.process import Interrupted, handle_stop_signals, run_child

ROOT = Path(__file__).resolve().parents[1]
#: `dfbench bench ARGS` whose cells run CHILD instead of `dfbench fit/test`.
BENCH = """
import sys
import src.bench.runner as runner
runner.DFBENCH = [sys.executable, sys.argv[1]]
from src.cli.bench import run
sys.exit(run(sys.argv[2:]))
"""
#: A fit that never ends. CHILD_ON_SIGTERM: exit (default), ignore, or slow (2 s to exit).
CHILD = """
import os, signal, sys, time
from pathlib import Path
mode = os.environ.get("CHILD_ON_SIGTERM", "exit")
if mode == "ignore":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
elif mode == "slow":
    signal.signal(signal.SIGTERM, lambda *_: (time.sleep(2), sys.exit(143)))
(checkpoints,) = [a.split("=", 1)[1] for a in sys.argv if a.startswith("--checkpoint.dirpath=")]
Path(checkpoints).parent.joinpath("child.pid").write_text(str(os.getpid()))
time.sleep(120)
"""


def gone(pid: int) -> bool:
    """The process has exited (a zombie waiting for its parent counts as exited)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")


def wait_for(condition, timeout: float = 60.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def start_bench(tmp_path: Path, on_sigterm: str = "exit") -> tuple[subprocess.Popen, Path]:
    grid = tmp_path / "grid.yaml"
    spec = {
        "name": "tiny",
        "profiles": {"demo": {"data": ["configs/data/synthetic.yaml"]}},
        "detectors": [{"name": "xception", "configs": ["configs/detectors/xception.yaml"]}],
    }
    grid.write_text(yaml.safe_dump(spec))
    child = tmp_path / "child.py"
    child.write_text(CHILD)
    out = tmp_path / "results"
    bench = subprocess.Popen(
        [sys.executable, "-c", BENCH, str(child), str(grid), "--out", str(out), "--no-wandb"],
        cwd=ROOT,
        env=os.environ | {"PYTHONPATH": str(ROOT), "CHILD_ON_SIGTERM": on_sigterm},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    root = out / "tiny" / "demo"
    wait_for(lambda: any(root.glob("cells/*/child.pid")) or bench.poll() is not None)
    assert bench.poll() is None, bench.stdout.read()
    return bench, root


def child_pid(root: Path) -> int:
    (pid_file,) = root.glob("cells/*/child.pid")
    wait_for(lambda: pid_file.read_text().strip() != "")
    return int(pid_file.read_text())


def status(root: Path) -> dict:
    (path,) = root.glob("cells/*/status.json")
    return json.loads(path.read_text())


def forked_main(args: list[str]) -> int:
    """A stand-in for dfbench's main, run in a fork by run_child(fork_main=...)."""
    print("out", " ".join(args), os.environ.get("FORK_TEST"), Path.cwd().name)
    print("err", signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, file=sys.stderr)
    if args[0] == "exit":
        sys.exit(int(args[1]))
    if args[0] == "raise":
        raise RuntimeError("broken cell")
    if args[0] == "sleep":
        grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        print(grandchild.pid, flush=True)
        time.sleep(60)
    return int(args[1])


@pytest.mark.parametrize("forked", [False, True], ids=["program", "fork"])
def test_run_child_stops_the_child_group_on_sigterm(tmp_path: Path, forked: bool) -> None:
    """SIGTERM to this process while a child runs: the child and its own child are stopped."""
    script = (
        "import subprocess, sys, time;"
        "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
        "print(g.pid, flush=True); time.sleep(60)"
    )
    log = tmp_path / "child.log"
    watched = []

    def grandchild() -> int | None:
        words = log.read_text().split()
        return int(words[-1]) if words and words[-1].isdigit() else None

    def watch() -> None:
        watched.append(time.monotonic())
        if grandchild() is not None and len(watched) == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    with handle_stop_signals() as state, pytest.raises(Interrupted) as stopped:
        run_child(
            ["sleep", "0"] if forked else [sys.executable, "-c", script],
            log,
            cwd=tmp_path,
            env=dict(os.environ),
            watch=watch,
            state=state,
            grace_s=10,
            poll_s=0.5,
            fork_main=forked_main if forked else None,
        )
    assert stopped.value.signum == signal.SIGTERM and stopped.value.exit_code == 143
    wait_for(lambda: gone(grandchild()), timeout=5)  # the whole group was stopped
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored


@pytest.mark.parametrize(
    ("args", "code", "expected"),
    [
        (["return", "3"], 3, "out return 3 yes work"),
        (["exit", "4"], 4, "out exit 4 yes work"),
        (["raise", "0"], 1, "RuntimeError: broken cell"),
    ],
)
def test_forked_child_runs_main_with_its_log_folder_and_environment(
    tmp_path: Path, args: list[str], code: int, expected: str
) -> None:
    """A forked cell is what a new program would be: own log, folder, environment, exit code."""
    (tmp_path / "work").mkdir()
    log = tmp_path / "child.log"
    print("bench's own output, printed before the fork")
    with handle_stop_signals() as state:  # the child must not inherit bench's handlers
        result = run_child(
            args,
            log,
            cwd=tmp_path / "work",
            env=dict(os.environ, FORK_TEST="yes"),
            state=state,
            fork_main=forked_main,
        )
    text = log.read_text()
    assert result == code
    assert expected in text
    assert "err True" in text  # SIGTERM is the default action in the child
    assert "bench's own output" not in text
    assert Path.cwd() != tmp_path / "work" and os.environ.get("FORK_TEST") is None


@pytest.mark.slow
def test_sigterm_stops_the_child_and_leaves_the_cell_resumable(tmp_path: Path) -> None:
    bench, root = start_bench(tmp_path)
    pid = child_pid(root)
    bench.send_signal(signal.SIGTERM)
    output, _ = bench.communicate(timeout=60)
    assert bench.returncode == 128 + signal.SIGTERM, output
    assert gone(pid)
    assert status(root)["status"] == "interrupted" and status(root)["signal"] == "SIGTERM"
    assert "interrupted by SIGTERM; a re-run continues this cell" in output
    assert "stopped by SIGTERM; re-run the same command to resume" in output
    BenchLock(root, orphan_wait_s=0).acquire().release()  # released


@pytest.mark.slow
def test_second_sigint_kills_a_child_that_ignores_sigterm(tmp_path: Path) -> None:
    bench, root = start_bench(tmp_path, on_sigterm="ignore")
    pid = child_pid(root)
    bench.send_signal(signal.SIGINT)
    time.sleep(1.0)
    assert not gone(pid) and bench.poll() is None  # within its grace period
    bench.send_signal(signal.SIGINT)  # impatient: no more waiting
    output, _ = bench.communicate(timeout=20)
    assert bench.returncode == 128 + signal.SIGINT, output
    assert gone(pid)
    assert status(root)["status"] == "interrupted" and status(root)["signal"] == "SIGINT"


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_killed_bench_takes_its_child_along_and_the_lock_waits_for_it(tmp_path: Path) -> None:
    bench, root = start_bench(tmp_path, on_sigterm="slow")
    pid = child_pid(root)
    bench.send_signal(signal.SIGKILL)
    bench.communicate(timeout=20)
    assert not gone(pid)  # told to stop (SIGTERM), it takes 2 s and keeps the lock meanwhile
    notes: list[str] = []
    with BenchLock(root, say=notes.append, orphan_wait_s=30):
        assert gone(pid)
    assert notes[0].endswith("waiting for the fit/test process of a stopped run to exit")
    assert notes[1].startswith(f"took over the lock of dfbench bench (pid {bench.pid}, ")
    assert status(root)["status"] == "running"  # a re-run redoes it
