"""Sharpness-Aware Minimisation (Foret et al., ICLR 2021) around any base optimiser.

A step climbs to the worst point within an L2 ball of radius ``rho`` around
the weights (``w + rho * g / ||g||``), takes the gradient there, comes back and
lets the base optimiser step with it. :meth:`SAM.climb` uses the gradients of
the first backward pass; :meth:`SAM.descend` restores the weights, after the
second backward pass and before the base step. The climb direction does not
depend on a loss scale, so fp16 loss scaling needs no unscaling here.
"""

from __future__ import annotations

import torch
from torch import Tensor


class SAM:
    """SAM bookkeeping over the parameters of a base optimiser.

    Args:
        optimizer: the base optimiser (LAA-Net: Adam with weight decay 1e-4).
        rho: radius of the neighbourhood.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, rho: float = 0.05) -> None:
        if rho <= 0:
            raise ValueError(f"SAM's rho must be positive, got {rho}")
        self.optimizer = optimizer
        self.rho = rho
        self._offsets: dict[Tensor, Tensor] = {}

    def _params(self) -> list[Tensor]:
        return [
            p
            for group in self.optimizer.param_groups
            for p in group["params"]
            if p.grad is not None
        ]

    @torch.no_grad()
    def climb(self) -> None:
        params = self._params()
        if not params:
            return
        norm = torch.linalg.vector_norm(
            torch.stack([torch.linalg.vector_norm(p.grad.float()) for p in params])
        )
        scale = self.rho / (norm + 1e-12)
        for p in params:
            offset = (p.grad.float() * scale).to(p.dtype)
            p.add_(offset)
            self._offsets[p] = offset

    @torch.no_grad()
    def descend(self) -> None:
        for p, offset in self._offsets.items():
            p.sub_(offset)
        self._offsets.clear()
