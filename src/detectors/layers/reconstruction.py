"""RECCE's reconstruction decoder and its reconstruction-guided attention.

The decoder learns to rebuild real faces from the encoder's embedding (its
loss sees reals only), so a large reconstruction error marks what the network
finds unlike a real face; the guided attention turns that error into a
spatial weight on the classifier's features.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from timm.models.xception import Block, SeparableConv2d
from torch import Tensor, nn


def _upsample(in_channels: int, out_channels: int) -> nn.Sequential:
    """Nearest x2, separable 3x3 convolution, BN, ReLU."""
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="nearest"),
        SeparableConv2d(in_channels, out_channels, kernel_size=3, padding=1),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class Decoded(NamedTuple):
    """The decoder's stage-2 and stage-4 maps (graph reasoning, metric loss) and the image."""

    stage2: Tensor
    stage4: Tensor
    reconstruction: Tensor


class ReconstructionDecoder(nn.Module):
    """Three x2 up-sampling stages from the encoder embedding to a tanh image at the input size.

    ``dropout -> up(C -> w0) -> Block(w0, reps 3) [stage 2] -> up(w0 -> w1) ->
    Block(w1, reps 3) [stage 4] -> up(w1 -> w2) -> conv1x1(w2 -> 3, no bias) ->
    tanh``, then bilinear resizing (corners aligned) to the input size: 19 x 19
    at 299 px becomes 152 x 152, resized to 299 x 299. Blocks are Xception's
    residual blocks of separable convolutions. tanh matches inputs normalised
    to [-1, 1] (mean = std = 0.5).

    Args:
        in_channels: embedding channels (728 at Xception's block4).
        widths: channels after each up-sampling stage.
        drop_rate: dropout on the embedding before decoding.
    """

    def __init__(
        self,
        in_channels: int = 728,
        widths: tuple[int, int, int] = (256, 128, 64),
        drop_rate: float = 0.2,
    ) -> None:
        super().__init__()
        first, second, third = widths
        self.widths = widths
        self.dropout = nn.Dropout(drop_rate)
        self.up1 = _upsample(in_channels, first)
        self.block1 = Block(first, first, reps=3)
        self.up2 = _upsample(first, second)
        self.block2 = Block(second, second, reps=3)
        self.up3 = _upsample(second, third)
        self.to_image = nn.Conv2d(third, 3, kernel_size=1, bias=False)

    def forward(self, embedding: Tensor, size: tuple[int, int]) -> Decoded:
        stage2 = self.block1(self.up1(self.dropout(embedding)))
        stage4 = self.block2(self.up2(stage2))
        image = torch.tanh(self.to_image(self.up3(stage4)))
        image = F.interpolate(image, size=tuple(size), mode="bilinear", align_corners=True)
        return Decoded(stage2, stage4, image)


class GuidedAttention(nn.Module):
    """``out = m * h(f) + dropout(f)``, m a spatial weight from ``|x - reconstruction|``.

    The residual is resized (bilinear, corners aligned) to the feature size and
    mapped to one sigmoid channel by a 3x3 and a 1x1 convolution (no biases);
    ``h`` is a 1x1 convolution with BN and ReLU. The dropout path keeps the
    original feature, so the attention adds emphasis rather than replacing it.
    ``images`` must be the clean input, not the noised encoder input.

    Args:
        channels: feature channels (728 at Xception's block8).
        drop_rate: dropout on the residual path.
    """

    def __init__(self, channels: int = 728, drop_rate: float = 0.2) -> None:
        super().__init__()
        self.weight = nn.Sequential(
            nn.Conv2d(3, 3, kernel_size=3, padding=1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(3, 1, kernel_size=1, bias=False),
            nn.Sigmoid(),
        )
        self.transform = nn.Sequential(
            nn.Conv2d(channels, channels, kernel_size=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
        )
        self.dropout = nn.Dropout(drop_rate)

    def forward(self, images: Tensor, reconstruction: Tensor, features: Tensor) -> Tensor:
        residual = (images - reconstruction).abs()
        residual = F.interpolate(
            residual, size=features.shape[-2:], mode="bilinear", align_corners=True
        )
        return self.weight(residual) * self.transform(features) + self.dropout(features)
