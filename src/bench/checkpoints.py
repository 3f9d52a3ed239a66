"""Keep one small checkpoint per finished benchmark cell.

A Lightning checkpoint of a fit holds, besides the weights, the optimiser
state (Adam keeps two tensors per weight, so the file is about three times
the weights), the learning-rate schedulers, the loops' progress and the
callbacks' state (which also records absolute paths). A finished cell never
resumes training: testing and ``Detector.load_from_checkpoint`` need only the
weights and the hyper-parameters that rebuild the network. Once a cell's
tests pass, the runner keeps the selected (best-on-validation) checkpoint
reduced to those, and deletes the others (``last.ckpt`` ...).

An unfinished fit (killed, stopped, or failed) resumes from the ``last.ckpt``
it left (:func:`resume_point`): the last epoch it completed, with its
optimiser, schedule and best-checkpoint record; or, when a stop signal
ended it (src/cli/signals.py), the batch it had reached in the epoch after.

Every checkpoint is read with ``weights_only=True``
(:func:`src.checkpoint_files.load_checkpoint`): a file in a cell's folder
that holds more than tensors and plain values (not one ``dfbench fit``
wrote) is refused before anything in it runs. The runner has no option to
trust one: a ``last.ckpt`` of that kind is not resumed (the fit starts
afresh), and a selected checkpoint of that kind fails the cell.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from src.checkpoint_files import UntrustedCheckpointError, load_checkpoint
from src.errors import DFBenchError
from src.files import atomic_write

#: What a weights-only checkpoint keeps. The Lightning version lets Lightning
#: migrate an old file; epoch and step say when the weights were selected.
WEIGHTS_ONLY_KEYS = (
    "state_dict",
    "hyper_parameters",
    "hparams_name",
    "datamodule_hyper_parameters",
    "datamodule_hparams_name",
    "pytorch-lightning_version",
    "epoch",
    "global_step",
)


#: Why a checkpoint the runner refuses cannot be loaded anyway.
RUNNER_TRUST_HINT = "the runner reads only checkpoints as dfbench fit writes them"


def read_lightning_checkpoint(path: str | Path, *, mmap: bool = False) -> dict[str, Any]:
    """A Lightning checkpoint of a cell's fit, read with ``weights_only=True``.

    Raises:
        UntrustedCheckpointError: the file holds more than tensors and plain values.
        CheckpointFileError: it is missing or not a torch file.
        ValueError: it is not a Lightning checkpoint (no ``state_dict``).
    """
    path = Path(path)
    try:
        checkpoint = load_checkpoint(path, mmap=mmap)
    except UntrustedCheckpointError as error:
        raise UntrustedCheckpointError(path, error.found, RUNNER_TRUST_HINT) from error
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise DFBenchError(f"{path} is not a Lightning checkpoint (no state_dict)")
    return checkpoint


def strip_to_weights(path: str | Path) -> tuple[int, int]:
    """Rewrite a Lightning checkpoint in place with only :data:`WEIGHTS_ONLY_KEYS`.

    Returns:
        The file's size in bytes before and after.

    Raises:
        ValueError: if the file is not a Lightning checkpoint (no ``state_dict``),
            or holds more than tensors and plain values (:func:`read_lightning_checkpoint`).
    """
    path = Path(path)
    before = path.stat().st_size
    checkpoint = read_lightning_checkpoint(path)
    kept = {key: checkpoint[key] for key in WEIGHTS_ONLY_KEYS if key in checkpoint}
    atomic_write(path, lambda handle: torch.save(kept, handle))
    return before, path.stat().st_size


def keep_only(selected: str | Path) -> int:
    """Strip ``selected`` to its weights and delete every other ``*.ckpt`` beside it.

    Returns:
        The bytes freed.
    """
    selected = Path(selected)
    before, after = strip_to_weights(selected)
    freed = before - after
    for other in selected.parent.glob("*.ckpt"):
        if other != selected:
            freed += other.stat().st_size
            other.unlink()
    return freed


def selection(path: str | Path) -> dict[str, Any]:
    """What a fit's selected checkpoint says about itself, read before it is stripped.

    Returns:
        ``params`` (the parameter count, buffers such as BatchNorm statistics
        excluded), ``epoch`` (0-based) and, from the ModelCheckpoint callback's
        state, ``monitor`` (e.g. ``val/frame_auc``) and ``val_score``: the
        validation score the checkpoint was chosen by (NaN when the file does
        not record it, e.g. once stripped), and ``val_fakes``: ``"pseudo"`` when
        that validation set's fakes were pseudo-fakes of its reals, ``"real"``
        when they were the dataset's own (None when not recorded).

    Raises:
        ValueError: the file is not a Lightning checkpoint, or holds more than
            tensors and plain values (:func:`read_lightning_checkpoint`).
    """
    checkpoint = read_lightning_checkpoint(path)
    buffers = ("running_mean", "running_var", "num_batches_tracked")
    state = checkpoint["state_dict"]
    facts: dict[str, Any] = {
        "params": int(sum(v.numel() for k, v in state.items() if not k.endswith(buffers))),
        "epoch": int(checkpoint.get("epoch", -1)),
        "monitor": None,
        "val_score": math.nan,
        "val_fakes": (checkpoint.get("datamodule_hyper_parameters") or {}).get("val_fakes"),
    }
    for key, callback in (checkpoint.get("callbacks") or {}).items():
        if not key.startswith("ModelCheckpoint") or not isinstance(callback, dict):
            continue
        # Saved when it became the best, so its own score is the current one.
        score = callback.get("current_score", callback.get("best_model_score"))
        if score is not None:
            facts["monitor"] = callback.get("monitor")
            facts["val_score"] = float(score)
            break
    return facts


@dataclass(frozen=True)
class ResumePoint:
    """Where an unfinished fit continues."""

    path: Path  # its last.ckpt
    epoch: int  # the last epoch it completed (0-based; -1: none)
    batches: int = 0  # batches of the next epoch trained too (a fit stopped mid-epoch)

    def __str__(self) -> str:
        done = f"after epoch {self.epoch + 1}" if self.epoch >= 0 else "in epoch 1"
        if self.batches:
            done += f" (and {self.batches} batches of epoch {self.epoch + 2})"
        return done


def batches_into_epoch(checkpoint: dict[str, Any]) -> int:
    """How many batches of its epoch a checkpoint saved mid-epoch had trained (0: none, or
    saved at the epoch's end), read from Lightning's training-loop progress in the file."""
    loops = checkpoint.get("loops") or {}
    progress = (loops.get("fit_loop") or {}).get("epoch_loop.batch_progress") or {}
    if progress.get("is_last_batch", True):
        return 0
    completed = (progress.get("current") or {}).get("completed", 0)
    return completed if isinstance(completed, int) and completed > 0 else 0


def resume_point(
    folder: str | Path, explain: Callable[[str], None] | None = None
) -> ResumePoint | None:
    """The ``last.ckpt`` an unfinished fit left in ``folder``, readied for resuming.

    Best checkpoints that its record does not name are deleted: an epoch that
    was interrupted after saving its best file but before ``last.ckpt`` would
    otherwise leave a file the resumed fit knows nothing of (neither replaces
    nor selects it). None, and nothing deleted, when there is no readable
    ``last.ckpt`` (one that holds more than tensors and plain values counts as
    unreadable, and nothing in it runs) or the best checkpoint it names is
    gone: the fit then starts afresh.

    Args:
        folder: the cell's checkpoint folder.
        explain: called with one line saying why, when a ``last.ckpt`` is
            there but not resumed.
    """
    last = Path(folder) / "last.ckpt"
    if not last.is_file():
        return None
    try:
        checkpoint = read_lightning_checkpoint(last, mmap=True)
    except ValueError as error:  # CheckpointFileError, UntrustedCheckpointError, no state_dict
        return _not_resumed(explain, str(error))
    epoch = checkpoint.get("epoch")
    if not isinstance(epoch, int):
        return _not_resumed(explain, f"{last} records no epoch")
    best = None
    for key, state in (checkpoint.get("callbacks") or {}).items():
        if key.startswith("ModelCheckpoint") and state.get("best_model_path"):
            best = Path(state["best_model_path"]).name
    if best is not None and not (last.parent / best).is_file():
        return _not_resumed(explain, f"the best checkpoint {best} that {last} records is gone")
    for other in last.parent.glob("*.ckpt"):
        if other.name not in (last.name, best):
            other.unlink()
    batches = batches_into_epoch(checkpoint)
    # Saved mid-epoch, "epoch" is the epoch in progress: the one before it is the last completed.
    return ResumePoint(last, epoch - 1 if batches else epoch, batches)


def _not_resumed(explain: Callable[[str], None] | None, why: str) -> None:
    if explain is not None:
        explain(why)
    return None
