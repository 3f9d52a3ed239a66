"""Stopping ``dfbench bench`` stops its fit/test subprocess, and the cell stays resumable.

The subprocess is a stand-in that records its pid and sleeps, run as a new
program or as a worker (:class:`src.bench.process.Workers`). The fast tests drive
:func:`run_child` in this process or in a small stand-in ``bench``; the slow ones
run ``bench`` itself (lock, preflight, runner), which takes a while to import.
"""

from __future__ import annotations

import atexit
import fcntl
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
from src.bench.process import Interrupted, Workers, handle_stop_signals, run_child

ROOT = Path(__file__).resolve().parents[1]
#: A new program learns of bench's death through PR_SET_PDEATHSIG, which only Linux has.
LINUX_ONLY = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only"
)
#: `dfbench bench ARGS` whose cells run stand_in_fit instead of `dfbench fit/test`: as a new
#: program (argv[1] == "program") or in the workers bench starts (argv[1] == "worker").
BENCH = """
import sys
import src.bench.runner as runner
import src.cli.bench as bench
from test_bench_process import stand_in_fit
if sys.argv[1] == "program":
    program = "import sys; from test_bench_process import stand_in_fit; stand_in_fit(sys.argv)"
    runner.DFBENCH = [sys.executable, "-c", program]
else:
    bench.main = stand_in_fit
sys.exit(bench.run(sys.argv[2:]))
"""


def stand_in_fit(args: list[str]) -> int:
    """A fit that never ends. CHILD_ON_SIGTERM: exit (default), ignore, or slow (2 s to exit)."""
    mode = os.environ.get("CHILD_ON_SIGTERM", "exit")
    if mode == "ignore":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    elif mode == "slow":
        signal.signal(signal.SIGTERM, lambda *_: (time.sleep(2), sys.exit(143)))
    (checkpoints,) = [a.split("=", 1)[1] for a in args if a.startswith("--checkpoint.dirpath=")]
    Path(checkpoints).parent.joinpath("child.pid").write_text(str(os.getpid()))
    time.sleep(120)
    return 0


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


