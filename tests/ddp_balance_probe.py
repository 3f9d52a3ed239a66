"""Run by tests/test_balance.py as a script: two CPU ranks train on an imbalanced table.

Each rank writes the labels and item indices of every training batch it saw to
``<out>/rank<r>.json``. A script rather than a test function because
``strategy="ddp"`` starts rank 1 by running the same command again.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytorch_lightning as pl
import torch

from src.data import DeepfakeDataModule


class Probe(pl.LightningModule):
    """Records what each training step receives; learns nothing."""

    def __init__(self, out: Path) -> None:
        super().__init__()
        self.out = out
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.seen: list[list] = []

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        self.seen.append(
            [self.current_epoch, batch["label"].tolist(), batch["sample_idx"].tolist()]
        )
        return self.weight.sum() * 0.0

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.0)

    def on_train_end(self) -> None:
        (self.out / f"rank{self.global_rank}.json").write_text(json.dumps(self.seen))


def main(cache: str, table: str, out: str) -> None:
    pl.seed_everything(0)
    data = DeepfakeDataModule(
        cache_dir=cache, train=[table], batch_size=2, input_size=32, train_frames_per_video=3
    )
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp",
        max_epochs=3,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(Probe(Path(out)), datamodule=data)


if __name__ == "__main__":
    main(*sys.argv[1:4])
