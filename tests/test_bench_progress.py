"""A grid's progress: the fit's progress file, the time-left estimate, the progress line."""

from __future__ import annotations

import io
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

import src.bench.progress as progress_module
from src.bench.progress import (
    ProgressFile,
    ProgressLine,
    describe,
    duration,
    estimate_left,
    fit_fraction,
    read_progress,
    resumed_fraction,
    seconds_at_epoch,
)


def test_estimate_left() -> None:
    # Two cells took 100 s and 140 s: 120 s each; the running one is 30 s in, 2 more after it.
    assert estimate_left([100.0, 140.0], 3, 30.0, 0.9) == pytest.approx(90.0 + 240.0)
    # A cell that already took longer than the mean: nothing negative.
    assert estimate_left([100.0], 2, 150.0, None) == pytest.approx(0.0 + 100.0)
    # Nothing finished yet: the running fit, 25 % done in 50 s, takes 200 s.
    assert estimate_left([], 4, 50.0, 0.25) == pytest.approx(150.0 + 3 * 200.0)
    assert estimate_left([], 4, 50.0, None) is None
    assert estimate_left([], 4, 50.0, 0.0) is None
    # A fit resumed at half way, now 60 % done 50 s later: 10 % per 50 s, a cell takes 500 s.
    assert estimate_left([], 2, 50.0, 0.6, resumed_at=0.5) == pytest.approx(200.0 + 500.0)
    assert estimate_left([], 2, 50.0, 0.5, resumed_at=0.5) is None
    assert estimate_left([10.0], 0, 0.0, None) == 0.0


def test_fit_fraction_and_words() -> None:
    state = {"stage": "fit", "epoch": 1, "max_epochs": 4, "batch": 30, "batches": 120}
    assert fit_fraction(state) == pytest.approx((1 + 0.25) / 4)
    assert fit_fraction(state | {"max_epochs": None}) is None
    assert fit_fraction(None) is None
    assert resumed_fraction(state) == 0.0 and resumed_fraction(None) == 0.0
    assert resumed_fraction(state | {"first_epoch": 1}) == pytest.approx(0.25)
    assert describe(state) == "fit epoch 2/4 (batch 30/120)"
    assert describe(state | {"batch": 0}) == "fit epoch 2/4"
    assert describe(state | {"max_epochs": None, "batch": 0}) == "fit epoch 2"
    assert describe({"stage": "test", "test": 0, "tests": 8}) == "testing 1/8"
    assert describe(None) == "starting"
    assert [duration(s) for s in (0, 59.4, 75, 3599, 4000)] == [
        "0s",
        "59s",
        "1m15s",
        "59m59s",
        "1h06m",
    ]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fit_state(epoch: int, batch: int = 0) -> dict:
    return {"stage": "fit", "epoch": epoch, "max_epochs": 2, "batch": batch, "batches": 10}


def test_progress_line_in_a_log_file_prints_once_per_epoch() -> None:
    out, clock = io.StringIO(), Clock()
    line = ProgressLine(3, stream=out, redraw=False, clock=clock)
    line.skipped()  # done earlier
    line.start("001-x")
    clock.now += 10
    line.update(fit_state(0, 0))
    clock.now += 10
    line.update(fit_state(0, 5))  # same epoch: no new line
    line.update(None)  # no news: nothing
    clock.now += 20
    line.update(fit_state(1, 0))
    clock.now += 40
    line.update({"stage": "test", "test": 0, "tests": 2})
    line.say("[1] 001-x: done")
    line.finish()
    assert out.getvalue().splitlines() == [
        "[cells 1/3 done | 0s | time left: after the first cell] 001-x: starting",
        "[cells 1/3 done | 10s | time left: after the first cell] 001-x: fit epoch 1/2",
        # 40 s in and half-way: 80 s a cell, 40 s left of this one and 80 s for the next.
        "[cells 1/3 done | 40s | ~2m00s left] 001-x: fit epoch 2/2",
        # Testing after an 80 s fit: the next cell is expected to take 80 s.
        "[cells 1/3 done | 1m20s | ~1m20s left] 001-x: testing 1/2",
        "[1] 001-x: done",
    ]
    assert "\r" not in out.getvalue()
    assert line.done == 2 and line.finished_s == [80.0]


def test_progress_line_on_a_terminal_redraws_one_line() -> None:
    out, clock = io.StringIO(), Clock()
    line = ProgressLine(1, stream=out, redraw=True, clock=clock)
    line.start("000-x")
    line.update(fit_state(0, 5))
    line.say("a message")
    text = out.getvalue()
    assert text.count("\r\x1b[K") == 4  # draw, draw, clear, (message), draw; no newline
    assert "a message\n" in text and text.endswith("000-x: fit epoch 1/2 (batch 5/10)")
    line.finish()
    assert out.getvalue().endswith("\r\x1b[K")


def trainer(epoch: int, rank_zero: bool = True) -> SimpleNamespace:
    return SimpleNamespace(
        is_global_zero=rank_zero, current_epoch=epoch, max_epochs=3, num_training_batches=7
    )


def test_progress_file_callback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "progress.json"
    assert read_progress(path) is None
    callback = ProgressFile(str(path))
    times = iter([0.0, 1.0, 6.0, 6.0, 7.0, 7.0])
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: next(times))
    callback.on_train_start(trainer(1), None)  # a fit resumed after its first epoch
    callback.on_train_epoch_start(trainer(1), None)  # writes at 0 s
    assert json.loads(path.read_text()) == {
        "stage": "fit",
        "epoch": 1,
        "first_epoch": 1,
        "max_epochs": 3,
        "batch": 0,
        "batches": 7,
        "epoch_seconds": {},
    }
    callback.on_train_batch_end(trainer(1), None, None, None, 0)  # 1 s later: not yet
    assert read_progress(path)["batch"] == 0
    callback.on_train_batch_end(trainer(1), None, None, None, 3)  # 6 s: written
    assert read_progress(path)["batch"] == 4
    callback.on_train_epoch_start(trainer(2, rank_zero=False), None)  # other ranks never write
    assert read_progress(path)["epoch"] == 1
    path.write_text("{half")
    assert read_progress(path) is None


def test_progress_file_keeps_training_time_across_a_resume(tmp_path: Path, monkeypatch) -> None:
    """Each epoch's end records the training time; a resumed attempt starts from the earlier's."""
    clock = SimpleNamespace(now=100.0)
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: clock.now)
    path = tmp_path / "progress.json"
    first = ProgressFile(str(path))
    first.on_fit_start(None, None)
    clock.now = 130.0
    first.on_train_epoch_end(trainer(0), None)  # epoch 0 ends 30 s in
    assert seconds_at_epoch(read_progress(path), 0) == 30.0
    assert seconds_at_epoch(read_progress(path), 1) == 0.0  # not reached
    clock.now = 500.0
    resumed = ProgressFile(str(path), before_seconds=seconds_at_epoch(read_progress(path), 0))
    resumed.on_fit_start(None, None)
    clock.now = 520.0
    resumed.on_train_epoch_end(trainer(1), None)  # 30 s before + 20 s now
    assert seconds_at_epoch(read_progress(path), 1) == 50.0
