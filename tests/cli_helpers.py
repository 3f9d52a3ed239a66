"""A detector whose validation AUC is scripted per epoch, and command lines that train it in seconds.

Checkpoint selection is about which epoch scored best: with the score known
in advance, a test can say which checkpoint must be "best" after any
interruption and resume.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from src.contracts import InputContract
from src.detectors import Detector, DetectorOutput

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
SCRIPTED = "cli_helpers.ScriptedDetector"


class ScriptedDetector(Detector):
    """One trainable bias; outside training, the logit is +-(2 label - 1) around it.

    Validation frame AUC is therefore 1.0 in the epochs listed in
    ``good_epochs`` and 0.0 in every other epoch, whatever the data.

    Args:
        good_epochs: epochs whose evaluation ranks every fake above every real.
        **kwargs: Detector arguments.
    """

    default_contract = InputContract(input_size=(32, 32))

    def __init__(self, good_epochs: Sequence[int] = (0,), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.good_epochs = list(good_epochs)
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, images: Tensor) -> DetectorOutput:
        return DetectorOutput(logit=images.mean(dim=(1, 2, 3)) * 0 + self.bias)

    def step_forward(self, batch: dict[str, Tensor]) -> DetectorOutput:
        output = self(batch["image"])
        if self.training:
            return output
        sign = 1.0 if self.current_epoch in self.good_epochs else -1.0
        return DetectorOutput(logit=output.logit + sign * (2 * batch["label"] - 1))


def scripted_args(root: Path, *extra: str, epochs: int = 2) -> list[str]:
    """A fit/test/predict command line of ScriptedDetector on tiny synthetic faces under ``root``."""
    return [
        f"--model={SCRIPTED}",
        "-c",
        str(CONFIGS / "data/synthetic.yaml"),
        "-c",
        str(CONFIGS / "trainer/cpu.yaml"),
        "--data.init_args.train_videos=4",
        "--data.init_args.val_videos=4",
        "--data.init_args.test_videos=4",
        "--data.init_args.frames_per_video=1",
        "--data.init_args.batch_size=4",
        f"--trainer.max_epochs={epochs}",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        "--trainer.log_every_n_steps=1",
        f"--trainer.default_root_dir={root}",
        *extra,
    ]


def baseline_args(root: Path, *extra: str, backbone: str = "test_efficientnet") -> list[str]:
    """A real backbone classifier (timm's 0.1 M-parameter test network) at 32 px under ``root``."""
    return [
        "-c",
        str(CONFIGS / "detectors/baseline.yaml"),
        "-c",
        str(CONFIGS / "data/synthetic.yaml"),
        "-c",
        str(CONFIGS / "profiles/demo.yaml"),
        f"--model.init_args.backbone={backbone}",
        "--model.init_args.input_size=32",
        "--data.init_args.train_videos=4",
        "--data.init_args.val_videos=4",
        "--data.init_args.test_videos=4",
        "--data.init_args.frames_per_video=2",
        "--data.init_args.batch_size=4",
        "--trainer.max_epochs=1",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        f"--trainer.default_root_dir={root}",
        *extra,
    ]


def checkpoint_state(path: Path) -> dict[str, Any]:
    """The ModelCheckpoint record stored in a checkpoint."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    (state,) = [v for k, v in saved["callbacks"].items() if k.startswith("ModelCheckpoint")]
    return state


def run_dfbench(cwd: Path, *args: str) -> str:
    """stdout and stderr of a successful ``python -m src.cli ARGS`` run in ``cwd``.

    A subprocess, because under pytest ``strategy=ddp`` would relaunch pytest itself.
    """
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, HF_HUB_OFFLINE="1", WANDB_MODE="offline", NO_ALBUMENTATIONS_UPDATE="1")
    env["PYTHONPATH"] = os.pathsep.join([str(root), str(root / "tests")])
    result = subprocess.run(
        [sys.executable, "-m", "src.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def xception_learning_args() -> list[str]:
    """Configs and options under which Xception learns the in-memory faces (AUC > 0.9).

    The demo profile on ``configs/data/synthetic.yaml`` (512 fresh training faces
    per epoch, held-out test people) with a longer recipe: 8 epochs in batches of
    16, Adam at lr 5e-4 with a cosine schedule; tested on the ``blend`` style.
    """
    configs = []
    for config in (
        "detectors/xception.yaml",
        "data/synthetic.yaml",
        "trainer/cpu.yaml",
        "profiles/demo.yaml",
    ):
        configs += ["-c", str(CONFIGS / config)]
    return configs + [
        "--data.init_args.test_sets=[blend]",
        "--data.init_args.batch_size=16",
        "--trainer.enable_progress_bar=false",
        "--trainer.max_epochs=8",
        "--model.init_args.optimizer.init_args.lr=5e-4",
        "--model.init_args.lr_scheduler.class_path=torch.optim.lr_scheduler.CosineAnnealingLR",
        "--model.init_args.lr_scheduler.init_args.T_max=8",
    ]
