"""Learnable local similarity module (LLSM) of the local-similarity Y-net.

The paper compares every ordered pair of local features (F_i, F_j) of an
encoder feature map F (C x H x W, HW positions) with a shallow ConvNet whose
single kernel has size 2 x 1 x C: the two C-vectors are stacked into a 2 x 1
"image" with C channels and convolved, giving one logit per pair, an
(HW) x (HW) map.

A 2 x 1 kernel (rows w_1, w_2, bias b) over the stacked pair computes
``w_1 . F_i + w_2 . F_j + b``, a sum of one term that depends only on i and
one that depends only on j. The whole map is therefore the *outer sum* of two
1 x 1 projections of F, which costs O(HW C + (HW)^2) memory instead of the
(HW)^2 C of materialising every pair (0.71 GiB per sample at 19 x 19 x 728,
kept for the backward pass), and gives the same values. The parameters are
stored as that very 2 x 1 convolution, so the pairwise form
(:meth:`LearnableLocalSimilarity.forward_pairwise`) runs on the same weights.

A wider module (``width`` K > 1: K kernels, an activation, a 1 x 1 conv to one
logit) decomposes the same way up to the activation, and costs K (HW)^2.

Orientation: the target is 1 where exactly one position of the pair was
manipulated, so a high logit means *mixed sources* (dissimilar); the paper
calls the map a similarity map but supervises it this way. Positions are
flattened row-major (index ``i * W + j``; the paper writes ``i * H + j`` for
its square maps).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from src.errors import DFBenchError


class LearnableLocalSimilarity(nn.Module):
    """Pairwise logits (B, HW, HW) from features (B, C, H, W), by the outer-sum form.

    Args:
        in_channels: C, channels of the tapped feature.
        width: K, kernels of the pair convolution (1 = the paper's single kernel).
            With K > 1 an activation and a 1 x 1 conv reduce the K maps to one.
        activation: the nonlinearity between the K maps and the 1 x 1 conv
            (K > 1 only; ReLU by default, the paper's module has none).
    """

    def __init__(
        self, in_channels: int, width: int = 1, activation: nn.Module | None = None
    ) -> None:
        super().__init__()
        if width < 1:
            raise DFBenchError(f"LLSM width must be at least 1, got {width}")
        self.width = width
        self.pair_conv = nn.Conv2d(in_channels, width, kernel_size=(2, 1))
        self.activation = (activation or nn.ReLU()) if width > 1 else None
        self.mix = nn.Conv2d(width, 1, kernel_size=1) if width > 1 else None

    def _reduce(self, pairs: Tensor) -> Tensor:
        """(B, K, N, N) pair responses -> (B, N, N) logits."""
        if self.mix is None:
            return pairs[:, 0]
        return self.mix(self.activation(pairs))[:, 0]

    def forward(self, features: Tensor) -> Tensor:
        flat = features.flatten(2)  # (B, C, N)
        kernel = self.pair_conv.weight  # (K, C, 2, 1): row 0 meets F_i, row 1 meets F_j
        first = torch.einsum("kc,bcn->bkn", kernel[:, :, 0, 0], flat)
        first = first + self.pair_conv.bias.view(1, -1, 1)
        second = torch.einsum("kc,bcn->bkn", kernel[:, :, 1, 0], flat)
        return self._reduce(first.unsqueeze(-1) + second.unsqueeze(-2))

    def forward_pairwise(self, features: Tensor) -> Tensor:
        """The paper's literal form: every pair stacked and convolved ((HW)^2 C memory).

        Kept for the equivalence test and the memory benchmark; never used in training.
        """
        flat = features.flatten(2).transpose(1, 2)  # (B, N, C)
        b, n, c = flat.shape
        stacked = torch.stack(
            (flat.unsqueeze(2).expand(b, n, n, c), flat.unsqueeze(1).expand(b, n, n, c)), dim=-1
        )  # (B, N, N, C, 2): pair (i, j) with F_i in row 0
        responses = self.pair_conv(stacked.reshape(b * n * n, c, 2, 1))  # (B N N, K, 1, 1)
        pairs = responses.view(b, n, n, self.width).permute(0, 3, 1, 2)
        return self._reduce(pairs)
