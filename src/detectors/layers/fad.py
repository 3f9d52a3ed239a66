"""F3-Net's Frequency-Aware Decomposition (FAD): an image split into frequency bands.

Qian et al., "Thinking in Frequency: Face Forgery Detection by Mining
Frequency-aware Clues" (ECCV 2020), Sec. 3.1. Forgery traces that are faint in
RGB (compression, up-sampling) separate by frequency, so the image is
decomposed into bands and the backbone sees all of them as channels:

    y_i = D^T [ (D x D^T) * (f_base_i + 2 sigmoid(w_i) - 1) ] D,   i = 1..4

with D the orthonormal DCT-II matrix of the (square) image side s, applied to the
whole image per colour channel (a full-image DCT as two matrix products), and
f_base_i a fixed mask over the DCT index sum i + j:

====  ========================  ================================
band  index sum i + j           share of the spectrum (paper)
====  ========================  ================================
low   [0, floor(s / 2.82)]      about 1/16
mid   [floor(s / 2.82), s // 2] about 1/16 to 1/8
high  [s // 2, 2 s]             the rest
all   [0, 2 s]                  everything
====  ========================  ================================

Both ends are inside a band (the authors' code), so neighbouring bands share
their boundary diagonal. The learnable part ``2 sigmoid(w) - 1`` lies in
(-1, 1) and starts near 0 (w ~ N(0, 0.1)). Three colour channels times four
bands make 12 output channels, ordered band by band (low RGB, mid RGB, ...).

The fixed masks and the DCT matrices are buffers; the authors store them as
frozen parameters, which is how their model reaches about 21.7 M "parameters".
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from src.errors import DFBenchError


def dct_matrix(size: int) -> Tensor:
    """The orthonormal DCT-II matrix: ``D[k, n] = c_k cos(pi (n + 0.5) k / size)``."""
    k = torch.arange(size, dtype=torch.float64).unsqueeze(1)
    n = torch.arange(size, dtype=torch.float64).unsqueeze(0)
    scale = torch.full((size, 1), math.sqrt(2.0 / size), dtype=torch.float64)
    scale[0] = math.sqrt(1.0 / size)
    return (scale * torch.cos(math.pi * (n + 0.5) * k / size)).float()


def band_mask(size: int, low: float, high: float) -> Tensor:
    """1 where the DCT index sum ``i + j`` lies in [low, high], else 0 (size x size)."""
    index = torch.arange(size)
    total = index.unsqueeze(1) + index.unsqueeze(0)
    return ((total >= low) & (total <= high)).float()


def f3net_bands(size: int) -> dict[str, tuple[float, float]]:
    """F3-Net's four bands (index-sum ranges) for an image side of ``size``."""
    return {
        "low": (0, math.floor(size / 2.82)),
        "mid": (math.floor(size / 2.82), size // 2),
        "high": (size // 2, 2 * size),
        "all": (0, 2 * size),
    }


class BandFilter(nn.Module):
    """A fixed band mask plus an optional learnable offset ``2 sigmoid(w) - 1``.

    Args:
        size: image side.
        low, high: the band's index-sum range (both ends included).
        learnable: add the learnable part (F3-Net does).
        init_std: standard deviation of the initial ``w``.
    """

    def __init__(
        self, size: int, low: float, high: float, learnable: bool = True, init_std: float = 0.1
    ) -> None:
        super().__init__()
        self.register_buffer("base", band_mask(size, low, high))
        self.weight = nn.Parameter(torch.randn(size, size) * init_std) if learnable else None

    def response(self) -> Tensor:
        """The filter the spectrum is multiplied by."""
        if self.weight is None:
            return self.base
        return self.base + 2 * torch.sigmoid(self.weight) - 1

    def forward(self, spectrum: Tensor) -> Tensor:
        return spectrum * self.response()


class FrequencyAwareDecomposition(nn.Module):
    """FAD: (B, C, s, s) images -> (B, 4 C, s, s) band-passed images.

    Args:
        size: the image side the DCT is built for (inputs must match it).
        learnable: learnable band offsets (F3-Net: yes).
    """

    def __init__(self, size: int, learnable: bool = True) -> None:
        super().__init__()
        self.size = int(size)
        self.register_buffer("dct", dct_matrix(self.size))
        self.bands = nn.ModuleDict(
            {
                name: BandFilter(self.size, low, high, learnable)
                for name, (low, high) in f3net_bands(self.size).items()
            }
        )

    def spectrum(self, images: Tensor) -> Tensor:
        """Full-image DCT of every channel: ``D x D^T``."""
        return self.dct @ images @ self.dct.T

    def inverse(self, spectrum: Tensor) -> Tensor:
        """Inverse DCT: ``D^T X D`` (D is orthonormal)."""
        return self.dct.T @ spectrum @ self.dct

    def forward(self, images: Tensor) -> Tensor:
        if images.shape[-2:] != (self.size, self.size):
            raise DFBenchError(
                f"FAD was built for {self.size} x {self.size} images, got "
                f"{tuple(images.shape[-2:])}; set the detector's input_size to the size it is fed"
            )
        spectrum = self.spectrum(images)
        return torch.cat([self.inverse(band(spectrum)) for band in self.bands.values()], dim=1)
