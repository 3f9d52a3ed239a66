"""CBAM (Woo et al., ECCV 2018): a channel gate then a spatial gate; PANet's fine attention (SCAM)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from src.errors import DFBenchError


class ChannelGate(nn.Module):
    """Scales each channel by ``sigmoid(MLP(avg-pool) + MLP(max-pool))`` (one shared MLP).

    Both poolings are kept because the average sees the whole map and the max the
    strongest response; the MLP squeezes C to ``C // reduction`` (at least 1).
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        if reduction < 1:
            raise DFBenchError(f"CBAM reduction must be >= 1, got {reduction}")
        hidden = max(1, channels // reduction)
        self.mlp = nn.Sequential(
            nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels)
        )

    def forward(self, x: Tensor) -> Tensor:
        logits = self.mlp(x.mean(dim=(2, 3))) + self.mlp(x.amax(dim=(2, 3)))
        return x * torch.sigmoid(logits)[:, :, None, None]


class SpatialGate(nn.Module):
    """Scales each position by ``sigmoid(BN(conv7x7([max over C, mean over C])))``."""

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise DFBenchError(f"CBAM spatial kernel_size must be odd, got {kernel_size}")
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)
        self.norm = nn.BatchNorm2d(1)

    def forward(self, x: Tensor) -> Tensor:
        pooled = torch.cat([x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.norm(self.conv(pooled)))


class CBAM(nn.Module):
    """Channel gate, then spatial gate on the channel-gated map (PANet Eq. 6-8).

    Channel first, as CBAM found best: the spatial gate then sees channels that
    were already weighted. The output has the input's shape.

    Args:
        channels: input channels C.
        reduction: squeeze ratio of the channel MLP (16 in CBAM).
        kernel_size: spatial gate's convolution size (7 in CBAM).
    """

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7) -> None:
        super().__init__()
        self.channel = ChannelGate(channels, reduction)
        self.spatial = SpatialGate(kernel_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.spatial(self.channel(x))
