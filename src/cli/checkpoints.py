"""Checkpoints given to the Lightning verbs: readable, of the configured model, tracked across resumes.

* read_checkpoint: a file that is not a Lightning checkpoint (empty, truncated,
  a bare state dict, a text file) fails with one line naming it, before any
  model is built. Checkpoints load with weights_only=True (tensors and plain
  values only: what dfbench writes; src.checkpoint_files); a trusted file that
  needs more loads with --weights_only false.
* checkpoint_mismatch: the configured model wins. Lightning's CLI would rebuild
  the model from the checkpoint's hyper-parameters, so testing a ResNet-50
  checkpoint under laa_net.yaml would quietly test the ResNet-50; here a
  checkpoint of another class, or of other hyper-parameters, is an error that
  names both, unless --allow_mismatch true loads the weights whose names and
  shapes fit (load_matching).
* RunCheckpoint: ModelCheckpoint that keeps its best-checkpoint record when a
  run is resumed from another working directory or after its folder moved
  (Lightning drops the record whenever the folder's spelling differs);
  LastCheckpoint writes last.ckpt after every epoch beside it.
* AtomicCheckpointIO: writes a checkpoint straight into a temporary file beside
  it, then renames it into place (Lightning first serialises it into memory).
"""

from __future__ import annotations

import importlib
import json
import math
import warnings
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins import TorchCheckpointIO
from pytorch_lightning.callbacks import Checkpoint, ModelCheckpoint
from torch import nn

from src.checkpoint_files import CheckpointFileError, load_checkpoint
from src.errors import DFBenchError
from src.files import atomic_write

#: Hyper-parameters that may differ between a checkpoint and the configured model:
#: pretrained only picks initial weights (the checkpoint replaces them), the
#: optimiser and schedule are not in the file, and video_score is how a test
#: aggregates frame scores, not part of the network.
IGNORED_HPARAMS = frozenset(
    {"pretrained", "optimizer", "lr_scheduler", "video_score", "_class_path", "_instantiator"}
)


def read_checkpoint(path: Path, weights_only: bool = True) -> dict[str, Any]:
    """The checkpoint at ``path`` (tensors on the CPU), or an error that says what is wrong.

    Args:
        path: the ``--ckpt_path`` file.
        weights_only: refuse a file that holds more than tensors and plain values
            (:func:`src.checkpoint_files.load_checkpoint`); off for a file the user trusts.
    """
    if path.is_dir():
        raise IsADirectoryError(f"--ckpt_path {path} is a folder; give a .ckpt file")
    if not path.is_file():
        raise FileNotFoundError(f"--ckpt_path {path}: file not found")
    try:
        checkpoint = load_checkpoint(path, trusted=not weights_only)
    except CheckpointFileError as error:
        raise DFBenchError(f"not a Lightning checkpoint: {path} ({error.reason})") from error
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        found = (
            sorted(checkpoint)[:4] if isinstance(checkpoint, dict) else type(checkpoint).__name__
        )
        raise DFBenchError(
            f"not a Lightning checkpoint: {path} (no state_dict; found {found}); released weights "
            "of a method are converted by its import command, e.g. dfbench import-laa-net"
        )
    return checkpoint


def _plain(value: Any) -> Any:
    """A YAML/JSON-like value with tuples as lists, for comparison."""
    return json.loads(json.dumps(value, default=str))


def _same(key: str, stored: Any, configured: Any) -> bool:
    stored, configured = _plain(stored), _plain(configured)
    if stored == configured:
        return True
    sizes = [value if isinstance(value, list) else [value, value] for value in (stored, configured)]
    if key == "input_size" and sizes[0] == sizes[1]:
        return True
    # A timm name's weights tag (tf_efficientnet_b4.ap_in1k) only picks pretrained
    # weights, which the checkpoint replaces: the architecture is the part before the dot.
    if key.endswith("backbone") and isinstance(stored, str) and isinstance(configured, str):
        return stored.split(".")[0] == configured.split(".")[0]
    return False


def _short(value: Any) -> str:
    text = json.dumps(_plain(value))
    return text if len(text) <= 60 else text[:57] + "..."


