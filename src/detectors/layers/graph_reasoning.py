"""RECCE's multi-scale graph reasoning: each coarse position attends to its finer neighbours.

A bipartite graph joins every position of a coarse encoder map to the
``ratio x ratio`` positions it covers in a finer decoder map. Each branch
embeds those neighbours, scores them against the coarse position's own
embedding, aggregates them with a softmax over the neighbours and gates the
result per channel. All positions are computed at once (unfold + einsum); the
authors' code loops over the positions in Python, which gives the same numbers
much more slowly.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from src.errors import DFBenchError


def _embedding(in_features: int, width: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(in_features, width, bias=False),
        nn.ReLU(inplace=True),
        nn.Linear(width, width, bias=False),
    )


class NeighbourAttention(nn.Module):
    """One scale of the graph: aggregate a finer map's neighbours into each coarse position.

    For coarse position n with embedding ``q_n`` and its neighbours' embeddings
    ``v_nk`` (k over the ``ratio^2`` positions it covers)::

        a_nk = softmax_k(ReLU(W [q_n; v_nk]))
        out_n = (1 - sigmoid(G x_n)) * sum_k a_nk v_nk

    ``W`` is one linear layer on the concatenation, as the authors write it; it
    is applied as ``W_q q_n + W_v v_nk`` (the same product) so that the
    concatenation is never built for every neighbour. ``G`` is a 1x1 convolution
    of the raw coarse feature ``x``: the gate lets the coarse map decide how much
    of the finer scale to admit, channel by channel.

    Args:
        coarse_channels: channels of the coarse map (gate input).
        fine_channels: channels of the finer map.
        ratio: finer size / coarse size (2 for the decoder's stage 2, 4 for stage 4).
        width: embedding width (queries, neighbours and gates share it).
    """

    def __init__(self, coarse_channels: int, fine_channels: int, ratio: int, width: int) -> None:
        super().__init__()
        self.ratio = ratio
        self.width = width
        self.embed = _embedding(fine_channels, width)
        self.score = nn.Linear(2 * width, 1, bias=False)
        self.gate = nn.Conv2d(coarse_channels, width, kernel_size=1, bias=False)

    def neighbours(self, fine: Tensor, coarse_size: tuple[int, int]) -> Tensor:
        """The finer map as (B, N, ratio^2, C): each coarse position's block of neighbours."""
        b, c, height, width = fine.shape
        expected = (coarse_size[0] * self.ratio, coarse_size[1] * self.ratio)
        if (height, width) != expected:
            raise DFBenchError(
                f"graph reasoning: a finer map of {height}x{width} does not tile a "
                f"{coarse_size[0]}x{coarse_size[1]} map with ratio {self.ratio} "
                f"(expected {expected[0]}x{expected[1]})"
            )
        blocks = F.unfold(fine, kernel_size=self.ratio, stride=self.ratio)  # (B, C*r*r, N)
        return blocks.view(b, c, self.ratio**2, -1).permute(0, 3, 2, 1)

    def forward(self, coarse: Tensor, query: Tensor, fine: Tensor) -> Tensor:
        """coarse (B, Ca, h, w), query (B, h*w, width), fine (B, Cf, h*r, w*r) -> (B, h*w, width)."""
        values = self.embed(self.neighbours(fine, coarse.shape[-2:]))  # (B, N, K, width)
        weight_query, weight_value = self.score.weight.split(self.width, dim=1)
        scores = (query @ weight_query.T).unsqueeze(2) + values @ weight_value.T  # (B, N, K, 1)
        attention = F.relu(scores.squeeze(3)).softmax(dim=2)
        aggregated = torch.einsum("bnk,bnkc->bnc", attention, values)
        gate = 1 - torch.sigmoid(self.gate(coarse)).flatten(2).transpose(1, 2)
        return aggregated * gate


class MultiScaleGraphReasoning(nn.Module):
    """RECCE's graph reasoning over one coarse and several finer maps; returns a residual.

    The coarse map is embedded by 1x1 convolutions (the queries); each finer map
    feeds a :class:`NeighbourAttention` branch; ``sigmoid`` of the concatenation
    ``[branch outputs..., queries]`` is re-projected to the coarse map's channels
    by two 1x1 convolutions and dropout. The caller adds the result to the coarse
    map (``fusion = reasoning + coarse``).

    Args:
        channels: coarse map channels (728: Xception's block7).
        fine_channels: channels of the finer maps (256, 128: decoder stages 2 and 4).
        ratios: their size relative to the coarse map (2, 4).
        width: embedding width (256).
        drop_rate: dropout after the re-projection.
    """

    def __init__(
        self,
        channels: int = 728,
        fine_channels: Sequence[int] = (256, 128),
        ratios: Sequence[int] = (2, 4),
        width: int = 256,
        drop_rate: float = 0.2,
    ) -> None:
        super().__init__()
        if len(fine_channels) != len(ratios):
            raise DFBenchError(
                f"graph reasoning: {len(fine_channels)} fine_channels but {len(ratios)} ratios"
            )
        self.query = nn.Sequential(
            nn.Conv2d(channels, width, kernel_size=1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, kernel_size=1, bias=False),
        )
        self.branches = nn.ModuleList(
            NeighbourAttention(channels, fine, ratio, width)
            for fine, ratio in zip(fine_channels, ratios, strict=True)
        )
        self.reproject = nn.Sequential(
            nn.Conv2d(width * (len(ratios) + 1), channels, kernel_size=1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, kernel_size=1, bias=False),
            nn.Dropout(drop_rate),
        )

    def forward(self, coarse: Tensor, *fine: Tensor) -> Tensor:
        if len(fine) != len(self.branches):
            raise DFBenchError(
                f"graph reasoning takes {len(self.branches)} finer maps, got {len(fine)}"
            )
        b, _, h, w = coarse.shape
        query = self.query(coarse).flatten(2).transpose(1, 2)  # (B, N, width)
        nodes = [branch(coarse, query, f) for branch, f in zip(self.branches, fine, strict=True)]
        nodes = torch.sigmoid(torch.cat([*nodes, query], dim=2))
        # Contiguous, not the channels-last view the transpose gives: the convolutions would
        # keep that layout and the dropout draw its mask in another order than for a
        # contiguous map, so the same seed would drop other positions than the authors' code.
        return self.reproject(nodes.transpose(1, 2).reshape(b, -1, h, w).contiguous())
