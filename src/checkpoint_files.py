"""Reading checkpoint files without running code from them.

``torch.load`` unpickles, and a pickle may call any importable function while
it loads (``os.system`` included), before the caller sees a single value.
With ``weights_only=True`` torch's own unpickler builds tensors and plain
values only (dicts, lists, tuples, strings, numbers, None ...) and refuses any
other global before calling it. Everything dfbench writes is of that kind:
Lightning checkpoints of ``dfbench fit`` (weights, optimiser and scheduler
states, loops, the ModelCheckpoint record, hyper-parameters, the bench's
training time), the runner's weights-only copies and the files of the importers
of authors' weights (:func:`write_detector_checkpoint`), so no global is added
to torch's allowlist (``tests/test_checkpoint_safety.py`` loads each of them
this way). The LAA-Net authors' released file is described
as weights, epoch and optimiser state, which would be of that kind too.

Every checkpoint the suite reads goes through :func:`load_checkpoint`; a file
that needs more than tensors and plain values is refused in one line naming
it, and loads only when the user says they trust it (``--weights_only false``).
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import torch

from src.errors import DFBenchError

#: How a user loads a file that holds more than tensors and plain values.
TRUST_HINT = "add --weights_only false if you trust the file"

# torch names the refused global in one of two phrasings: "Unsupported global: GLOBAL
# builtins.getattr was not an allowed global" or "unsupported GLOBAL posix.system whose
# module posix is blocked".
_REFUSED_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")
#: How a file torch.save wrote starts: a zip archive (the default since torch 1.6), or a
#: pickle's PROTO opcode (the legacy format, ``_use_new_zipfile_serialization=False``).
_TORCH_MAGIC = (b"PK\x03\x04", b"\x80")


class CheckpointFileError(DFBenchError):
    """A file that torch cannot read as a checkpoint (missing, a folder, empty, truncated, text).

    Attributes:
        path: the file.
        reason: what is wrong with it, a few words (``empty file``, ``not a torch file: ...``).
    """

    def __init__(self, path: Path, reason: str) -> None:
        self.path, self.reason = path, reason
        super().__init__(f"not a checkpoint: {path} ({reason})")


class UntrustedCheckpointError(DFBenchError):
    """A checkpoint that holds Python objects besides tensors and plain values; nothing of it ran.

    Attributes:
        path: the file.
        found: the first global torch refused (e.g. ``posix.system``).
    """

    def __init__(self, path: Path, found: str, hint: str = TRUST_HINT) -> None:
        self.path, self.found = path, found
        super().__init__(
            f"{path} holds Python objects besides tensors and plain values ({found}), which "
            f"are not loaded: {hint}"
        )


def load_checkpoint(path: str | Path, *, trusted: bool = False, mmap: bool = False) -> Any:
    """The contents of the checkpoint file at ``path``, tensors on the CPU.

    Args:
        path: a file written by ``torch.save``.
        trusted: unpickle anything the file holds (``weights_only=False``); only
            for a file the user trusts, since loading may run code named in it.
        mmap: map the tensors' storage instead of reading it (for a large file
            of which a few values are read).

    Raises:
        UntrustedCheckpointError: the file holds more than tensors and plain
            values and ``trusted`` is off.
        CheckpointFileError: the path is missing or a folder, or the file is not
            one ``torch.load`` reads.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointFileError(path, "a folder; give a checkpoint file")
    if not path.is_file():
        raise CheckpointFileError(path, "file not found")
    with path.open("rb") as handle:
        start = handle.read(4)
    if start and not start.startswith(_TORCH_MAGIC):
        shown = start.decode("latin-1").encode("unicode_escape").decode()
        raise CheckpointFileError(path, f"not a torch file: it starts with {shown!r}")
    try:
        return torch.load(path, map_location="cpu", weights_only=not trusted, mmap=mmap)
    except pickle.UnpicklingError as error:
        refused = _REFUSED_GLOBAL.search(str(error))
        if refused:
            raise UntrustedCheckpointError(path, refused.group(1)) from error
        raise CheckpointFileError(path, _unpickler_reason(error)) from error
    except (EOFError, RuntimeError, OSError, ValueError, AttributeError) as error:
        reason = "empty file" if path.stat().st_size == 0 else _first_line(error)
        raise CheckpointFileError(path, reason) from error


def write_detector_checkpoint(model: Any, out: str | Path) -> tuple[Path, int]:
    """Save a detector as a Lightning checkpoint that ``dfbench test --ckpt_path`` takes.

    The hyper-parameters record the class and how to build it (``_class_path``
    and Lightning's ``_instantiator``, as ``dfbench fit`` does), so
    :meth:`Detector.from_checkpoint` rebuilds it (without the instantiator
    Lightning would pass ``_class_path`` to the constructor) and ``dfbench test``
    checks it against the configured model. The importers of authors' weights
    write their conversions with it.

    Args:
        model: a :class:`~src.detectors.base.Detector` holding the weights.
        out: the checkpoint to write (atomically).

    Returns:
        The written path and the number of tensors it holds.
    """
    import pytorch_lightning as pl

    from src.files import atomic_write

    model_class = type(model)
    payload = {
        "state_dict": model.state_dict(),
        "hyper_parameters": {
            "_class_path": f"{model_class.__module__}.{model_class.__qualname__}",
            "_instantiator": "pytorch_lightning.cli.instantiate_module",
            **model.hparams,
        },
        "pytorch-lightning_version": pl.__version__,
        "epoch": 0,
        "global_step": 0,
    }
    path = atomic_write(out, lambda handle: torch.save(payload, handle))
    return path, len(payload["state_dict"])


def _unpickler_reason(error: BaseException) -> str:
    # torch's message is a paragraph on weights_only; the reason is the line after
    # "WeightsUnpickler error:".
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    for before, after in zip(lines, lines[1:], strict=False):
        if before.startswith("Please file an issue") or before.endswith("WeightsUnpickler error:"):
            return f"not a torch file: {after}"
    return _first_line(error)


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0][:200]
