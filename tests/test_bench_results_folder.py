"""The results folder: relative paths, relocation, checkpoints kept after a cell's tests.

``dfbench fit``/``test`` are replaced by a stand-in that writes what they write
(checkpoints with optimiser state, ``test_metrics.json``,
``test_predictions.parquet``), so the runner's own bookkeeping runs in a blink.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from bench_data import make_predictions

import src.bench.runner as runner_module
from src.bench.grid import load_grid
from src.bench.report import report
from src.bench.runner import Runner
from src.metrics import compute_metrics

TEST_SETS = ("blend", "matched")


def option(args: list[str], name: str) -> str:
    (value,) = [a.split("=", 1)[1] for a in args if a.startswith(f"--{name}=")]
    return value


def fake_dfbench(args: list[str], log: Path, shown_log: str) -> float:
    """Write the files a fit or a test subprocess would write."""
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(f"dfbench {' '.join(args)}\n")
    if args[0] == "fit":
        folder = Path(option(args, "checkpoint.dirpath"))
        folder.mkdir(parents=True)
        weights = {"layer.weight": torch.ones(64, 64)}
        for name in ("best-epoch001.ckpt", "last.ckpt"):
            torch.save(
                {
                    "state_dict": weights,
                    "hyper_parameters": {"backbone": "legacy_xception"},
                    "pytorch-lightning_version": "2.6.6",
                    "epoch": 1,
                    "optimizer_states": [{"exp_avg": torch.ones(64, 64)}],
                    "loops": {"fit_loop": {}},
                    "callbacks": {"ModelCheckpoint": {"dirpath": str(folder)}},
                },
                folder / name,
            )
        return 1.0
    out = Path(option(args, "trainer.default_root_dir"))
    out.mkdir(parents=True)
    parts, metrics = [], {}
    for k, name in enumerate(TEST_SETS):
        frames = make_predictions(seed=k, n_videos=12, signal=2.0, decimals=3, name=name)
        parts.append(frames)
        metrics[name] = compute_metrics(frames["score"], frames["label"], frames["video_key"])
        metrics[name] |= {"n_videos": 12, "n_frames": len(frames)}
    pd.concat(parts).to_parquet(out / "test_predictions.parquet", index=False)
    (out / "test_metrics.json").write_text(json.dumps(metrics))
    return 1.0


@pytest.fixture
def cells(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(runner_module, "_dfbench", fake_dfbench)
    spec = {
        "name": "tiny",
        "train_set": "synthetic",
        "profiles": {"demo": {"data": ["configs/data/synthetic.yaml"]}},
        "detectors": [{"name": "xception", "configs": ["configs/detectors/xception.yaml"]}],
    }
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump(spec))
    return load_grid(tmp_path / "grid.yaml", "demo")


def stored_text(root: Path) -> list[tuple[Path, str]]:
    return [
        (p, p.read_text())
        for p in root.rglob("*")
        if p.suffix in (".json", ".csv", ".md", ".tex") and p.is_file()
    ]


def test_moved_results_folder_is_found_again(tmp_path: Path, cells) -> None:
    first = Runner(cells, tmp_path / "results", [])
    assert first.run() == 0
    report(first.collect(), first.root, wandb=False)
    for path, text in stored_text(first.root):
        assert str(tmp_path) not in text, path
    fit = json.loads((first.cell_dir(cells[0]) / "fit.json").read_text())
    assert fit["checkpoint"] == f"cells/{cells[0].id}/checkpoints/best-epoch001.ckpt"

    shutil.move(tmp_path / "results", tmp_path / "moved")
    calls = []
    moved = Runner(cells, tmp_path / "moved", [])
    moved.run_cell = lambda cell: calls.append(cell)  # a re-run must not run anything
    assert moved.run() == 0 and calls == []
    (moved.root / "tables").rename(moved.root / "old_tables")
    written = report(moved.collect(), moved.root, wandb=False)
    assert (moved.root / "tables" / "cross_dataset_frame.md").read_text() == (
        moved.root / "old_tables" / "cross_dataset_frame.md"
    ).read_text()
    assert {"roc_blend.png", "roc_matched.png"} <= set(written)


def test_finished_cell_keeps_one_weights_only_checkpoint(tmp_path: Path, cells) -> None:
    runner = Runner(cells, tmp_path / "results", [])
    assert runner.run() == 0
    folder = runner.cell_dir(cells[0]) / "checkpoints"
    assert [p.name for p in folder.iterdir()] == ["best-epoch001.ckpt"]
    kept = torch.load(folder / "best-epoch001.ckpt", weights_only=False)
    assert set(kept) == {"state_dict", "hyper_parameters", "pytorch-lightning_version", "epoch"}
    assert torch.equal(kept["state_dict"]["layer.weight"], torch.ones(64, 64))
    assert runner.status(cells[0])["checkpoint_bytes_freed"] > 2 * 64 * 64 * 4


def test_keep_checkpoints_leaves_them_untouched(tmp_path: Path, cells) -> None:
    runner = Runner(cells, tmp_path / "results", [], keep_checkpoints=True)
    assert runner.run() == 0
    folder = runner.cell_dir(cells[0]) / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["best-epoch001.ckpt", "last.ckpt"]
    assert "optimizer_states" in torch.load(folder / "last.ckpt", weights_only=False)
    assert runner.status(cells[0])["checkpoint_bytes_freed"] == 0


def test_results_follow_the_umask(tmp_path: Path, cells) -> None:
    saved = os.umask(0o022)
    try:
        runner = Runner(cells, tmp_path / "results", [])
        runner.run()
        report(runner.collect(), runner.root, wandb=False)
    finally:
        os.umask(saved)
    written = [
        runner.root / "results.csv",
        runner.cell_dir(cells[0]) / "status.json",
        runner.root / "tables" / "cross_dataset_frame.md",
        runner.root / "tables" / "roc_blend.png",
    ]
    assert [stat.S_IMODE(p.stat().st_mode) for p in written] == [0o644] * len(written)
