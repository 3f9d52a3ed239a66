"""Keep one small checkpoint per finished benchmark cell.

A Lightning checkpoint of a fit holds, besides the weights, the optimiser
state (Adam keeps two tensors per weight, so the file is about three times
the weights), the learning-rate schedulers, the loops' progress and the
callbacks' state (which also records absolute paths). A finished cell never
resumes training: testing and ``Detector.load_from_checkpoint`` need only the
weights and the hyper-parameters that rebuild the network. Once a cell's
tests pass, the runner keeps the selected (best-on-validation) checkpoint
reduced to those, and deletes the others (``last.ckpt`` ...).
"""

from __future__ import annotations

from pathlib import Path

import torch

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