def _import(class_path: str) -> type | None:
    module, _, name = class_path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return None


def checkpoint_mismatch(
    path: Path, checkpoint: dict[str, Any], model_class: type, init_args: dict[str, Any]
) -> str | None:
    """Why the checkpoint does not belong to the configured model (None when it does).

    Args:
        path: the checkpoint file, for the message.
        checkpoint: its contents (read_checkpoint).
        model_class: the configured model's class.
        init_args: the configured model's arguments as resolved by the CLI.
    """
    hparams = dict(checkpoint.get("hyper_parameters") or {})
    configured = f"{model_class.__module__}.{model_class.__qualname__}"
    stored_path = hparams.get("_class_path")
    if stored_path is not None and _import(stored_path) is not model_class:
        return f"{path} holds a {stored_path}, but the config builds a {configured}"
    differences = [
        f"{key} (checkpoint {_short(hparams[key])}, config {_short(init_args[key])})"
        for key in sorted(set(hparams) & set(init_args) - IGNORED_HPARAMS)
        if not _same(key, hparams[key], init_args[key])
    ]
    unknown = sorted(set(hparams) - set(init_args) - IGNORED_HPARAMS)
    differences += [
        f"{key} (in the checkpoint, not an argument of {configured})" for key in unknown
    ]
    if not differences:
        return None
    return f"{path} and the config of {configured} differ in {', '.join(differences)}"


def ignored_on_resume(checkpoint: dict[str, Any], optimizer: dict[str, Any] | None) -> str | None:
    """Optimiser settings a fit resumed from ``checkpoint`` would ignore (None when none).

    Resuming restores the optimiser's state from the checkpoint, its
    hyper-parameters (lr, weight decay, betas, momentum ...) included, and the
    schedule's: a changed value there would be recorded as the run's setting
    and not used. Stopping criteria (``max_epochs``, ``max_steps``), data
    loading, logging and devices apply on resume; the optimiser's do not.

    Args:
        checkpoint: a Lightning checkpoint of a fit (read_checkpoint).
        optimizer: the configured optimiser (``class_path`` and ``init_args``), or
            None when the detector's default is used.
    """
    states = checkpoint.get("optimizer_states") or []
    groups = (states[0].get("param_groups") or []) if states and isinstance(states[0], dict) else []
    if optimizer is None or not groups:
        return None
    stored = groups[0]
    configured = optimizer.get("init_args") or {}
    name = str(optimizer.get("class_path", "")).rsplit(".", 1)[-1]
    unknown = sorted(key for key in configured if key not in stored)
    if unknown:
        return f"the optimiser {name} (the checkpoint's optimiser has no {unknown[0]})"
    for key, value in sorted(configured.items()):
        # A schedule moves lr; the value the run was configured with is initial_lr.
        field = "initial_lr" if key == "lr" and "initial_lr" in stored else key
        held = stored[field]
        if any(not _same_number(group.get(field), held) for group in groups[1:]):
            continue  # set per parameter group by the detector, not by this option
        if not _same_number(value, held):
            return f"--model.init_args.optimizer.init_args.{key} {_short(value)} (checkpoint {_short(held)})"
    return None


def _same_number(configured: Any, stored: Any) -> bool:
    if isinstance(configured, list | tuple) and isinstance(stored, list | tuple):
        return len(configured) == len(stored) and all(
            _same_number(a, b) for a, b in zip(configured, stored, strict=True)
        )
    if isinstance(configured, bool) or isinstance(stored, bool) or configured is None:
        return configured == stored
    try:
        return math.isclose(float(configured), float(stored), rel_tol=1e-9, abs_tol=0.0)
    except (TypeError, ValueError):
        return configured == stored


