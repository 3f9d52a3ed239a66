"""A scheduler's SIGTERM / SIGUSR1 stops a verb resumably; srun layouts and hints; launch names.

The signal tests send real signals: to a child ``dfbench fit`` paused in epoch 1
(PausingDetector waits there until Lightning has seen the signal), then resume
it with ``--ckpt_path last`` and check where it continued from the batches each
process trained (a log the detector writes).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from cli_helpers import ROOT, ScriptedDetector, checkpoint_state, run_dfbench, scripted_args
from pytorch_lightning import Callback
from torch import Tensor

from src.bench.checkpoints import ResumePoint, resume_point
from src.cli import EXIT_USAGE, main
from src.cli.launch import launch_name, silence_srun_hint, slurm_layout_error
from src.cli.runs import LAYOUT_ENV
from src.cli.signals import EXIT_RESUMABLE, Stopped, stop_signals

PAUSING = "test_signals.PausingDetector"
#: 16 training faces in batches of 2: 8 batches per epoch.
BATCHES = 8


class PausingDetector(ScriptedDetector):
    """ScriptedDetector that logs every training batch and waits at one for a stop signal.

    Args:
        pause_at: (epoch, batch) where it touches ``<log_file>.paused`` and waits (up to a
            minute) until the trainer has received SIGTERM.
        log_file: JSON lines of (epoch, batch, rank, sample indices), one per trained batch.
    """

    def __init__(self, pause_at: tuple[int, int] = (-1, -1), log_file: str = "", **kwargs: Any):
        super().__init__(**kwargs)
        self.pause_at = list(pause_at)
        self.log_file = log_file

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        loss = super().training_step(batch, batch_idx)
        entry = {
            "epoch": self.current_epoch,
            "batch": batch_idx,
            "rank": self.global_rank,
            "samples": batch["sample_idx"].tolist(),
        }
        with open(self.log_file, "a") as log:
            log.write(json.dumps(entry) + "\n")
        if [self.current_epoch, batch_idx] == self.pause_at:
            Path(f"{self.log_file}.paused").touch()
            deadline = time.monotonic() + 60
            while not self.trainer.received_sigterm and time.monotonic() < deadline:
                time.sleep(0.05)
        return loss


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", WANDB_MODE="offline", NO_ALBUMENTATIONS_UPDATE="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests")])
    env.pop(LAYOUT_ENV, None)
    return {**env, **extra}


def _pausing_args(root: Path, log: Path, *extra: str) -> list[str]:
    """A fit that pauses in epoch 1 at batch 1 (a resumed fit is past it: the same recipe)."""
    return scripted_args(
        root,
        f"--model={PAUSING}",
        f"--model.init_args.log_file={log}",
        "--model.init_args.pause_at=[1,1]",
        "--data.init_args.train_videos=16",
        "--data.init_args.batch_size=2",
        "--run_name=r",
        *extra,
        epochs=3,
    )


def _trained(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def _fit_stopped_by(
    tmp_path: Path, signum: signal.Signals, log: Path, *extra: str
) -> tuple[int, str]:
    """Start a fit, send ``signum`` once it waits in epoch 1 at batch 1; its status and output."""
    args = _pausing_args(Path("runs"), log, *extra)
    child = subprocess.Popen(
        [sys.executable, "-m", "src.cli", "fit", *args],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        paused = Path(f"{log}.paused")
        deadline = time.monotonic() + 300
        while not paused.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert paused.exists(), child.communicate()[0][-3000:]
        child.send_signal(signum)
        out, _ = child.communicate(timeout=300)
    finally:
        if child.poll() is None:
            child.kill()
    return child.returncode, out


@pytest.mark.parametrize(
    "signum",
    [
        pytest.param(signal.SIGUSR1, id="SIGUSR1"),
        pytest.param(signal.SIGTERM, id="SIGTERM", marks=pytest.mark.slow),
    ],
)
def test_a_stop_signal_saves_mid_epoch_and_the_fit_resumes_there(
    tmp_path: Path, signum: signal.Signals
) -> None:
    log = tmp_path / "trained.jsonl"
    status, out = _fit_stopped_by(tmp_path, signum, log)
    (run,) = tmp_path.glob("runs/*/synthetic_face/r")
    last = run / "checkpoints" / "last.ckpt"
    assert status == EXIT_RESUMABLE, out[-3000:]
    line = (
        f"dfbench fit: stopped by {signum.name} in epoch 1 after 2 of {BATCHES} batches; "
        f"saved {last.resolve()}: continue with the same command and --ckpt_path last "
        f"--run_name r (exit status {EXIT_RESUMABLE})"
    )
    assert line in out.splitlines(), out[-3000:]
    assert "Traceback" not in out
    first = _trained(log)
    # Epoch 0 whole, then batches 0 and 1 of epoch 1; the signal came during batch 1.
    assert [(e["epoch"], e["batch"]) for e in first] == [(0, b) for b in range(BATCHES)] + [
        (1, 0),
        (1, 1),
    ]
    saved = torch.load(last, map_location="cpu", weights_only=True)
    assert (saved["epoch"], saved["global_step"]) == (1, BATCHES + 2)
    # The runner's resume point: epoch 0 finished, 2 batches of the next one trained.
    assert resume_point(last.parent) == ResumePoint(last, 0, 2)

    log.unlink()
    run_dfbench(tmp_path, "fit", *_pausing_args(Path("runs"), log), "--ckpt_path=last")
    second = _trained(log)
    # It continues at batch 2 of epoch 1: no batch index of epoch 1 is trained twice.
    assert [(e["epoch"], e["batch"]) for e in second] == [(1, b) for b in range(2, BATCHES)] + [
        (2, b) for b in range(BATCHES)
    ]
    final = torch.load(last, map_location="cpu", weights_only=True)
    assert final["global_step"] == 3 * BATCHES
    # ScriptedDetector validates perfectly in epoch 0 only: the record survived the stop.
    state = checkpoint_state(last)
    assert Path(state["best_model_path"]).name == "best-epoch000.ckpt"
    assert float(state["best_model_score"]) == 1.0
    assert (run / "checkpoints" / "best-epoch000.ckpt").is_file()


# ------------------------------------------------------- handlers, in this process
def test_a_stop_signal_outside_a_trainer_stops_at_once() -> None:
    for signum in (signal.SIGUSR1, signal.SIGTERM):
        with pytest.raises(Stopped) as stopped, stop_signals() as state:
            os.kill(os.getpid(), signum)
            time.sleep(1)  # the handler runs before this returns
        assert stopped.value.signum == state.signum == signum
    # The handlers are restored afterwards.
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


def test_sigusr1_takes_the_path_of_whatever_handles_sigterm() -> None:
    """As Lightning does while it runs: its SIGTERM handler calls the one it found first."""
    calls = []
    with stop_signals() as state:
        found = signal.getsignal(signal.SIGTERM)

        def trainer_handler(signum: int, frame: Any) -> None:
            calls.append(signum)
            found(signum, frame)

        signal.signal(signal.SIGTERM, trainer_handler)
        os.kill(os.getpid(), signal.SIGUSR1)
        time.sleep(0.2)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.2)
    assert calls == [signal.SIGTERM, signal.SIGTERM]
    assert state.signum == signal.SIGUSR1  # the first signal names the stop


# --------------------------------------------------------------------- srun layout
SRUN_TWO_TASKS = {
    "SLURM_JOB_ID": "4242",
    "SLURM_STEP_ID": "0",
    "SLURM_NTASKS": "2",
    "SLURM_NNODES": "1",
    "SLURM_JOB_NAME": "fit",
}


@pytest.fixture
def no_launcher(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith(("SLURM_", "TORCHELASTIC_")) or name in {"WORLD_SIZE", LAYOUT_ENV}:
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.mark.parametrize("rank", ["0", "1"])
def test_srun_ntasks_without_ntasks_per_node_gives_one_line(
    tmp_path: Path, no_launcher: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, rank: str
) -> None:
    for name, value in {**SRUN_TWO_TASKS, "SLURM_PROCID": rank}.items():
        no_launcher.setenv(name, value)
    args = scripted_args(tmp_path, "--trainer.devices=2", "--trainer.strategy=ddp")
    assert main(["fit", *args]) == EXIT_USAGE
    err = capsys.readouterr().err
    if rank == "0":
        assert err.strip() == (
            "dfbench fit: srun started 2 tasks with --ntasks (-n) but no --ntasks-per-node, "
            "which Lightning needs: start one task per device with srun -N 1 "
            "--ntasks-per-node=2 (and --trainer.devices 2)"
        )
    else:
        assert err == ""  # the first task speaks for all
    assert not list(tmp_path.rglob("fit-*"))


def test_srun_layout_checks(no_launcher: pytest.MonkeyPatch) -> None:
    assert slurm_layout_error(2, 1) is None  # not under Slurm
    for name, value in {**SRUN_TWO_TASKS, "SLURM_NTASKS_PER_NODE": "2"}.items():
        no_launcher.setenv(name, value)
    assert slurm_layout_error(2, 1) is None
    assert slurm_layout_error("2", None) is None
    assert slurm_layout_error("auto", 1) is None  # Lightning decides, and checks
    assert slurm_layout_error(1, 1) == (
        "--trainer.devices 1, but srun started 2 task(s) per node: give --trainer.devices 2, "
        "or start srun with --ntasks-per-node=1 (one task per device)"
    )
    assert "--trainer.num_nodes 2, but the Slurm job has 1 node(s)" in slurm_layout_error(2, 2)
    # An interactive allocation is not a launch (Lightning's own rule).
    no_launcher.setenv("SLURM_JOB_NAME", "interactive")
    assert slurm_layout_error(1, 1) is None


def test_launch_names(no_launcher: pytest.MonkeyPatch) -> None:
    assert launch_name() is None
    for name, value in SRUN_TWO_TASKS.items():
        no_launcher.setenv(name, value)
    assert launch_name() == "slurm4242.0"
    no_launcher.setenv("SLURM_ARRAY_JOB_ID", "4240")
    no_launcher.setenv("SLURM_ARRAY_TASK_ID", "2")
    no_launcher.setenv("SLURM_RESTART_COUNT", "1")
    assert launch_name() == "slurm4240_2.0-restart1"
    no_launcher.setenv("SLURM_NTASKS", "1")  # one task: a time-stamped run, as without Slurm
    assert launch_name() is None

    no_launcher.setenv("TORCHELASTIC_RUN_ID", "3f2a9c1b-77d0-4e44-9d7e-0c6a2b1f9e10")
    no_launcher.setenv("WORLD_SIZE", "2")
    assert launch_name() == "torchrun-3f2a9c1b-77d0"
    no_launcher.setenv("TORCHELASTIC_RUN_ID", "none")
    assert launch_name().startswith("torchrun-")
    assert launch_name() == launch_name()  # the same in every worker of the agent


def _srun_hints(devices: int) -> list[str]:
    from pytorch_lightning import Trainer

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        silence_srun_hint(devices, 1)
        Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False)
    return [str(w.message) for w in caught if "srun" in str(w.message)]


def test_the_srun_hint_is_silenced_unless_it_may_be_the_fix(
    tmp_path: Path, no_launcher: pytest.MonkeyPatch
) -> None:
    fake_srun = tmp_path / "srun"
    fake_srun.write_text("#!/bin/sh\n")
    fake_srun.chmod(0o755)
    no_launcher.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    # Upstream still gives the hint (if this fails, its wording changed: update launch.py).
    no_launcher.setenv("SLURM_JOB_ID", "4242")
    assert len(_srun_hints(2)) == 1
    assert _srun_hints(1) == []  # one device in an allocation: nothing to launch
    no_launcher.delenv("SLURM_JOB_ID")
    assert _srun_hints(2) == []  # outside any allocation (a login node, a workstation)


def test_bench_takes_sigusr1_for_a_stop() -> None:
    """bench then stops its running cell with SIGTERM; the cell's fit saves mid-epoch."""
    from src.bench.process import Interrupted, handle_stop_signals

    with pytest.raises(Interrupted) as stopped, handle_stop_signals():
        os.kill(os.getpid(), signal.SIGUSR1)
        time.sleep(1)
    assert stopped.value.exit_code == 128 + signal.SIGUSR1


