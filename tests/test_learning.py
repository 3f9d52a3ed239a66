"""The Xception baseline learns to tell synthetic fakes from reals on held-out people."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import xception_learning_args

from src.cli import main


@pytest.mark.slow
def test_xception_learns_synthetic_faces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    args = xception_learning_args()
    assert main(["fit", *args]) == 0
    (best,) = tmp_path.glob("runs/xception*/synthetic_face/*/checkpoints/best-*.ckpt")
    assert main(["test", *args, f"--ckpt_path={best}"]) == 0
    (metrics,) = tmp_path.glob("runs/xception*/synthetic_face/*/test-*/test_metrics.json")
    result = json.loads(metrics.read_text())["blend"]
    assert result["n_videos"] == 64
    assert result["frame_auc"] > 0.9, result
    assert result["video_auc"] > 0.9, result
