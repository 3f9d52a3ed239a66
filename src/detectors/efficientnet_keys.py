"""Tensor names of ``efficientnet_pytorch`` EfficientNets in timm's layout, and back.

Authors who build on Luke Melas-Kyriazi's ``efficientnet_pytorch`` (LAA-Net,
SBI) save their backbone under its names; dfbench runs timm's ``tf_``
EfficientNets, the same network with other names:

=========================  ======================================================
efficientnet_pytorch       timm
=========================  ======================================================
``_conv_stem`` / ``_bn0``  ``conv_stem`` / ``bn1``
``_conv_head`` / ``_bn1``  ``conv_head`` / ``bn2``
``_blocks.N.*``            ``blocks.S.B.*`` (N counts blocks over the stages)
``_expand_conv`` ``_bn0``  ``conv_pw`` ``bn1`` (blocks with an expansion)
``_depthwise_conv``        ``conv_dw``, its BN ``_bn1`` -> ``bn2`` (``bn1`` in stage 0)
``_se_reduce/_se_expand``  ``se.conv_reduce`` / ``se.conv_expand``
``_project_conv`` ``_bn2``  ``conv_pwl`` ``bn3`` (``conv_pw`` ``bn2`` in stage 0)
=========================  ======================================================

Stage 0's blocks have no expansion (timm's ``DepthwiseSeparableConv``); which
blocks are which is read from the timm model (:func:`block_positions`), so
any EfficientNet width and depth works. The classifier (``_fc``) is not
renamed here: each importer maps its own head.
"""

from __future__ import annotations

from torch import nn

#: One flat block index -> (stage, index in the stage, has an expansion).
BlockPositions = list[tuple[int, int, bool]]

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


def block_positions(blocks: nn.Module) -> BlockPositions:
    """(stage, block, has an expansion) for every flat block index of timm's ``model.blocks``."""
    positions = []
    for stage, stage_blocks in enumerate(blocks):
        for index, block in enumerate(stage_blocks):
            positions.append((stage, index, hasattr(block, "conv_pwl")))
    return positions


def to_timm(key: str, positions: BlockPositions) -> str:
    """An ``efficientnet_pytorch`` backbone tensor name in timm's layout.

    Raises:
        KeyError: ``key`` is not a backbone tensor name of efficientnet_pytorch.
        IndexError: a block index beyond the timm model's blocks.
    """
    parts = key.split(".")
    if parts[0] in _TOP:
        return ".".join([_TOP[parts[0]], *parts[1:]])
    if parts[0] != "_blocks" or len(parts) < 4:
        raise KeyError(key)
    stage, index, inverted = positions[int(parts[1])]
    names = _INVERTED_RESIDUAL if inverted else _DEPTHWISE_SEPARABLE
    return ".".join(["blocks", str(stage), str(index), names[parts[2]], *parts[3:]])


def to_efficientnet_pytorch(key: str, positions: BlockPositions) -> str:
    """The inverse of :func:`to_timm`: a timm backbone tensor name in efficientnet_pytorch's."""
    parts = key.split(".")
    if parts[0] != "blocks":
        inverse_top = {v: k for k, v in _TOP.items()}
        return ".".join([inverse_top[parts[0]], *parts[1:]])
    stage, index = int(parts[1]), int(parts[2])
    flat = {(s, i): n for n, (s, i, _) in enumerate(positions)}[(stage, index)]
    names = _INVERTED_RESIDUAL if positions[flat][2] else _DEPTHWISE_SEPARABLE
    back = {v: k for k, v in names.items()}
    # The squeeze-excitation layers are two levels deep in timm (se.conv_reduce).
    depth = 2 if parts[3] == "se" else 1
    layer = ".".join(parts[3 : 3 + depth])
    return ".".join(["_blocks", str(flat), back[layer], *parts[3 + depth :]])
