"""A scheduler's stop signals: save what resumes, then exit with :data:`EXIT_RESUMABLE`.

Schedulers stop jobs with SIGTERM (Slurm at the time limit, on ``scancel`` and
on preemption) and warn them ahead with a signal of the job's choice (Slurm's
``--signal=USR1@SECONDS``). For ``dfbench fit | validate | test | predict``
both SIGTERM and SIGUSR1 mean "stop soon, resumably":

* While Lightning runs a loop, SIGTERM takes Lightning's own path: its handler
  notes the signal (and, under DDP, agrees on it with the other processes) and
  the loop stops after the batch in progress, on every process at the same
  batch. SIGUSR1 is routed into that same path (:func:`install` makes
  SIGUSR1 call whatever handles SIGTERM at that moment).
* A fit then saves a mid-epoch ``last.ckpt`` in the run's checkpoint folder
  (:class:`SaveOnStop`): the weights, optimiser and schedule, the
  best-checkpoint record and Lightning's loop progress, so that
  ``dfbench fit --ckpt_path last`` (and the benchmark runner's resume)
  continues in the same epoch after the batches already trained (their
  count; which samples the rest of the epoch draws: docs/cluster.md).
* Outside a loop (reading tables, after the last epoch) the signal stops the
  verb at once; nothing new is saved.

Either way the verb prints one line saying what was saved and exits with
:data:`EXIT_RESUMABLE` (75, ``EX_TEMPFAIL`` of ``sysexits.h``: "try again
later"): a ``fit && test`` chain stops there, and a batch script can tell
"stopped, resumable" from a failure (1, 2) and from a process killed outright
(128 + the signal number). dfbench never requeues a job itself: whether a
stopped task runs again (``scontrol requeue``, how many times) is the job
script's decision, made on this exit status.

Lightning's own Slurm auto-requeue (an ``hpc_ckpt_*.ckpt`` in the run folder
and ``scontrol requeue`` on SIGUSR1) does not run: Lightning installs it only
when nothing else handles SIGUSR1, and dfbench does.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from pytorch_lightning.callbacks import Callback, ModelCheckpoint
from pytorch_lightning.trainer.states import TrainerFn
from pytorch_lightning.utilities.exceptions import SIGTERMException

#: Exit status of a verb stopped by a signal after saving what resumes it.
EXIT_RESUMABLE = 75
#: The signals that stop a verb resumably.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class Stopped(BaseException):  # noqa: N818 (a signal, named like KeyboardInterrupt)
    """A stop signal arrived while no Lightning loop was running."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@dataclass
class StopState:
    """What the handlers saw; filled in as the verb stops."""

    signum: int | None = None
    #: A fit's checkpoint folder, and the options that continue it from its last.ckpt
    #: (None: give that file as --ckpt_path).
    checkpoint_dir: Path | None = None
    resume_args: str | None = None
    saved: Path | None = None
    epoch: int | None = None
    batch: int | None = None
    batches: int | None = None

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum or signal.SIGTERM).name


def _handler(state: StopState):  # noqa: ANN202 (a signal handler)
    def handle(signum: int, frame: FrameType | None) -> None:
        state.signum = state.signum or signum
        current = signal.getsignal(signal.SIGTERM)
        if current is handle:
            raise Stopped(signum)  # no trainer has taken SIGTERM over: stop here
        # A trainer runs: Lightning's SIGTERM handler composes this one after its own,
        # so a SIGTERM needs nothing more; SIGUSR1 joins Lightning's SIGTERM path.
        if signum != signal.SIGTERM and callable(current):
            current(signal.SIGTERM, frame)

    return handle


@contextmanager
def stop_signals() -> Iterator[StopState]:
    """SIGTERM and SIGUSR1 stop the verb resumably while the context is active (main thread)."""
    state = StopState()
    if threading.current_thread() is not threading.main_thread():
        yield state  # Python runs signal handlers in the main thread only
        return
    handle = _handler(state)
    previous = {signum: signal.signal(signum, handle) for signum in STOP_SIGNALS}
    try:
        yield state
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def is_stop(error: BaseException) -> bool:
    """Whether ``error`` is how a stop signal ends a verb (Lightning's or :class:`Stopped`)."""
    return isinstance(error, SIGTERMException | Stopped)


class SaveOnStop(Callback):
    """On a stop signal during a fit, writes ``last.ckpt`` where the next fit resumes from.

    Lightning ends its loops after the batch in progress and calls ``on_exception``
    on every process; ``trainer.save_checkpoint`` then records the fit's state at
    that batch (rank 0 writes). Nothing is written before the first optimiser
    step: there is nothing to resume, and an earlier ``last.ckpt`` stays.

    Args:
        tracker: the best-checkpoint tracker whose folder receives ``last.ckpt``
            (where ``--ckpt_path last`` and the runner look).
        state: filled in with what was saved, for the verb's last line.
    """

    def __init__(self, tracker: ModelCheckpoint, state: StopState) -> None:
        self.tracker = tracker
        self.state = state

    @property
    def path(self) -> Path:
        name = self.tracker.CHECKPOINT_NAME_LAST + self.tracker.FILE_EXTENSION
        return Path(self.tracker.dirpath) / name

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:  # noqa: ANN001
        if not is_stop(exception) or trainer.state.fn != TrainerFn.FITTING:
            return
        if trainer.fast_dev_run or self.tracker.dirpath is None or trainer.global_step == 0:
            return
        progress = trainer.fit_loop.epoch_loop.batch_progress.current
        trainer.save_checkpoint(self.path)
        self.state.saved = self.path
        self.state.epoch = trainer.current_epoch
        self.state.batch = progress.completed
        self.state.batches = trainer.num_training_batches


def stop_message(state: StopState, verb: str) -> str:
    """The one line a verb stopped by a signal prints: what was saved, how to continue."""
    head = f"dfbench {verb}: stopped by {state.signal_name}"
    tail = f"(exit status {EXIT_RESUMABLE})"
    if verb != "fit" or state.checkpoint_dir is None:
        return f"{head}; nothing to save: run it again {tail}"
    last = state.saved or state.checkpoint_dir / "last.ckpt"
    if not last.is_file():
        return f"{head} before its first checkpoint; nothing saved: run it again {tail}"
    resume = f"continue with the same command and {state.resume_args or f'--ckpt_path {last}'}"
    if state.saved is None:
        return f"{head}; nothing trained since {last}: {resume} {tail}"
    position = f"epoch {state.epoch} after {state.batch}"
    if isinstance(state.batches, int):
        position += f" of {state.batches}"
    return f"{head} in {position} batches; saved {last}: {resume} {tail}"
