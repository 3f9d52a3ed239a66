"""Load the LAA-Net authors' released checkpoint into :class:`~src.detectors.laa_net.LAANet`.

Their file is ``{"epoch", "state_dict", "optimizer"}``; the state dict has 803
float64 tensors in ``efficientnet_pytorch`` naming for the backbone
(``_conv_stem``, ``_bn0``, ``_blocks.N._expand_conv`` ...), the decoder as
``deconv_1..4`` with the inception block under both ``inception_block`` and
``deconv_4.0``, and heads ``hm``, ``cls``, ``cstency``. dfbench's LAA-Net
uses the same decoder and head names (under ``decoder.``) and timm's
EfficientNet, so only the backbone keys are renamed, by the rules of
:mod:`src.detectors.efficientnet_keys` (shared with SBI's importer).

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

from src.checkpoint_files import write_detector_checkpoint
from src.detectors.authors_checkpoints import load_exactly, read_state_dict
from src.detectors.efficientnet_keys import block_positions, to_efficientnet_pytorch, to_timm
from src.detectors.laa_net.model import LAANet

#: Constructor arguments of the authors' released configuration.
AUTHORS_CONFIG: dict[str, Any] = {
    "backbone": "tf_efficientnet_b4",
    "levels": (6, 5, 4, 3),
    "use_efpn": True,
    "consistency_dim": 256,
    "authors_padding": True,
}


def authors_to_dfbench(state_dict: dict[str, Tensor], model: LAANet) -> dict[str, Tensor]:
    """The authors' state dict in dfbench's names and float32 (integer buffers kept)."""
    positions = block_positions(model.backbone.model.blocks)
    mapped = {}
    for key, value in state_dict.items():
        key = key.removeprefix("module.")
        if key.split(".")[0] in ("hm", "cls", "cstency"):
            new = key
        elif key.startswith(("deconv_", "inception_block")):
            new = f"decoder.{key}"
        else:
            new = f"backbone.model.{to_timm(key, positions)}"
        mapped[new] = value.float() if value.is_floating_point() else value
    return mapped


def dfbench_to_authors(state_dict: dict[str, Tensor], model: LAANet) -> dict[str, Tensor]:
    """The inverse of :func:`authors_to_dfbench`, in float64 as the authors save."""
    positions = block_positions(model.backbone.model.blocks)
    out = {}
    for key, value in state_dict.items():
        if key.startswith("decoder."):
            new = key.removeprefix("decoder.")
        elif key.startswith("backbone.model."):
            new = to_efficientnet_pytorch(key.removeprefix("backbone.model."), positions)
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
    state_dict = read_state_dict(path, "state_dict", "LAA-Net", trusted=trusted)
    model = LAANet(**(AUTHORS_CONFIG | overrides))
    return load_exactly(model, state_dict, authors_to_dfbench, path, "LAA-Net")


def write_checkpoint(
    source: str | Path, out: str | Path, *, trusted: bool = False
) -> tuple[Path, int]:
    """Convert the authors' ``.pth`` into a Lightning checkpoint ``dfbench test`` takes.

    See :func:`~src.checkpoint_files.write_detector_checkpoint`.

    Args:
        source: the authors' released file.
        out: the checkpoint to write.
        trusted: see :func:`load_authors_checkpoint`.

    Returns:
        The written path and the number of tensors it holds.
    """
    return write_detector_checkpoint(load_authors_checkpoint(source, trusted=trusted), out)
