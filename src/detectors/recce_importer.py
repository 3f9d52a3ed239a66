"""Load the RECCE authors' trained weights into :class:`~src.detectors.recce.RECCE`.

Their trainer (github.com/VISION-SJTU/RECCE, ``trainer/exp_mgpu_trainer.py``)
saves ``{"step", "best_step", "best_metric", "eval_metric", "model",
"optimizer", "scheduler"}`` as ``best_model_STEP.bin`` / ``latest_model.bin``,
with ``model`` the unwrapped network's state dict (``model.module.state_dict()``
of its DistributedDataParallel); their ``inference.py`` also takes that state
dict alone. Both are accepted, as is a ``state_dict`` entry, and a ``module.``
prefix (a state dict saved from the wrapper) is removed. Their SyncBatchNorm
layers have plain batch-norm keys.

Their network is timm 0.3.4's ``xception`` (timm 1.x: ``legacy_xception``, the
same modules and keys, which dfbench uses) under ``encoder.``, and their own
modules around it; dfbench's RECCE computes the same layers in the same order:

===============================  =============================================
authors                          dfbench
===============================  =============================================
``encoder.*``                    ``backbone.model.*``
``encoder.fc.*``                 not loaded: timm's ImageNet classifier, which
                                 their forward never calls
``decoder1`` ... ``decoder5``    ``decoder.up1``, ``block1``, ``up2``, ``block2``, ``up3``
``decoder6.0``                   ``decoder.to_image``
``reasoning.va_embedding``       ``reasoning.query``
``reasoning.vb_* / vc_*``        ``reasoning.branches.0 / 1`` (``embed``; ``va_gated_b/c``
                                 -> ``gate``, ``reweight_ab/ac`` -> ``score``)
``attention.gated / h``          ``guided_attention.weight / transform``
``fc``                           ``head.fc``
===============================  =============================================

Their released configuration (``config/Recce.yml``) has ``num_classes: 1``, one
logit as in dfbench. A two-class head (``num_classes: 2``, trained with
softmax cross-entropy) is converted exactly: the logit ``z1 - z0`` (rows
subtracted) gives ``sigmoid(z1 - z0) = softmax(z)[1]``, the fake probability.

Floating tensors are loaded as float32 (their trainer keeps float32 weights
under autocast; a half or double copy is converted), integer buffers as they
are. The file is read with ``weights_only=True`` (:mod:`src.checkpoint_files`):
their ``.bin`` holds tensors and plain values; a copy that needs more is
refused before anything in it runs, unless ``trusted``
(``dfbench import-recce --weights_only false``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from torch import Tensor

from src.checkpoint_files import load_checkpoint, write_detector_checkpoint
from src.detectors.recce import RECCE
from src.errors import DFBenchError

#: Constructor arguments of the imported model: dfbench's defaults (the papers'),
#: with the learning-rate schedule stepped per iteration as their trainer steps it
#: (and as configs/detectors/recce.yaml sets it, so that ``dfbench test`` with that
#: config takes the written checkpoint).
AUTHORS_CONFIG: dict[str, Any] = {"scheduler_interval": "step"}

#: Their module prefixes -> dfbench's, tried in order (first match on a dotted boundary).
PREFIXES: tuple[tuple[str, str], ...] = (
    ("encoder.", "backbone.model."),
    ("decoder1.", "decoder.up1."),
    ("decoder2.", "decoder.block1."),
    ("decoder3.", "decoder.up2."),
    ("decoder4.", "decoder.block2."),
    ("decoder5.", "decoder.up3."),
    ("decoder6.0.", "decoder.to_image."),
    ("reasoning.va_embedding.", "reasoning.query."),
    ("reasoning.va_gated_b.0.", "reasoning.branches.0.gate."),
    ("reasoning.vb_embedding.", "reasoning.branches.0.embed."),
    ("reasoning.reweight_ab.0.", "reasoning.branches.0.score."),
    ("reasoning.va_gated_c.0.", "reasoning.branches.1.gate."),
    ("reasoning.vc_embedding.", "reasoning.branches.1.embed."),
    ("reasoning.reweight_ac.0.", "reasoning.branches.1.score."),
    ("reasoning.reproject.", "reasoning.reproject."),
    ("attention.gated.", "guided_attention.weight."),
    ("attention.h.", "guided_attention.transform."),
    ("fc.", "head.fc."),
)
#: Their tensors that dfbench's RECCE has no use for: timm's 1000-class ImageNet classifier.
UNUSED_PREFIX = "encoder.fc."


class AuthorsWeights(NamedTuple):
    """The authors' weights in dfbench's names.

    Attributes:
        state_dict: dfbench's keys -> tensors (float32, integer buffers kept).
        origin: dfbench's key -> the key in their file.
        unused: their keys left out (:data:`UNUSED_PREFIX`).
        classes: outputs of their head (1, or 2 converted to one logit).
    """

    state_dict: dict[str, Tensor]
    origin: dict[str, str]
    unused: list[str]
    classes: int


def _rename(key: str, pairs: tuple[tuple[str, str], ...]) -> str | None:
    for source, target in pairs:
        if key.startswith(source):
            return target + key.removeprefix(source)
    return None


def dfbench_name(authors_key: str) -> str | None:
    """dfbench's name of one of the authors' tensors (None: not a tensor of their RECCE)."""
    return _rename(authors_key.removeprefix("module."), PREFIXES)


def authors_name(dfbench_key: str) -> str | None:
    """The authors' name of one of dfbench's RECCE tensors (None: no counterpart)."""
    return _rename(dfbench_key, tuple((ours, theirs) for theirs, ours in PREFIXES))


def _one_logit(key: str, value: Tensor) -> Tensor:
    """A two-class head's row (or entry) difference ``class 1 - class 0``; one class as it is."""
    if key.startswith("head.fc.") and value.dim() >= 1 and value.shape[0] == 2:
        return (value[1] - value[0]).unsqueeze(0)
    return value


