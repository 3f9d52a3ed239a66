"""HRNetV2's representation head: every resolution up-sampled to the highest, concatenated, 1 x 1 convs.

HRNetV2 (Sun et al., "High-Resolution Representations for Labeling Pixels and
Regions", 2019) keeps four parallel branches at 1/4, 1/8, 1/16 and 1/32 of
the input. For dense prediction it up-samples the lower three bilinearly to
the 1/4 branch's size, concatenates all four on channels (48 + 96 + 192 + 384
= 720 for W48) and predicts with a 1 x 1 conv + BN + ReLU followed by a
1 x 1 conv (its segmentation head's ``last_layer``). Face X-ray predicts its
X-ray this way.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def upsample_concat(features: Sequence[Tensor]) -> Tensor:
    """Feature maps (B, C_i, h_i, w_i) up-sampled bilinearly to the first one's size, concatenated."""
    size = features[0].shape[-2:]
    resized = [
        f if f.shape[-2:] == size else F.interpolate(f, size, mode="bilinear", align_corners=False)
        for f in features
    ]
    return torch.cat(resized, dim=1)


class MultiResolutionHead(nn.Module):
    """Concatenated multi-resolution features -> ``out_channels`` maps at the finest resolution.

    Args:
        in_channels: channels of each input feature (their sum is the concatenation's width).
        hidden_channels: width of the 1 x 1 conv + BN + ReLU (None: the concatenation's).
        out_channels: maps predicted by the last 1 x 1 conv.

    ``forward(features)`` takes the maps finest first and returns (B, out_channels, h_0, w_0).
    """

    def __init__(
        self, in_channels: Sequence[int], hidden_channels: int | None = None, out_channels: int = 1
    ) -> None:
        super().__init__()
        width = sum(in_channels)
        hidden = width if hidden_channels is None else hidden_channels
        self.fuse = nn.Sequential(
            nn.Conv2d(width, hidden, kernel_size=1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
        )
        self.predict = nn.Conv2d(hidden, out_channels, kernel_size=1)

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        return self.predict(self.fuse(upsample_concat(features)))
