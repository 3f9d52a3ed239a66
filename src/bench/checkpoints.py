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
optimiser, schedule, best-checkpoint record and training time so far.
"""

from __future__ import annotations

import math
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from src.bench.progress import FIT_SECONDS_KEY
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


def strip_to_weights(path: str | Path) -> tuple[int, int]:
    """Rewrite a Lightning checkpoint in place with only :data:`WEIGHTS_ONLY_KEYS`.

    Returns:
        The file's size in bytes before and after.

    Raises:
        ValueError: if the file is not a Lightning checkpoint (no ``state_dict``).
    """
    path = Path(path)
    before = path.stat().st_size
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ValueError(f"{path} is not a Lightning checkpoint (no state_dict)")
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
        not record it, e.g. once stripped).
    """
    checkpoint = torch.load(Path(path), map_location="cpu", weights_only=False)
    buffers = ("running_mean", "running_var", "num_batches_tracked")
    state = checkpoint["state_dict"]
    facts: dict[str, Any] = {
        "params": int(sum(v.numel() for k, v in state.items() if not k.endswith(buffers))),
        "epoch": int(checkpoint.get("epoch", -1)),
        "monitor": None,
        "val_score": math.nan,
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
    epoch: int  # the last epoch it completed (0-based)
    fit_seconds: float  # training time up to that checkpoint (ProgressFile's; 0 if not recorded)


def resume_point(folder: str | Path) -> ResumePoint | None:
    """The ``last.ckpt`` an unfinished fit left in ``folder``, readied for resuming.

    Best checkpoints that its record does not name are deleted: an epoch that
    was interrupted after saving its best file but before ``last.ckpt`` would
    otherwise leave a file the resumed fit knows nothing of (neither replaces
    nor selects it). None, and nothing deleted, when there is no readable
    ``last.ckpt`` or the best checkpoint it names is gone: the fit then starts
    afresh.
    """
    last = Path(folder) / "last.ckpt"
    if not last.is_file():
        return None
    try:
        checkpoint = torch.load(last, map_location="cpu", weights_only=False, mmap=True)
        epoch = int(checkpoint["epoch"])
    except (OSError, RuntimeError, EOFError, KeyError, TypeError, pickle.UnpicklingError):
        return None
    best = None
    for key, state in (checkpoint.get("callbacks") or {}).items():
        if key.startswith("ModelCheckpoint") and state.get("best_model_path"):
            best = Path(state["best_model_path"]).name
    if best is not None and not (last.parent / best).is_file():
        return None
    for other in last.parent.glob("*.ckpt"):
        if other.name not in (last.name, best):
            other.unlink()
    return ResumePoint(last, epoch, float(checkpoint.get(FIT_SECONDS_KEY, 0.0)))
