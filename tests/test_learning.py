"""The Xception baseline learns to tell synthetic fakes from reals on held-out people."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from src.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_xception_learns_synthetic_faces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    # configs/data/synthetic.yaml as written: 512 fresh training faces per epoch,
    # 64 validation and 64 test videos of held-out people, 4 frames each.
    configs = []
    for config in (
        "detectors/xception.yaml",
        "data/synthetic.yaml",
        "trainer/cpu.yaml",
        "profiles/demo.yaml",
    ):
        configs += ["-c", str(ROOT / "configs" / config)]
    data = [
        "--data.init_args.test_sets=[blend]",
        "--trainer.enable_progress_bar=false",
    ]
    training = [
        "--trainer.max_epochs=8",
        "--model.init_args.optimizer.init_args.lr=5e-4",
        "--model.init_args.lr_scheduler.class_path=torch.optim.lr_scheduler.CosineAnnealingLR",
        "--model.init_args.lr_scheduler.init_args.T_max=8",
    ]
    assert main(["fit", *configs, *data, *training]) == 0
    (best,) = tmp_path.glob("runs/xception/synthetic_face/*/checkpoints/best-*.ckpt")
    assert main(["test", *configs, *data, f"--ckpt_path={best}"]) == 0
    (metrics,) = tmp_path.glob("runs/xception/synthetic_face/*/test-*/test_metrics.json")
    result = json.loads(metrics.read_text())["blend"]
    assert result["n_videos"] == 64
    assert result["frame_auc"] > 0.9, result
    assert result["video_auc"] > 0.9, result