def start_bench(
    tmp_path: Path, child: str, on_sigterm: str = "exit"
) -> tuple[subprocess.Popen, Path]:
    grid = tmp_path / "grid.yaml"
    spec = {
        "name": "tiny",
        "profiles": {"demo": {"data": ["configs/data/synthetic.yaml"]}},
        "detectors": [{"name": "xception", "configs": ["configs/detectors/xception.yaml"]}],
    }
    grid.write_text(yaml.safe_dump(spec))
    out = tmp_path / "results"
    bench = subprocess.Popen(
        [sys.executable, "-c", BENCH, child, str(grid), "--out", str(out), "--no-wandb"],
        cwd=ROOT,
        env=os.environ | {"PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}", "CHILD_ON_SIGTERM": on_sigterm},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    root = out / "tiny" / "demo"
    wait_for(lambda: any(root.glob("cells/*/child.pid")) or bench.poll() is not None, timeout=180)
    assert bench.poll() is None, bench.stdout.read()
    return bench, root


def child_pid(root: Path) -> int:
    (pid_file,) = root.glob("cells/*/child.pid")
    wait_for(lambda: pid_file.read_text().strip() != "")
    return int(pid_file.read_text())


def ended(bench: subprocess.Popen, timeout: float) -> tuple[int, str]:
    """bench's exit status once it has exited, and its whole output (the workers' server,
    which bench starts, may hold the pipe open a little longer)."""
    code = bench.wait(timeout=timeout)
    return code, bench.stdout.read()


def status(root: Path) -> dict:
    (path,) = root.glob("cells/*/status.json")
    return json.loads(path.read_text())


def worker_main(args: list[str]) -> int:
    """A stand-in for dfbench's main, run in a worker by run_child(workers=...)."""
    print("out", " ".join(args), os.environ.get("WORKER_TEST"), Path.cwd().name)
    print("err", signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, file=sys.stderr)
    if args[0] == "exit":
        sys.exit(int(args[1]))
    if args[0] == "raise":
        raise RuntimeError("broken cell")
    if args[0] == "sleep":
        grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        print(grandchild.pid, flush=True)
        time.sleep(60)
    if args[0] == "atexit":
        atexit.register(print, "an exit handler ran")
    if args[0] == "wandb":
        import wandb

        run = wandb.init(mode="offline", dir=args[1], project="dfbench-test")
        run.log({"guard_metric_written_at_exit": 0.25})  # no finish(): left to the exit
        return 0
    if args[0] == "locked":  # holds the inherited lock; stops slowly on SIGTERM, as a fit would
        if args[1] == "ignore":
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        else:
            signal.signal(
                signal.SIGTERM,
                lambda *_: (print("SIGTERM", flush=True), time.sleep(1), sys.exit(143)),
            )
        print(f"pid={os.getpid()}", flush=True)
        time.sleep(60)
    return int(args[1])


#: A `bench` that runs one worker (WORKER_ARGS) holding a lock on LOCK_PATH, and prints its pid.
BENCH_OF_ONE_WORKER = """
import fcntl, os, sys
from pathlib import Path
from src.bench.process import Workers, run_child
from test_bench_process import worker_main
lock = os.open(os.environ["LOCK_PATH"], os.O_RDWR | os.O_CREAT)
fcntl.flock(lock, fcntl.LOCK_EX)
log = Path(os.environ["LOG_PATH"])
run_child(sys.argv[1:], log, cwd=log.parent, env=dict(os.environ), pass_fds=[lock],
          workers=Workers(worker_main, preload=[]), grace_s=float(os.environ["GRACE_S"]))
"""


def locked(path: Path) -> bool:
    """Someone holds an exclusive flock on ``path``."""
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


@pytest.mark.parametrize("worker", [False, True], ids=["program", "worker"])
def test_run_child_stops_the_child_group_on_sigterm(tmp_path: Path, worker: bool) -> None:
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
            ["sleep", "0"] if worker else [sys.executable, "-c", script],
            log,
            cwd=tmp_path,
            env=dict(os.environ),
            watch=watch,
            state=state,
            grace_s=10,
            poll_s=0.5,
            workers=Workers(worker_main, preload=[]) if worker else None,
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
def test_worker_runs_main_with_its_log_folder_and_environment(
    tmp_path: Path, args: list[str], code: int, expected: str
) -> None:
    """A worker is what a new program would be: own log, folder, environment, exit code."""
    (tmp_path / "work").mkdir()
    log = tmp_path / "child.log"
    print("bench's own output, printed before the worker starts")
    with handle_stop_signals() as state:  # the worker must not inherit bench's handlers
        result = run_child(
            args,
            log,
            cwd=tmp_path / "work",
            env=dict(os.environ, WORKER_TEST="yes"),
            state=state,
            workers=Workers(worker_main, preload=[]),
        )
    text = log.read_text()
    assert result == code
    assert expected in text
    assert "err True" in text  # SIGTERM is the default action in the worker
    assert "bench's own output" not in text
    assert Path.cwd() != tmp_path / "work" and os.environ.get("WORKER_TEST") is None


def test_exit_handlers_do_not_run_in_a_worker_but_wandb_is_written_out(tmp_path: Path) -> None:
    """Upstream behaviour the worker relies on: a multiprocessing child ends without running
    exit handlers, so W&B's is done explicitly; an unfinished offline run is complete on disk."""
    workers = Workers(worker_main, preload=[])
    log = tmp_path / "atexit.log"
    assert run_child(["atexit", "0"], log, cwd=tmp_path, env=dict(os.environ), workers=workers) == 0
    assert "an exit handler ran" not in log.read_text()

    log = tmp_path / "wandb.log"
    env = dict(os.environ, WANDB_SILENT="true")
    assert (
        run_child(["wandb", str(tmp_path), "0"], log, cwd=tmp_path, env=env, workers=workers) == 0
    )
    (run_file,) = tmp_path.glob("wandb/offline-run-*/run-*.wandb")
    assert b"guard_metric_written_at_exit" in run_file.read_bytes(), log.read_text()


def start_bench_of_one_worker(tmp_path: Path, mode: str, grace_s: float) -> tuple[int, Path, Path]:
    """Start BENCH_OF_ONE_WORKER, wait for its worker, SIGKILL it; the worker's pid, lock, log."""
    lock, log = tmp_path / "bench.lock", tmp_path / "worker.log"
    bench = subprocess.Popen(
        [sys.executable, "-c", BENCH_OF_ONE_WORKER, "locked", mode],
        cwd=ROOT,
        env=os.environ
        | {"PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}", "LOCK_PATH": str(lock), "LOG_PATH": str(log)}
        | {"GRACE_S": str(grace_s)},
    )

    def worker_pid() -> int | None:
        words = log.read_text().split() if log.is_file() else []
        return next((int(w[4:]) for w in words if w.startswith("pid=")), None)

    wait_for(lambda: worker_pid() is not None or bench.poll() is not None)
    assert bench.poll() is None
    bench.kill()
    bench.wait()
    return worker_pid(), lock, log


def test_killed_bench_stops_its_worker_which_holds_the_lock_until_it_exits(
    tmp_path: Path,
) -> None:
    """bench SIGKILLed: its worker gets SIGTERM through the parent sentinel and keeps the
    results folder's lock (passed to it) until it has exited."""
    worker, lock, log = start_bench_of_one_worker(tmp_path, "slow", grace_s=30)
    assert locked(lock)  # bench is gone; the worker, told to stop, takes 1 s and keeps the lock
    wait_for(lambda: gone(worker), timeout=20)
    assert "SIGTERM" in log.read_text().split()
    assert not locked(lock)


def test_killed_bench_worker_that_ignores_sigterm_is_killed_after_the_grace_period(
    tmp_path: Path,
) -> None:
    worker, lock, _ = start_bench_of_one_worker(tmp_path, "ignore", grace_s=1)
    assert not gone(worker)
    wait_for(lambda: gone(worker), timeout=20)
    assert not locked(lock)


@LINUX_ONLY
def test_a_program_started_with_the_death_signal_gets_sigterm_when_its_parent_dies(
    tmp_path: Path,
) -> None:
    """Guard for the one ctypes call (prctl): a program bench starts hears of bench's SIGKILL."""
    marker = tmp_path / "got_sigterm"
    program = (
        "import signal, sys, time; from pathlib import Path;"
        f"signal.signal(signal.SIGTERM, lambda *_: (Path({str(marker)!r}).touch(), sys.exit(0)));"
        "print('ready', flush=True); time.sleep(60)"
    )
    parent = (
        "import subprocess, sys, time; from src.bench.parent_death import sigterm_on_parent_death;"
        f"subprocess.Popen([sys.executable, '-c', {program!r}], preexec_fn=sigterm_on_parent_death());"
        "time.sleep(60)"
    )
    bench = subprocess.Popen(
        [sys.executable, "-c", parent],
        cwd=ROOT,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert bench.stdout.readline().strip() == "ready"
    bench.kill()
    bench.wait()
    wait_for(marker.exists, timeout=10)


@pytest.mark.slow
@pytest.mark.parametrize("child", ["program", "worker"])
def test_sigterm_stops_the_child_and_leaves_the_cell_resumable(tmp_path: Path, child: str) -> None:
    bench, root = start_bench(tmp_path, child)
    pid = child_pid(root)
    bench.send_signal(signal.SIGTERM)
    code, output = ended(bench, timeout=60)
    assert code == 128 + signal.SIGTERM, output
    assert gone(pid)
    assert status(root)["status"] == "interrupted" and status(root)["signal"] == "SIGTERM"
    assert "interrupted by SIGTERM; a re-run continues this cell" in output
    assert "stopped by SIGTERM; re-run the same command to resume" in output
    BenchLock(root, orphan_wait_s=0).acquire().release()  # released


@pytest.mark.slow
@pytest.mark.parametrize("child", ["program", "worker"])
def test_second_sigint_kills_a_child_that_ignores_sigterm(tmp_path: Path, child: str) -> None:
    bench, root = start_bench(tmp_path, child, on_sigterm="ignore")
    pid = child_pid(root)
    bench.send_signal(signal.SIGINT)
    time.sleep(1.0)
    assert not gone(pid) and bench.poll() is None  # within its grace period
    bench.send_signal(signal.SIGINT)  # impatient: no more waiting
    code, output = ended(bench, timeout=20)
    assert code == 128 + signal.SIGINT, output
    assert gone(pid)
    assert status(root)["status"] == "interrupted" and status(root)["signal"] == "SIGINT"


@pytest.mark.slow
@pytest.mark.parametrize("child", [pytest.param("program", marks=LINUX_ONLY), "worker"])
def test_killed_bench_takes_its_child_along_and_the_lock_waits_for_it(
    tmp_path: Path, child: str
) -> None:
    bench, root = start_bench(tmp_path, child, on_sigterm="slow")
    pid = child_pid(root)
    bench.send_signal(signal.SIGKILL)
    bench.wait(timeout=20)
    assert not gone(pid)  # told to stop (SIGTERM), it takes 2 s and keeps the lock meanwhile
    notes: list[str] = []
    with BenchLock(root, say=notes.append, orphan_wait_s=30):
        assert gone(pid)
    assert notes[0].endswith("waiting for the fit/test process of a stopped run to exit")
    assert notes[1].startswith(f"took over the lock of dfbench bench (pid {bench.pid}, ")
    assert status(root)["status"] == "running"  # a re-run redoes it
