"""What every importer of an authors' released checkpoint does around its own key mapping.

An importer (``src/detectors/laa_net/importer.py``, ``src/detectors/sbi.py``)
renames the authors' tensors to its detector's names; the steps before and
after are these:

1. :func:`read_state_dict`: the file, read with ``weights_only=True``
   (:mod:`src.checkpoint_files`), and the state dict under the authors' entry;
2. :func:`load_exactly`: the tensors renamed by the importer's mapping and
   loaded strictly, after a check that names the first unknown, missing,
   unexpected or misshapen tensor in one line;
3. :func:`src.checkpoint_files.write_detector_checkpoint`: a Lightning checkpoint that
   ``dfbench test`` takes, whose hyper-parameters rebuild the detector.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from torch import Tensor, nn

from src.checkpoint_files import load_checkpoint
from src.errors import DFBenchError

M = TypeVar("M", bound=nn.Module)


def read_state_dict(
    path: str | Path, entry: str, method: str, *, trusted: bool = False
) -> dict[str, Tensor]:
    """The authors' state dict, ``checkpoint[entry]`` (or the file itself when it is one).

    Args:
        path: their released file.
        entry: the key under which they save the weights (``state_dict``, ``model``).
        method: the method's name, for messages.
        trusted: load it even if it holds more than tensors and plain values.

    Raises:
        DFBenchError: not a dict of tensors under ``entry``; the message names the file.
    """
    path = Path(path)
    checkpoint = load_checkpoint(path, trusted=trusted)
    state_dict = checkpoint.get(entry, checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state_dict, dict) or not all(
        isinstance(value, Tensor) for value in state_dict.values()
    ):
        raise DFBenchError(
            f"{path}: expected a dict with a {entry!r} entry of tensors (the {method} authors' format)"
        )
    return {key.removeprefix("module."): value for key, value in state_dict.items()}


def load_exactly(
    model: M,
    state_dict: dict[str, Tensor],
    to_model: Callable[[dict[str, Tensor], M], dict[str, Tensor]],
    path: str | Path,
    method: str,
) -> M:
    """Load the authors' tensors, renamed by ``to_model``, into ``model`` strictly.

    Args:
        model: the detector to fill.
        state_dict: the authors' tensors.
        to_model: the importer's mapping to ``model``'s names; it raises
            ``KeyError``, ``IndexError`` or ``ValueError`` for a tensor their model
            does not have.
        path: their file, for messages.
        method: the method's name, for messages.

    Returns:
        ``model``, filled.

    Raises:
        DFBenchError: a tensor outside their model, or tensors missing,
            unexpected or misshapen; one line naming the file and the first.
    """
    try:
        mapped = to_model(state_dict, model)
    except (KeyError, IndexError, ValueError) as error:
        raise DFBenchError(
            f"{path} is not the authors' {method}: a tensor name outside their model ({error})"
        ) from error
    own = model.state_dict()
    misfits = sorted(set(own) ^ set(mapped)) + [
        key for key in own if key in mapped and mapped[key].shape != own[key].shape
    ]
    if misfits:
        raise DFBenchError(
            f"{path} does not fit the authors' {method}: {len(misfits)} tensor(s) missing, "
            f"unexpected or of another shape, e.g. {misfits[0]}"
        )
    model.load_state_dict(mapped, strict=True)
    return model
