"""How far a grid has come: cells done, time spent and left, the running cell's epoch.

The fit subprocess reports its epoch through :class:`ProgressFile`, a
Lightning callback the runner adds to every fit (``--trainer.callbacks+=``):
it rewrites a small JSON file (``<cell>/progress.json``) at each epoch start
and at most every few seconds within one. Reading that file is more reliable
than parsing the fit's log, which holds no per-epoch line once the progress
bar is off (as it is in every cell, so that logs stay readable). It also
records the training time at the end of every epoch (``epoch_seconds``), so
that a fit resumed from the checkpoint of epoch E reports the time of all its
attempts: the runner reads the time at E from the interrupted attempt's file
and hands it to the new attempt (``before_seconds``).

:class:`ProgressLine` shows it in ``bench``'s output. On a terminal it is one
line redrawn in place; when the output goes to a file (a cluster job's log)
it prints a line only when the epoch or the cell changes, so the log is not
flooded.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from pytorch_lightning import Callback, LightningModule, Trainer

from src.files import atomic_write

#: Seconds between two progress-file updates within an epoch.
WRITE_EVERY_S = 5.0


class ProgressFile(Callback):
    """Writes the fit's position (epoch, batch) and training time to a JSON file; rank 0 only.

    Args:
        path: the file to rewrite.
        before_seconds: training time of the earlier attempts this fit resumes
            (up to the epoch of its checkpoint).
    """

    def __init__(self, path: str, before_seconds: float = 0.0) -> None:
        self.path = Path(path)
        self._written = 0.0
        self._started: float | None = None
        self._first_epoch = 0  # where this attempt started: not 0 when resumed
        self._before = float(before_seconds)
        self._epoch_seconds: dict[str, float] = {}

    def fit_seconds(self) -> float:
        """Training time so far: earlier attempts' (to the resumed checkpoint) and this one's."""
        running = time.monotonic() - self._started if self._started is not None else 0.0
        return self._before + running

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._started = time.monotonic()

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._first_epoch = trainer.current_epoch  # after a resume's restore

    def _write(self, trainer: Trainer, batch: int) -> None:
        if not trainer.is_global_zero:
            return
        max_epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else None
        batches = trainer.num_training_batches
        state = {
            "stage": "fit",
            "epoch": trainer.current_epoch,
            "first_epoch": self._first_epoch,
            "max_epochs": max_epochs,
            "batch": batch,
            "batches": batches if isinstance(batches, int) else None,
            "epoch_seconds": self._epoch_seconds,
        }
        text = json.dumps(state).encode()
        atomic_write(self.path, lambda handle: handle.write(text), durable=False)
        self._written = time.monotonic()

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._write(trainer, 0)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # After the epoch's validation: when its last.ckpt is written (LastCheckpoint).
        self._epoch_seconds[str(trainer.current_epoch)] = self.fit_seconds()
        self._write(trainer, trainer.num_training_batches or 0)

    def on_train_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if time.monotonic() - self._written >= WRITE_EVERY_S:
            self._write(trainer, batch_idx + 1)


def seconds_at_epoch(progress: dict[str, Any] | None, epoch: int) -> float:
    """Training time up to the end of ``epoch`` in a progress file's record (0 if not there)."""
    seconds = (progress or {}).get("epoch_seconds") or {}
    return float(seconds.get(str(epoch), 0.0))


