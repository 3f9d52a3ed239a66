"""Load the LAA-Net authors' released checkpoint into :class:`~src.detectors.laa_net.LAANet`.

Their file is ``{"epoch", "state_dict", "optimizer"}``; the state dict has 803
float64 tensors in ``efficientnet_pytorch`` naming for the backbone
(``_conv_stem``, ``_bn0``, ``_blocks.N._expand_conv`` ...), the decoder as
``deconv_1..4`` with the inception block under both ``inception_block`` and
``deconv_4.0``, and heads ``hm``, ``cls``, ``cstency``. dfbench's LAA-Net
uses the same decoder and head names (under ``decoder.``) and timm's
EfficientNet, so only the backbone keys are renamed:

=========================  ======================================================
authors                    dfbench (``backbone.model.``)
=========================  ======================================================
``_conv_stem`` / ``_bn0``  ``conv_stem`` / ``bn1``
``_conv_head`` / ``_bn1``  ``conv_head`` / ``bn2``
``_blocks.N.*``            ``blocks.S.B.*`` (N counts blocks over the stages)
``_expand_conv`` ``_bn0``  ``conv_pw`` ``bn1`` (blocks with an expansion)
``_depthwise_conv``        ``conv_dw``, its BN ``_bn1`` -> ``bn2`` (``bn1`` in stage 0)
``_se_reduce/_se_expand``  ``se.conv_reduce`` / ``se.conv_expand``
``_project_conv`` ``_bn2``  ``conv_pwl`` ``bn3`` (``conv_pw`` ``bn2`` in stage 0)
=========================  ======================================================

The weights are numerically interchangeable except for one layer's padding
at 384 px (see :meth:`LAANet.match_authors_padding`); imported models set
``authors_padding=True``. ``dfbench import-laa-net`` writes a checkpoint
that ``dfbench test`` takes.

Their file is read with ``weights_only=True`` (:mod:`src.checkpoint_files`):
weights, epoch and optimiser state are tensors and plain values. A copy that
needs more is refused before anything in it runs, unless ``trusted``
(``dfbench import-laa-net --weights_only false``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor

from src.checkpoint_files import load_checkpoint, write_detector_checkpoint
from src.detectors.laa_net.model import LAANet
from src.errors import DFBenchError

#: Constructor arguments of the authors' released configuration.
AUTHORS_CONFIG: dict[str, Any] = {
    "backbone": "tf_efficientnet_b4",
    "levels": (6, 5, 4, 3),
    "use_efpn": True,
    "consistency_dim": 256,
    "authors_padding": True,
}
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2"}
_SE = {"_se_reduce": "se.conv_reduce", "_se_expand": "se.conv_expand"}
_DEPTHWISE_SEPARABLE = {
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
} | _SE
_INVERTED_RESIDUAL = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
} | _SE


def _block_positions(model: LAANet) -> list[tuple[int, int, bool]]:
    """(stage, block, is inverted residual) for every flat block index."""
    positions = []
    for stage, blocks in enumerate(model.backbone.model.blocks):
        for index, block in enumerate(blocks):
            positions.append((stage, index, hasattr(block, "conv_pwl")))
    return positions


def _rename_backbone_key(key: str, positions: list[tuple[int, int, bool]]) -> str:
    parts = key.split(".")
    if parts[0] in _TOP:
        return ".".join([_TOP[parts[0]], *parts[1:]])
    if parts[0] != "_blocks":
        raise KeyError(key)
    stage, index, inverted = positions[int(parts[1])]
    names = _INVERTED_RESIDUAL if inverted else _DEPTHWISE_SEPARABLE
    return ".".join(["blocks", str(stage), str(index), names[parts[2]], *parts[3:]])


def authors_to_dfbench(state_dict: dict[str, Tensor], model: LAANet) -> dict[str, Tensor]:
    """The authors' state dict in dfbench's names and float32 (integer buffers kept)."""
    positions = _block_positions(model)
    mapped = {}
    for key, value in state_dict.items():
        key = key.removeprefix("module.")
        if key.split(".")[0] in ("hm", "cls", "cstency"):
            new = key
        elif key.startswith(("deconv_", "inception_block")):
            new = f"decoder.{key}"
        else:
            new = f"backbone.model.{_rename_backbone_key(key, positions)}"
        mapped[new] = value.float() if value.is_floating_point() else value
    return mapped


def dfbench_to_authors(state_dict: dict[str, Tensor], model: LAANet) -> dict[str, Tensor]:
    """The inverse of :func:`authors_to_dfbench`, in float64 as the authors save."""
    inverse_top = {v: k for k, v in _TOP.items()}
    positions = _block_positions(model)
    offsets = {(stage, index): flat for flat, (stage, index, _) in enumerate(positions)}
    inverted = {(stage, index): inv for stage, index, inv in positions}
    out = {}
    for key, value in state_dict.items():
        if key.startswith("decoder."):
            new = key.removeprefix("decoder.")
        elif key.startswith("backbone.model."):
            parts = key.removeprefix("backbone.model.").split(".")
            if parts[0] == "blocks":
                stage, index = int(parts[1]), int(parts[2])
                names = _INVERTED_RESIDUAL if inverted[(stage, index)] else _DEPTHWISE_SEPARABLE
                back = {v: k for k, v in names.items()}
                sub = ".".join(parts[3:5]) if parts[3] == "se" else parts[3]
                rest = parts[5:] if parts[3] == "se" else parts[4:]
                new = ".".join(["_blocks", str(offsets[(stage, index)]), back[sub], *rest])
            else:
                new = ".".join([inverse_top[parts[0]], *parts[1:]])
        else:
            new = key
        out[new] = value.double() if value.is_floating_point() else value
    return out


def load_authors_checkpoint(path: str | Path, *, trusted: bool = False, **overrides: Any) -> LAANet:
    """An :class:`LAANet` holding the weights of the authors' ``.pth`` file (strict load).

    Args:
        path: their released file.
        trusted: load it even if it holds more than tensors and plain values
            (its pickle may then run code).
        **overrides: :class:`LAANet` arguments that replace :data:`AUTHORS_CONFIG`'s.
    """
    path = Path(path)
    checkpoint = load_checkpoint(path, trusted=trusted)
    state_dict = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state_dict, dict):
        raise DFBenchError(
            f"{path}: expected a dict with a 'state_dict' entry (the authors' format)"
        )
    model = LAANet(**(AUTHORS_CONFIG | overrides))
    try:
        mapped = authors_to_dfbench(state_dict, model)
    except (KeyError, IndexError, ValueError) as error:
        raise DFBenchError(
            f"{path} is not the authors' LAA-Net: a tensor name outside their model ({error})"
        ) from error
    own = model.state_dict()
    misfits = sorted(set(own) ^ set(mapped)) + [
        key for key in own if key in mapped and mapped[key].shape != own[key].shape
    ]
    if misfits:
        raise DFBenchError(
            f"{path} does not fit the authors' LAA-Net: {len(misfits)} tensor(s) missing, "
            f"unexpected or of another shape, e.g. {misfits[0]}"
        )
    model.load_state_dict(mapped, strict=True)
    return model


def write_checkpoint(
    source: str | Path, out: str | Path, *, trusted: bool = False
) -> tuple[Path, int]:
    """Convert the authors' ``.pth`` into a Lightning checkpoint ``dfbench test`` takes.

    The hyper-parameters record the class (``_class_path``, as ``dfbench fit``
    does), so :meth:`Detector.from_checkpoint` rebuilds it and ``dfbench test``
    checks it against the configured model.

    Args:
        source: the authors' released file.
        out: the checkpoint to write.
        trusted: see :func:`load_authors_checkpoint`.

    Returns:
        The written path and the number of tensors it holds.
    """
    model = load_authors_checkpoint(source, trusted=trusted)
    return write_detector_checkpoint(model, out)