class SignalOnFirstBatch(Callback):
    """Sends this process SIGUSR1 as the first training or test batch starts."""

    sent = False

    def _send(self, *_: Any) -> None:
        if not self.sent:
            self.sent = True
            os.kill(os.getpid(), signal.SIGUSR1)

    on_train_batch_start = on_test_batch_start = _send


def test_a_stopped_test_saves_nothing_and_a_stopped_fit_saves_its_first_step(
    tmp_path: Path, no_launcher: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    signaller = "--trainer.callbacks+=test_signals.SignalOnFirstBatch"
    small = ["--data.init_args.eval_batch_size=1", "--run_name=r", signaller]
    test = ["test", *scripted_args(tmp_path, *small, "--allow_untrained=true")]
    assert main(test) == EXIT_RESUMABLE
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == (
        f"dfbench test: stopped by SIGUSR1; nothing to save: run it again "
        f"(exit status {EXIT_RESUMABLE})"
    )
    assert not list(tmp_path.rglob("test_metrics.json"))

    assert main(["fit", *scripted_args(tmp_path, *small)]) == EXIT_RESUMABLE
    (last,) = tmp_path.glob("scripted_detector-*/synthetic_face/r/checkpoints/last.ckpt")
    assert f"stopped by SIGUSR1 in epoch 0 after 1 of 1 batches; saved {last}" in (
        capsys.readouterr().err
    )
    assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] == 1
    assert not list(last.parent.glob("best*.ckpt"))  # no validation ran: nothing chosen


