"""A weights-only checkpoint still tests and loads like the full one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import TINY_SIZE

from src.bench.checkpoints import keep_only, strip_to_weights
from src.cli import main
from src.detectors import BackboneClassifier

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def dfbench(command: str, *extra: str) -> None:
    args = [command]
    for config in ("detectors/xception.yaml", "data/synthetic.yaml", "profiles/demo.yaml"):
        args += ["-c", str(CONFIGS / config)]
    assert main([*args, f"--model.init_args.input_size={TINY_SIZE}", *extra]) == 0


@pytest.mark.slow
def test_stripped_checkpoint_tests_and_loads_like_the_full_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_synthetic_args: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    dfbench("fit", *tiny_synthetic_args, "--checkpoint.dirpath=ckpt")
    full = tmp_path / "full.ckpt"
    best = next((tmp_path / "ckpt").glob("best-*.ckpt"))
    full.write_bytes(best.read_bytes())

    freed = keep_only(best)
    assert [p.name for p in (tmp_path / "ckpt").iterdir()] == [best.name]  # last.ckpt is gone
    assert freed > full.stat().st_size  # the optimiser state and a whole second checkpoint
    stripped = torch.load(best, weights_only=False)
    assert "optimizer_states" not in stripped and "callbacks" not in stripped
    assert best.stat().st_size < 0.5 * full.stat().st_size  # Adam kept two tensors per weight

    images = torch.randn(2, 3, TINY_SIZE, TINY_SIZE)
    outputs = []
    for path in (full, best):
        model = BackboneClassifier.load_from_checkpoint(path).eval()
        with torch.no_grad():
            outputs.append(model(images).logit)
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=0)

    metrics = []
    for k, path in enumerate((full, best)):
        dfbench(
            "test",
            *tiny_synthetic_args,
            f"--ckpt_path={path}",
            f"--trainer.default_root_dir=t{k}",
            f"--trainer.logger.init_args.save_dir=t{k}",
        )
        (written,) = (tmp_path / f"t{k}").rglob("test_metrics.json")
        metrics.append(json.loads(written.read_text()))
    assert metrics[0] == metrics[1]


def test_strip_refuses_what_is_not_a_lightning_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "weights.pth"
    torch.save({"layer.weight": torch.ones(2)}, path)
    with pytest.raises(ValueError, match="not a Lightning checkpoint"):
        strip_to_weights(path)
