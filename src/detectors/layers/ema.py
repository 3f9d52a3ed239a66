"""Efficient Multi-scale Attention (EMA; Ouyang et al., ICASSP 2023), PANet's coarse attention."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from src.errors import DFBenchError


class EfficientMultiScaleAttention(nn.Module):
    """Re-weights every position of a feature map from two parallel branches per channel group.

    The channels are split into ``groups`` groups of ``cg = C / groups`` that are
    processed as separate samples (the groups share weights), which keeps the
    module cheap: ``10 cg^2 + 4 cg`` parameters whatever the group count.

    Per group ``g`` (cg x H x W):

    * 1x1 branch: ``g`` averaged along W (a column, H x 1) and along H (a row,
      1 x W) go through one shared 1x1 convolution (concatenated along the
      height so one convolution serves both), each gets a sigmoid, and their
      outer product gates ``g``; a GroupNorm with one group per channel follows.
      This is coordinate attention without a channel reduction.
    * 3x3 branch: a 3x3 convolution of ``g`` (local context, larger field).
    * Cross-spatial learning: each branch's globally pooled channel vector,
      softmaxed over the channels, weights the *other* branch's map; the sum of
      the two gives one spatial weight map ``w`` (1 x H x W) per group, and the
      output is ``g * sigmoid(w)``.

    The output has the input's shape, so the module can sit anywhere in a network.

    Args:
        channels: input channels C; must be divisible by ``groups``.
        groups: the paper's "factor" G (PANet uses 8).
    """

    def __init__(self, channels: int, groups: int = 8) -> None:
        super().__init__()
        if groups < 1 or channels % groups:
            raise DFBenchError(
                f"EMA groups={groups} must divide channels={channels} "
                f"(choose a divisor of {channels}, e.g. 8 for 728)"
            )
        self.groups = groups
        width = channels // groups
        self.coordinate_conv = nn.Conv2d(width, width, kernel_size=1)
        self.local_conv = nn.Conv2d(width, width, kernel_size=3, padding=1)
        self.norm = nn.GroupNorm(width, width)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        grouped = x.reshape(b * self.groups, c // self.groups, h, w)
        column = grouped.mean(dim=3, keepdim=True)  # (n, cg, H, 1)
        row = grouped.mean(dim=2, keepdim=True).transpose(2, 3)  # (n, cg, W, 1)
        mixed = self.coordinate_conv(torch.cat([column, row], dim=2))
        column, row = mixed.split([h, w], dim=2)
        coordinate = self.norm(grouped * column.sigmoid() * row.transpose(2, 3).sigmoid())
        local = self.local_conv(grouped)

        def channel_weights(branch: Tensor) -> Tensor:  # (n, 1, cg), softmax over channels
            return branch.mean(dim=(2, 3)).softmax(dim=1).unsqueeze(1)

        # Each branch's channel descriptor pools the other branch's map: (n, 1, H*W).
        weights = channel_weights(coordinate) @ local.flatten(2)
        weights = weights + channel_weights(local) @ coordinate.flatten(2)
        gated = grouped * weights.view(b * self.groups, 1, h, w).sigmoid()
        return gated.reshape(b, c, h, w)
