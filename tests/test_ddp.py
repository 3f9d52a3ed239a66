"""Two CPU processes under DDP give the same test metrics as one process, write one run, and
print none of Lightning's noise.

Run as subprocesses of the CLI: under pytest, strategy="ddp" would relaunch the
whole pytest command in rank 1.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from cli_helpers import checkpoint_state, run_dfbench, scripted_args
from conftest import TINY_SIZE

from src.cli.runs import LAYOUT_ENV
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


def _launch_env(**extra: str) -> dict[str, str]:
    """The environment of a child dfbench with no launcher of this process leaking in."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SLURM_", "TORCHELASTIC_"))
        and key not in {"WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_PORT", LAYOUT_ENV}
    }
    env.update(HF_HUB_OFFLINE="1", WANDB_MODE="offline", NO_ALBUMENTATIONS_UPDATE="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests")])
    return {**env, **extra}


def _one_shared_run(tmp_path: Path, name: str) -> None:
    (run,) = tmp_path.glob("runs/scripted_detector-*/synthetic_face/*")
    assert run.name == name
    assert [p.name for p in run.glob("fit-*")] == [f"fit-{name}"]
    assert (run / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.ddp
def test_ranks_started_by_torchrun_share_one_run(tmp_path: Path) -> None:
    args = scripted_args(Path("runs"), "--trainer.devices=2", "--trainer.strategy=ddp")
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
        + ["-m", "src.cli", "fit", *args],
        cwd=tmp_path,
        env=_launch_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (run,) = tmp_path.glob("runs/scripted_detector-*/synthetic_face/*")
    assert run.name.startswith("torchrun-")
    _one_shared_run(tmp_path, run.name)


@pytest.mark.ddp
def test_ranks_started_by_srun_share_one_run_whatever_the_timing(tmp_path: Path) -> None:
    """Two tasks as srun starts them (its environment), the second a few seconds later."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    slurm = {
        "SLURM_JOB_ID": "4242",
        "SLURM_STEP_ID": "0",
        "SLURM_JOB_NAME": "cell",
        "SLURM_NTASKS": "2",
        "SLURM_NTASKS_PER_NODE": "2",
        "SLURM_NNODES": "1",
        "SLURM_NODEID": "0",
        "SLURM_NODELIST": "127.0.0.1",
        "MASTER_PORT": str(port),
    }
    args = scripted_args(Path("runs"), "--trainer.devices=2", "--trainer.strategy=ddp")
    tasks = []
    for rank in ("0", "1"):
        env = _launch_env(**slurm, SLURM_PROCID=rank, SLURM_LOCALID=rank)
        tasks.append(
            subprocess.Popen(
                [sys.executable, "-m", "src.cli", "fit", *args],
                cwd=tmp_path,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
        time.sleep(2.5)  # a time-stamped name would differ between the tasks
    outputs = [task.communicate(timeout=900)[0] for task in tasks]
    assert [task.returncode for task in tasks] == [0, 0], "\n".join(o[-3000:] for o in outputs)
    assert not [o for o in outputs if "srun` command is available" in o]
    _one_shared_run(tmp_path, "slurm4242.0")