def authors_to_dfbench(state_dict: dict[str, Tensor]) -> AuthorsWeights:
    """Their state dict in dfbench's names (keys of neither model are kept as they are)."""
    mapped: dict[str, Tensor] = {}
    origin: dict[str, str] = {}
    unused = []
    classes = 1
    for key, value in state_dict.items():
        if key.removeprefix("module.").startswith(UNUSED_PREFIX):
            unused.append(key)
            continue
        new = dfbench_name(key) or key
        if new == "head.fc.weight" and value.dim() == 2:
            classes = value.shape[0]
        if value.is_floating_point():  # the class difference in float64, then float32
            value = _one_logit(new, value.double()).float()
        mapped[new] = value
        origin[new] = key
    return AuthorsWeights(mapped, origin, unused, classes)


def _state_dict_of(path: Path, contents: Any) -> dict[str, Tensor]:
    """The network's state dict in one of the layouts their code saves or reads."""
    if isinstance(contents, dict):
        for entry in ("model", "state_dict"):
            if isinstance(contents.get(entry), dict):
                return contents[entry]
        if contents and all(isinstance(value, Tensor) for value in contents.values()):
            return contents
    found = (
        sorted(map(str, contents))[:4] if isinstance(contents, dict) else type(contents).__name__
    )
    raise DFBenchError(
        f"{path} is not the RECCE authors' checkpoint: expected their trainer's .bin (a dict with "
        f"a 'model' state dict) or a state dict of tensors; found {found}"
    )


def _misfits(path: Path, weights: AuthorsWeights, own: dict[str, Tensor]) -> str | None:
    """One line on the tensors that are missing, unexpected or of another shape (None: none)."""
    mapped = weights.state_dict
    missing = [key for key in own if key not in mapped]
    unexpected = [weights.origin[key] for key in mapped if key not in own]
    reshaped = [key for key in own if key in mapped and mapped[key].shape != own[key].shape]
    if not (missing or unexpected or reshaped):
        return None
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing, e.g. {authors_name(missing[0])}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected, e.g. {unexpected[0]}")
    if reshaped:
        key = reshaped[0]
        theirs = "x".join(map(str, mapped[key].shape)) or "scalar"
        ours = "x".join(map(str, own[key].shape)) or "scalar"
        parts.append(
            f"{len(reshaped)} of another shape, e.g. {weights.origin[key]} {theirs} "
            f"(expected {ours})"
        )
    return f"{path} does not fit the authors' RECCE (tensors by their names): {'; '.join(parts)}"


def import_authors_weights(
    path: str | Path, *, trusted: bool = False, **overrides: Any
) -> tuple[RECCE, AuthorsWeights]:
    """A :class:`RECCE` holding the weights of the authors' file (strict load), and what was mapped.

    Args:
        path: their trainer's ``.bin`` or a state dict saved alone.
        trusted: load it even if it holds more than tensors and plain values
            (its pickle may then run code).
        **overrides: :class:`RECCE` arguments that replace :data:`AUTHORS_CONFIG`'s.

    Raises:
        DFBenchError: the file is not theirs, or its tensors do not fit their
            RECCE; one line naming the file.
    """
    path = Path(path)
    state_dict = _state_dict_of(path, load_checkpoint(path, trusted=trusted))
    model = RECCE(**(AUTHORS_CONFIG | overrides))
    weights = authors_to_dfbench(state_dict)
    problem = _misfits(path, weights, model.state_dict())
    if problem:
        raise DFBenchError(problem)
    model.load_state_dict(weights.state_dict, strict=True)
    return model, weights


def load_authors_checkpoint(path: str | Path, *, trusted: bool = False, **overrides: Any) -> RECCE:
    """The :class:`RECCE` of :func:`import_authors_weights`."""
    return import_authors_weights(path, trusted=trusted, **overrides)[0]


def write_checkpoint(
    source: str | Path, out: str | Path, *, trusted: bool = False
) -> tuple[Path, int, list[str]]:
    """Convert the authors' file into a Lightning checkpoint ``dfbench test`` takes.

    Args:
        source: their trainer's ``.bin`` or a state dict saved alone.
        out: the checkpoint to write.
        trusted: see :func:`import_authors_weights`.

    Returns:
        The written path, its number of tensors, and notes on what was converted
        (tensors left out, a two-class head made one logit).
    """
    model, weights = import_authors_weights(source, trusted=trusted)
    path, tensors = write_detector_checkpoint(model, out)
    notes = []
    if weights.unused:
        notes.append(
            f"left out {', '.join(weights.unused)}: timm's ImageNet classifier, which their "
            "forward never uses"
        )
    if weights.classes == 2:
        notes.append(
            "their two-class head became one logit, class 1 - class 0 (sigmoid = softmax[1])"
        )
    return path, tensors, notes
