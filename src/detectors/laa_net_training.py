"""LAA-Net's training recipe (paper Section 4.1), as a mixin of :class:`~src.detectors.laa_net.LAANet`.

* SAM around Adam (rho 0.05, weight decay 1e-4): two forward/backward passes
  per step, with Lightning's manual optimisation (works with mixed precision
  and DDP); ``sam=False`` trains with plain Adam.
* Learning rate: linear from 5e-5 to 2e-4 over the first quarter of the
  steps, then linear to 0.
* The backbone is frozen for the first ``freeze_epochs`` (6) epochs. Its
  gradients are dropped rather than ``requires_grad`` switched off, because
  DDP registers its hooks only once.

An ``optimizer`` or ``lr_scheduler`` given in the config replaces these defaults.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from src.detectors.optim import SAM


class LAANetTraining:
    """Mixin: SAM, the warm-up/decay schedule and the backbone freeze.

    Args:
        sam: use SAM (two passes per step).
        sam_rho: SAM's radius.
        lr: peak learning rate.
        warmup_lr: learning rate at the first step.
        weight_decay: Adam's weight decay.
        freeze_epochs: epochs with a frozen backbone.
        **kwargs: :class:`~src.detectors.base.Detector` arguments.
    """

    def __init__(
        self,
        sam: bool = True,
        sam_rho: float = 0.05,
        lr: float = 2e-4,
        warmup_lr: float = 5e-5,
        weight_decay: float = 1e-4,
        freeze_epochs: int = 6,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.use_sam = sam
        self.sam_rho = sam_rho
        self.lr = lr
        self.warmup_lr = warmup_lr
        self.weight_decay = weight_decay
        self.freeze_epochs = freeze_epochs
        self.automatic_optimization = not sam

    def default_optimizer(self, params: Any) -> torch.optim.Optimizer:
        return torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)

    def lr_factor(self, step: int, total: int) -> float:
        """Multiplier of ``lr`` at ``step`` of ``total``: warm-up over a quarter, then linear decay."""
        warm = max(total // 4, 1)
        start = self.warmup_lr / self.lr
        if step < warm:
            return start + (1 - start) * step / warm
        return max(0.0, 1 - (step - warm) / max(total - warm, 1))

    def default_lr_scheduler(self, optimizer: torch.optim.Optimizer) -> Any:
        if getattr(self, "_trainer", None) is None:
            return None  # the schedule needs the run's length, which only a Trainer knows
        self.scheduler_interval = "step"
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: self.lr_factor(step, total)
        )

    @property
    def backbone_frozen(self) -> bool:
        return self.current_epoch < self.freeze_epochs

    def on_after_backward(self) -> None:
        if self.backbone_frozen:
            for p in self.backbone_parameters():
                p.grad = None

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        if not self.use_sam:
            return super().training_step(batch, batch_idx)
        optimizer = self.optimizers()
        sam = SAM(optimizer.optimizer, self.sam_rho)
        losses = self.loss(self(batch["image"]), batch)
        optimizer.zero_grad()
        self.manual_backward(losses["loss"])
        self.on_after_backward()
        sam.climb()
        optimizer.zero_grad()
        self.manual_backward(self.loss(self(batch["image"]), batch)["loss"])
        self.on_after_backward()
        sam.descend()
        optimizer.step()
        scheduler = self.lr_schedulers()
        if scheduler is not None and self.scheduler_interval == "step":
            scheduler.step()
        self._log_losses("train", losses, batch["image"].shape[0])
        return losses["loss"].detach()

    def on_train_epoch_end(self) -> None:
        scheduler = self.lr_schedulers() if self.use_sam else None
        if scheduler is not None and self.scheduler_interval == "epoch":
            scheduler.step()