def read_progress(path: Path) -> dict[str, Any] | None:
    """The fit's last reported position, None before the first epoch (or when unreadable)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def fit_fraction(progress: dict[str, Any] | None) -> float | None:
    """The share of the fit done, from its epoch and batch; None when unknown."""
    if not progress or not progress.get("max_epochs"):
        return None
    within = progress["batch"] / progress["batches"] if progress.get("batches") else 0.0
    return min((progress["epoch"] + within) / progress["max_epochs"], 1.0)


def resumed_fraction(progress: dict[str, Any] | None) -> float:
    """The share of the fit an earlier attempt had done when this one resumed it (0 if none)."""
    if not progress or not progress.get("max_epochs"):
        return 0.0
    return progress.get("first_epoch", 0) / progress["max_epochs"]


def estimate_left(
    finished_s: list[float],
    remaining: int,
    current_s: float,
    current_fraction: float | None,
    resumed_at: float = 0.0,
) -> float | None:
    """Seconds left for ``remaining`` cells (the running one included).

    A cell is expected to take as long as the mean of those finished in this
    run; before any has finished, the running cell's fit extrapolated from
    the share it has done in ``current_s`` (from ``resumed_at`` to
    ``current_fraction``). None when neither is known yet.
    """
    if remaining <= 0:
        return 0.0
    if finished_s:
        per_cell = sum(finished_s) / len(finished_s)
        return max(per_cell - current_s, 0.0) + per_cell * (remaining - 1)
    if current_fraction is None or current_fraction <= resumed_at:
        return None
    per_cell = current_s / (current_fraction - resumed_at)
    return per_cell * (1 - current_fraction) + per_cell * (remaining - 1)


def duration(seconds: float) -> str:
    """``75`` -> ``"1m15s"``, ``4000`` -> ``"1h06m"``."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def describe(progress: dict[str, Any] | None) -> str:
    """What the running cell is doing, e.g. ``fit epoch 3/20 (batch 40/120)``."""
    if not progress:
        return "starting"
    if progress.get("stage") == "test":
        return f"testing {progress['test'] + 1}/{progress['tests']}"
    epochs = f"/{progress['max_epochs']}" if progress.get("max_epochs") else ""
    text = f"fit epoch {progress['epoch'] + 1}{epochs}"
    if progress.get("batches") and progress.get("batch"):
        text += f" (batch {progress['batch']}/{progress['batches']})"
    return text


class ProgressLine:
    """The grid's progress in ``bench``'s output (see the module docstring).

    Args:
        total: cells this run is responsible for (done earlier ones included).
        stream: where to write (stdout).
        redraw: redraw one line in place; default: when ``stream`` is a terminal.
        clock: seconds, monotonic (a test passes its own).
    """

    def __init__(
        self,
        total: int,
        stream: TextIO | None = None,
        redraw: bool | None = None,
        clock: Any = time.monotonic,
    ) -> None:
        self.stream = stream or sys.stdout
        self.redraw = self.stream.isatty() if redraw is None else redraw
        self.clock = clock
        self.total = total
        self.done = 0
        self.started = clock()
        self.finished_s: list[float] = []
        self.cell: str | None = None
        self.cell_started = self.started
        self.state: dict[str, Any] | None = None
        self._last_printed: str | None = None
        self._drawn = False

    def say(self, message: str) -> None:
        """Print a line of its own (the redrawn line is cleared first, then redrawn)."""
        self._clear()
        print(message, file=self.stream, flush=True)
        if self.cell is not None and self.redraw:
            self._draw()

    def skipped(self) -> None:
        self.done += 1

    def start(self, cell: str) -> None:
        self.cell, self.cell_started, self.state = cell, self.clock(), None
        self.update(None)

    def finish(self) -> None:
        """The running cell ended (done or failed)."""
        self.finished_s.append(self.clock() - self.cell_started)
        self.done += 1
        self._clear()
        self.cell = None

    def update(self, state: dict[str, Any] | None) -> None:
        """A new position of the running cell (from its progress file, or a test's number)."""
        self.state = state or self.state
        if self.redraw:
            self._draw()
        else:
            doing = describe(self.state).split(" (batch")[0]  # one line per epoch, not per batch
            if doing != self._last_printed:
                self._last_printed = doing
                print(self.line(), file=self.stream, flush=True)

    def line(self) -> str:
        now = self.clock()
        current_s = now - self.cell_started if self.cell else 0.0
        stage = (self.state or {}).get("stage")
        # Once testing, the fit is done: its time stands for the cell's (tests are short).
        fraction = 1.0 if stage == "test" else fit_fraction(self.state)
        left = estimate_left(
            self.finished_s,
            self.total - self.done,
            current_s,
            fraction,
            resumed_fraction(self.state),
        )
        eta = f"~{duration(left)} left" if left is not None else "time left: after the first cell"
        head = f"[cells {self.done}/{self.total} done | {duration(now - self.started)} | {eta}]"
        return f"{head} {self.cell}: {describe(self.state)}" if self.cell else head

    def _draw(self) -> None:
        self.stream.write("\r\x1b[K" + self.line())
        self.stream.flush()
        self._drawn = True

    def _clear(self) -> None:
        if self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._drawn = False
