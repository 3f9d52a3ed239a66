"""Forgery localisation module (FLM) with cross-level attentional fusion (CLAFFM).

The local-similarity Y-net decodes a pixel mask from its encoder, U-Net style:
each level up-samples the previous decoder feature to the size of an encoder
feature (skip connection), concatenates the two on channels and convolves.
Between consecutive decoder levels, the CLAFFM gates the channels of the
current level A with weights computed from the previous, lower-resolution
level B: adaptive average pooling of B to ``pool_size`` x ``pool_size``, a
convolution with a kernel of that size (so the result is 1 x 1), an
activation, a 1 x 1 convolution to A's channel count and a sigmoid; the output
is ``A * weights``. A squeeze-excitation gate driven by the other level.

Choices the paper leaves open (documented parameters): the pooling is an
average; ``pool_size`` 4 (the paper's 4 x 4 convolution then sees the whole
pooled map); the hidden width of the gate is A's channels / ``reduction``
(4); each level is two 3 x 3 conv + BN + ReLU; the last level's one-channel
logit is up-sampled bilinearly to the input size.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from src.errors import DFBenchError


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class CrossLevelAttention(nn.Module):
    """CLAFFM: channel weights for the current level A from the previous level B.

    Args:
        current_channels: channels of A (and of the weights).
        previous_channels: channels of B.
        reduction: hidden width = ``max(current_channels // reduction, 1)``.
        pool_size: B is pooled to this size, then convolved by a kernel of it.
    """

    def __init__(
        self, current_channels: int, previous_channels: int, reduction: int = 4, pool_size: int = 4
    ) -> None:
        super().__init__()
        hidden = max(current_channels // reduction, 1)
        self.pool = nn.AdaptiveAvgPool2d(pool_size)
        self.squeeze = nn.Conv2d(previous_channels, hidden, kernel_size=pool_size)
        self.activation = nn.ReLU(inplace=True)
        self.excite = nn.Conv2d(hidden, current_channels, kernel_size=1)

    def weights(self, previous: Tensor) -> Tensor:
        """(B, C_A, 1, 1) in (0, 1)."""
        hidden = self.activation(self.squeeze(self.pool(previous)))
        return torch.sigmoid(self.excite(hidden))

    def forward(self, current: Tensor, previous: Tensor) -> Tensor:
        return current * self.weights(previous)


class SkipFusionBlock(nn.Module):
    """One decoder level: up-sample to the skip's size, concatenate it, two conv-BN-ReLU.

    The size is taken from the skip rather than doubled, because Xception's
    unpadded stem makes odd sizes (224 px: 109, 55, 28, 14, 7).
    """

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        self.convs = nn.Sequential(
            conv_bn_relu(in_channels + skip_channels, out_channels),
            conv_bn_relu(out_channels, out_channels),
        )

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.convs(torch.cat((x, skip), dim=1))


class ForgeryLocalisation(nn.Module):
    """FLM: a chain of :class:`SkipFusionBlock` levels gated by :class:`CrossLevelAttention`.

    Args:
        bottom_channels: channels of the deepest encoder feature, where decoding starts.
        skip_channels: channels of the encoder skips, deepest first.
        widths: output channels of each level (one per skip).
        use_attention: the CLAFFM gates (False: plain U-Net skips).
        reduction, pool_size: of the gates.

    ``forward(bottom, skips, output_size)`` returns the mask logit
    (B, 1, *output_size) and the last level's feature map (the classifier's input).
    """

    def __init__(
        self,
        bottom_channels: int,
        skip_channels: Sequence[int],
        widths: Sequence[int],
        use_attention: bool = True,
        reduction: int = 4,
        pool_size: int = 4,
    ) -> None:
        super().__init__()
        if len(skip_channels) != len(widths) or not widths:
            raise DFBenchError(
                f"FLM needs one width per skip: {len(skip_channels)} skips, {len(widths)} widths"
            )
        inputs = [bottom_channels, *widths[:-1]]
        self.blocks = nn.ModuleList(
            SkipFusionBlock(i, s, w) for i, s, w in zip(inputs, skip_channels, widths, strict=True)
        )
        self.gates = (
            nn.ModuleList(
                CrossLevelAttention(w, i, reduction, pool_size)
                for i, w in zip(inputs, widths, strict=True)
            )
            if use_attention
            else None
        )
        self.mask_head = nn.Conv2d(widths[-1], 1, kernel_size=1)
        self.out_channels = widths[-1]

    def forward(
        self, bottom: Tensor, skips: Sequence[Tensor], output_size: tuple[int, int]
    ) -> tuple[Tensor, Tensor]:
        if len(skips) != len(self.blocks):
            raise ValueError(f"FLM expects {len(self.blocks)} skip features, got {len(skips)}")
        previous = bottom
        for level, (block, skip) in enumerate(zip(self.blocks, skips, strict=True)):
            current = block(previous, skip)
            if self.gates is not None:
                current = self.gates[level](current, previous)
            previous = current
        mask = F.interpolate(
            self.mask_head(previous), size=output_size, mode="bilinear", align_corners=False
        )
        return mask, previous