def load_matching(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> tuple[int, list[str]]:
    """Copy the tensors of ``state_dict`` whose name and shape exist in ``model``.

    Returns:
        How many tensors were loaded, and the names of the model's tensors left as they were.
    """
    own = model.state_dict()
    fitting = {k: v for k, v in state_dict.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(fitting, strict=False)
    return len(fitting), sorted(set(own) - set(fitting))


class RunCheckpoint(ModelCheckpoint):
    """ModelCheckpoint whose record (best score and path, top-k, last) survives a resume.

    Lightning restores the record only when the checkpoint's folder is spelled
    exactly as the current one; a run resumed from another working directory
    (a relative path) or after being moved lost its best checkpoint, and the
    next epoch became "best" whatever its score. When the recorded best file
    is present in the current folder, the record is the current folder's,
    moved there by name. Its state key is ModelCheckpoint's, so checkpoints
    written by either class resume with the other.
    """

    #: Set by the CLI when a fit continues its run: the non-empty folder is expected then.
    continues_run: bool = False
    #: Off for validate/test/predict: they select nothing, so a checkpoint's record
    #: (kept for the run it came from) is not loaded, and not compared with this folder.
    tracking: bool = True

    @property
    def state_key(self) -> str:
        return super().state_key.replace(type(self).__qualname__, "ModelCheckpoint", 1)

    def setup(self, trainer, pl_module, stage: str) -> None:  # noqa: ANN001 (Lightning types)
        if not self.continues_run:
            return super().setup(trainer, pl_module, stage)
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore",
                message=r"Checkpoint directory .* exists and is not empty",
                category=UserWarning,
            )
            return super().setup(trainer, pl_module, stage)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if not self.tracking:
            return
        stored = state_dict.get("dirpath")
        best = state_dict.get("best_model_path")
        if (
            self.dirpath
            and stored
            and stored != self.dirpath
            and best
            and (Path(self.dirpath) / Path(best).name).is_file()
        ):
            state_dict = self._moved(state_dict, Path(self.dirpath))
        super().load_state_dict(state_dict)

    @staticmethod
    def _moved(state: dict[str, Any], folder: Path) -> dict[str, Any]:
        def here(path: str) -> str:
            return str(folder / Path(path).name) if path else path

        state = dict(state, dirpath=str(folder))
        for key in ("best_model_path", "kth_best_model_path", "last_model_path"):
            if key in state:
                state[key] = here(state[key])
        if "best_k_models" in state:
            state["best_k_models"] = {here(k): v for k, v in state["best_k_models"].items()}
        return state


class LastCheckpoint(Checkpoint):
    """Writes ``last.ckpt`` beside the best-checkpoint tracker's files after every epoch.

    Since Lightning 2.6, ``ModelCheckpoint(save_last=True)`` writes last.ckpt only
    in an epoch that also wrote a top-k checkpoint: after the best epoch, last.ckpt
    stayed the best epoch's, and ``--ckpt_path last`` resumed from there, repeating
    the epochs since. The CLI turns the tracker's ``save_last`` off and adds this
    callback instead. It is a :class:`~pytorch_lightning.callbacks.Checkpoint`, so
    Lightning runs it after the callbacks added before it (the tracker among them):
    the file holds the tracker's record of this epoch. It writes at the end of the
    training epoch, after that epoch's validation, as the tracker does by default.

    Args:
        tracker: the best-checkpoint tracker whose folder receives ``last.ckpt``.
    """

    def __init__(self, tracker: ModelCheckpoint) -> None:
        self.tracker = tracker

    @property
    def path(self) -> Path:
        name = self.tracker.CHECKPOINT_NAME_LAST + self.tracker.FILE_EXTENSION
        return Path(self.tracker.dirpath) / name

    def on_train_epoch_end(self, trainer, pl_module) -> None:  # noqa: ANN001 (Lightning types)
        if trainer.fast_dev_run or trainer.sanity_checking or self.tracker.dirpath is None:
            return
        trainer.save_checkpoint(self.path)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer without its copy in memory, for local paths.

    Lightning serialises a checkpoint into memory and then copies that into the
    file; here it is written straight into a temporary file beside the target
    and renamed into place (:func:`src.files.atomic_write`: as atomic, synced,
    with the user's umask), which is faster for checkpoints of hundreds of MB
    (``benchmarks/checkpoint_write.py`` measures both). Remote paths
    (``s3://...``) keep Lightning's writer.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None or "://" in str(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        atomic_write(path, lambda handle: torch.save(checkpoint, handle))
