"""Two CPU processes under DDP give the same test metrics as one process, write one run, and
print none of Lightning's noise.

Run as subprocesses of the CLI: under pytest, strategy="ddp" would relaunch the
whole pytest command in rank 1.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from cli_helpers import checkpoint_state, run_dfbench, scripted_args
from conftest import TINY_SIZE

from src.metrics import compute_metrics

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = [
    "-c",
    str(ROOT / "configs/detectors/xception.yaml"),
    "-c",
    str(ROOT / "configs/data/synthetic.yaml"),
    "-c",
    str(ROOT / "configs/trainer/cpu.yaml"),
    "-c",
    str(ROOT / "configs/profiles/demo.yaml"),
]


#: What Lightning printed on every run before dfbench filtered or fixed it at the source.
NOISE = ("sync_dist", "Tip:", "LeafSpec", "dirpath has changed", "exists and is not empty")


@pytest.mark.ddp
def test_ddp_test_metrics_equal_single_process(
    tmp_path: Path, tiny_synthetic_args: list[str]
) -> None:
    common = [*CONFIGS, f"--model.init_args.input_size={TINY_SIZE}", *tiny_synthetic_args]
    run_dfbench(
        tmp_path,
        "fit",
        *common,
        "--trainer.default_root_dir=fit",
        "--trainer.logger.init_args.save_dir=fit",
    )
    (checkpoint,) = tmp_path.glob("fit/xception*/synthetic_face/*/checkpoints/last.ckpt")

    results = {}
    for name, extra in {
        "single": ["--trainer.devices=1"],
        "ddp": ["--trainer.devices=2", "--trainer.strategy=ddp"],
    }.items():
        out = run_dfbench(
            tmp_path,
            "test",
            *common,
            f"--ckpt_path={checkpoint}",
            *extra,
            f"--trainer.logger.init_args.save_dir={name}",
        )
        assert "metrics written to" in out
        assert not [word for word in NOISE if word in out], out
        (path,) = (tmp_path / name).rglob("test_metrics.json")
        results[name] = json.loads(path.read_text())

    single, ddp = results["single"], results["ddp"]
    assert set(single) == set(ddp) == {"blend", "matched"}
    for test_set in single:
        # 15 frames on 2 ranks: the sampler pads to 16; the copy must not count.
        assert single[test_set]["n_frames"] == ddp[test_set]["n_frames"] == 15
        for key, value in single[test_set].items():
            assert ddp[test_set][key] == pytest.approx(value, abs=1e-6, nan_ok=True), (
                test_set,
                key,
            )

    # predict on two ranks writes every frame once, and its scores give the same metrics.
    run_dfbench(
        tmp_path,
        "predict",
        *common,
        f"--ckpt_path={checkpoint}",
        "--trainer.devices=2",
        "--trainer.strategy=ddp",
        "--trainer.logger.init_args.save_dir=predict",
    )
    (frames_csv,) = (tmp_path / "predict").rglob("frames.csv")
    frames = pd.read_csv(frames_csv)
    assert len(frames) == 2 * 15 and not frames.duplicated(["set", "sample_idx"]).any()
    for name, part in frames.groupby("set"):
        again = compute_metrics(part.score, part.label, part.video_key)
        for key, value in again.items():
            assert single[name][key] == pytest.approx(value, abs=1e-6, nan_ok=True), (name, key)


@pytest.mark.ddp
def test_ddp_fit_writes_one_run_and_resumes_it(tmp_path: Path) -> None:
    """Both processes write into the first one's run; a resumed DDP fit keeps the best epoch."""
    out = run_dfbench(
        tmp_path,
        "fit",
        *scripted_args(Path("runs"), "--trainer.devices=2", "--trainer.strategy=ddp"),
    )
    assert not [word for word in NOISE if word in out], out
    (run,) = tmp_path.glob("runs/scripted_detector-*/synthetic_face/*")
    assert len(list(run.glob("fit-*"))) == 1
    out = run_dfbench(
        tmp_path,
        "fit",
        *scripted_args(
            Path("runs"),
            "--trainer.devices=2",
            "--trainer.strategy=ddp",
            "--ckpt_path=last",
            epochs=4,
        ),
    )
    assert not [word for word in NOISE if word in out], out
    assert len(list(run.glob("fit-*"))) == 2
    state = checkpoint_state(run / "checkpoints" / "last.ckpt")
    assert Path(state["best_model_path"]).name == "best-epoch000.ckpt"
    assert float(state["best_model_score"]) == 1.0
