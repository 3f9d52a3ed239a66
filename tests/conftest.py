"""Shared fixtures: every test runs offline on tiny synthetic data."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

#: Input size that every registered backbone accepts and that keeps CPU tests fast.
TINY_SIZE = 64


@pytest.fixture
def tiny_synthetic_args() -> list[str]:
    """LightningCLI arguments that shrink any fit/test/predict to a seconds-long CPU run."""
    return [
        "--data.init_args.train_videos=8",
        "--data.init_args.train_frames_per_video=3",
        "--data.init_args.val_videos=4",
        "--data.init_args.test_videos=5",
        "--data.init_args.frames_per_video=3",
        "--data.init_args.batch_size=4",
        "--trainer.max_epochs=1",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
    ]