@pytest.mark.ddp
def test_a_ddp_fit_stopped_by_sigusr1_saves_once_and_resumes_on_every_rank(tmp_path: Path) -> None:
    """SIGUSR1 to the first process only: Lightning passes the stop on to the other rank."""
    ddp = ("--trainer.devices=2", "--trainer.strategy=ddp")
    log = tmp_path / "trained.jsonl"
    status, out = _fit_stopped_by(tmp_path, signal.SIGUSR1, log, *ddp)
    assert status == EXIT_RESUMABLE, out[-3000:]
    per_rank = BATCHES // 2
    lines = [line for line in out.splitlines() if "stopped by SIGUSR1" in line]
    assert len(lines) == 1 and f"in epoch 1 after 2 of {per_rank} batches; saved" in lines[0]
    for rank in (0, 1):
        trained = [(e["epoch"], e["batch"]) for e in _trained(log) if e["rank"] == rank]
        assert trained == [(0, b) for b in range(per_rank)] + [(1, 0), (1, 1)], rank

    log.unlink()
    run_dfbench(tmp_path, "fit", *_pausing_args(Path("runs"), log, *ddp), "--ckpt_path=last")
    for rank in (0, 1):
        trained = [(e["epoch"], e["batch"]) for e in _trained(log) if e["rank"] == rank]
        assert trained == [(1, b) for b in range(2, per_rank)] + [(2, b) for b in range(per_rank)]
    (last,) = tmp_path.glob("runs/*/synthetic_face/r/checkpoints/last.ckpt")
    assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] == 3 * per_rank
    assert Path(checkpoint_state(last)["best_model_path"]).name == "best-epoch000.ckpt"
