"""Training recipes every detector can take from YAML: SAM, warm-up/decay, backbone freezing.

They are constructor arguments of :class:`~src.detectors.base.Detector`, so any
detector config can switch them on without code::

    model:
      init_args:
        sam_rho: 0.05                    # SAM around the configured optimiser (null: off)
        sam_adaptive: false              # ASAM's scale-invariant neighbourhood
        freeze_backbone_epochs: 6        # backbone gradients dropped for the first 6 epochs
        optimizer: {class_path: torch.optim.Adam, init_args: {lr: 2.0e-4, weight_decay: 1.0e-4}}
        lr_scheduler:
          class_path: src.detectors.training.WarmupDecay
          init_args: {warmup_fraction: 0.25, start_factor: 0.25}

* **SAM** (Foret et al., ICLR 2021): each step climbs to the worst point within
  an L2 ball of radius ``rho`` (``w + rho g / ||g||``; adaptive: ``w + rho
  w^2 g / ||w g||``, Kwon et al. 2021), takes the gradient there, comes back
  and lets the base optimiser step with it: two forward/backward passes per
  step, with Lightning's manual optimisation (mixed precision and DDP work).
  A step whose gradients are not finite (an fp16 overflow) skips both passes
  and leaves the weights untouched; under a gradient scaler the step is still
  handed to the scaler, which skips it and lowers its scale.
* **WarmupDecay**: the learning rate ramps linearly from ``start_factor x lr``
  to ``lr`` over the first ``warmup_fraction`` of the run's optimiser steps,
  then falls linearly to ``end_factor x lr`` (LAA-Net: 5e-5 -> 2e-4 over a
  quarter, then to 0). The run's length comes from the Trainer.
* **LinearDecay**: the learning rate stays at ``lr`` for the first
  ``decay_start`` of the run, then falls linearly towards ``end_factor x lr``
  (SBI's ``LinearDecayLR``: constant for 75 of 100 epochs, then 0.96, 0.92 ...
  0.04 times lr). ``levels`` cuts the run into that many equal parts with one
  learning rate each (SBI's per-epoch schedule: 100); without it the rate
  changes every step.
* **Backbone freezing**: for the first N epochs the backbone's gradients are
  dropped after every backward pass (``requires_grad`` is left alone because DDP
  registers its hooks once), so the optimiser leaves those weights as they are.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor
from torch.optim.lr_scheduler import LambdaLR

from src.errors import DFBenchError


def gradients(params: Iterable[Tensor]) -> list[Tensor]:
    """The parameters among ``params`` that hold a gradient."""
    return [p for p in params if p.grad is not None]


def gradients_finite(params: Iterable[Tensor]) -> bool:
    """Whether every gradient is finite (one device sync for the whole model)."""
    grads = [p.grad for p in gradients(params)]
    if not grads:
        return True
    return bool(torch.stack([torch.isfinite(g).all() for g in grads]).all())


class SAM:
    """SAM's climb and descent around the parameters of any base optimiser.

    Args:
        rho: radius of the neighbourhood (LAA-Net: 0.05).
        adaptive: ASAM, the neighbourhood scaled by ``|w|`` (scale invariant).
    """

    def __init__(self, rho: float = 0.05, adaptive: bool = False) -> None:
        if rho <= 0:
            raise DFBenchError(f"sam_rho must be positive, got {rho}")
        self.rho = rho
        self.adaptive = adaptive
        self._origins: dict[Tensor, Tensor] = {}

    @torch.no_grad()
    def climb(self, params: Iterable[Tensor]) -> None:
        """Move each parameter with a gradient to the worst point of the neighbourhood.

        The direction does not depend on a loss scale, so scaled fp16 gradients need no unscaling.
        """
        params = gradients(params)
        if not params:
            return
        scaled = [p.grad.float() * (p.float().abs() if self.adaptive else 1.0) for p in params]
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in scaled]))
        factor = self.rho / (norm + 1e-12)
        for p, g in zip(params, scaled, strict=True):
            offset = g * factor
            if self.adaptive:
                offset = offset * p.float().abs()
            # The origin is copied, not recomputed as (w + e) - e, so coming back is exact.
            self._origins[p] = p.detach().clone()
            p.add_(offset.to(p.dtype))

    @torch.no_grad()
    def descend(self) -> None:
        """Return every parameter exactly to where :meth:`climb` found it."""
        for p, origin in self._origins.items():
            p.copy_(origin)
        self._origins.clear()


def sam_training_step(module: Any, batch: dict[str, Tensor], sam: SAM) -> dict[str, Tensor]:
    """One SAM step of a detector under manual optimisation; returns the first pass's losses.

    ``on_after_backward`` fires once per backward pass (Lightning calls it from
    ``manual_backward``), which is where backbone freezing drops gradients.
    """
    optimizer = module.optimizers()
    params = [p for group in optimizer.optimizer.param_groups for p in group["params"]]
    losses = module.loss(module.step_forward(batch), batch)
    optimizer.zero_grad()
    module.manual_backward(losses["loss"])
    finite = gradients_finite(params)
    if finite:
        sam.climb(params)
        optimizer.zero_grad()
        module.manual_backward(module.loss(module.step_forward(batch), batch)["loss"])
        sam.descend()
        finite = gradients_finite(params)
    scaler = getattr(module.trainer.precision_plugin, "scaler", None)
    if finite or scaler is not None:
        # With a scaler the step goes through it even when not finite: it skips the
        # update and backs its scale off.
        optimizer.step()
    else:
        optimizer.zero_grad()
    module.log(
        "train/skipped_steps", float(not finite), on_step=False, on_epoch=True, reduce_fx="sum"
    )
    scheduler = module.lr_schedulers()
    if scheduler is not None and module.scheduler_interval == "step":
        scheduler.step()
    return losses


class WarmupDecay(LambdaLR):
    """Linear warm-up over the first ``warmup_fraction`` of the steps, then linear decay.

    Args:
        optimizer: the optimiser whose learning rates are the peaks.
        warmup_fraction: share of the run spent warming up.
        start_factor: learning rate at step 0, as a fraction of the peak.
        end_factor: learning rate at the last step, as a fraction of the peak.
        total_steps: the run's optimiser steps; ``None`` lets the detector fill
            it in from the Trainer (``estimated_stepping_batches``).
    """

    #: Stepped after every optimiser step, not every epoch.
    interval = "step"

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        warmup_fraction: float = 0.25,
        start_factor: float = 0.25,
        end_factor: float = 0.0,
        total_steps: int | None = None,
        last_epoch: int = -1,
    ) -> None:
        if not 0 <= warmup_fraction <= 1:
            raise DFBenchError(f"warmup_fraction must be in [0, 1], got {warmup_fraction}")
        self.warmup_fraction = warmup_fraction
        self.start_factor = start_factor
        self.end_factor = end_factor
        self.total_steps = total_steps
        super().__init__(optimizer, self.factor, last_epoch)

    def factor(self, step: int) -> float:
        """The multiplier of the peak learning rate at optimiser step ``step``."""
        total = max(int(self.total_steps or 1), 1)
        warm = max(round(total * self.warmup_fraction), 1)
        if step < warm:
            return self.start_factor + (1 - self.start_factor) * step / warm
        progress = min((step - warm) / max(total - warm, 1), 1.0)
        return 1 + (self.end_factor - 1) * progress


class LinearDecay(LambdaLR):
    """Constant learning rate, then a linear decay over the rest of the run.

    The run (the Trainer's optimiser steps) is cut into ``levels`` equal parts
    ``0 .. levels - 1``; part ``k`` trains at ``lr`` while ``k <= s`` with
    ``s = floor(levels * decay_start)``, then at
    ``lr * (1 - (1 - end_factor) * (k - s) / (levels - s))``. With ``levels =
    100`` (one part per epoch of a 100-epoch run), ``decay_start = 0.75`` and
    ``end_factor = 0`` this is SBI's ``LinearDecayLR(optimizer, 100, 75)``: lr
    for epochs 0-75, then 0.96 lr at epoch 76 down to 0.04 lr at epoch 99.

    Args:
        optimizer: the optimiser whose learning rates are the constant part's.
        decay_start: share of the run before the decay.
        end_factor: the rate the decay heads for, as a fraction of ``lr``
            (reached one part after the run ends, as SBI's schedule does).
        levels: parts of the run with one learning rate each; ``None``: one per
            optimiser step.
        total_steps: the run's optimiser steps; ``None`` lets the detector fill
            it in from the Trainer (``estimated_stepping_batches``).
    """

    #: Stepped after every optimiser step; ``levels`` makes it a staircase.
    interval = "step"

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        decay_start: float = 0.75,
        end_factor: float = 0.0,
        levels: int | None = None,
        total_steps: int | None = None,
        last_epoch: int = -1,
    ) -> None:
        if not 0 <= decay_start < 1:
            raise DFBenchError(f"decay_start must be in [0, 1), got {decay_start}")
        if levels is not None and levels < 1:
            raise DFBenchError(f"levels must be a positive number of parts, got {levels}")
        self.decay_start = decay_start
        self.end_factor = end_factor
        self.levels = levels
        self.total_steps = total_steps
        super().__init__(optimizer, self.factor, last_epoch)

    def factor(self, step: int) -> float:
        """The multiplier of ``lr`` at optimiser step ``step``."""
        total = max(int(self.total_steps or 1), 1)
        levels = self.levels or total
        level = min(step * levels // total, levels - 1)
        start = math.floor(levels * self.decay_start)
        if level <= start:
            return 1.0
        return 1 - (1 - self.end_factor) * (level - start) / (levels - start)
