"""The results folder: relative paths, relocation, checkpoints kept after a cell's tests.

``dfbench fit``/``test`` are replaced by a stand-in that writes what they write
(checkpoints with optimiser state, ``test_metrics.json``,
``test_predictions.parquet``), so the runner's own bookkeeping runs in a blink.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
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
#: What the stand-in was called with: (arguments, keyword arguments).
CALLS: list[tuple[list[str], dict]] = []


def option(args: list[str], name: str) -> str:
    (value,) = [a.split("=", 1)[1] for a in args if a.startswith(f"--{name}=")]
    return value


#: Validation AUC the stand-in fit records in its best checkpoint.
VAL_AUC = 0.875
#: Pixel-level metrics the stand-in test reports, by test set (a test sets it).
PIXEL: dict[str, dict[str, float]] = {}


def fake_dfbench(args: list[str], log: Path, shown_log: str, **child) -> float:
    """Write the files a fit or a test subprocess would write."""
    CALLS.append((args, child))
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
                    "datamodule_hyper_parameters": {"val_fakes": "pseudo"},
                    "pytorch-lightning_version": "2.6.6",
                    "epoch": 1,
                    "optimizer_states": [{"exp_avg": torch.ones(64, 64)}],
                    "loops": {"fit_loop": {}},
                    "callbacks": {
                        "ModelCheckpoint{'monitor': 'val/frame_auc'}": {
                            "monitor": "val/frame_auc",
                            "dirpath": str(folder),
                            "current_score": torch.tensor(VAL_AUC),
                        }
                    },
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
        metrics[name] |= {"n_videos": 12, "n_frames": len(frames)} | PIXEL.get(name, {})
    pd.concat(parts).to_parquet(out / "test_predictions.parquet", index=False)
    (out / "test_metrics.json").write_text(json.dumps(metrics))
    return 1.0


@pytest.fixture
def cells(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(runner_module, "_dfbench", fake_dfbench)
    CALLS.clear()
    PIXEL.clear()
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
    first = Runner(cells, tmp_path / "results")
    assert first.run() == 0
    report(first.collect(), first.root, wandb=False)
    for path, text in stored_text(first.root):
        assert str(tmp_path) not in text, path
    fit = json.loads((first.cell_dir(cells[0]) / "fit.json").read_text())
    assert fit["checkpoint"] == f"cells/{cells[0].id}/checkpoints/best-epoch001.ckpt"

    shutil.move(tmp_path / "results", tmp_path / "moved")
    calls = []
    moved = Runner(cells, tmp_path / "moved")
    moved.run_cell = lambda cell: calls.append(cell)  # a re-run must not run anything
    assert moved.run() == 0 and calls == []
    (moved.root / "tables").rename(moved.root / "old_tables")
    written = report(moved.collect(), moved.root, wandb=False)
    assert (moved.root / "tables" / "cross_dataset_frame.md").read_text() == (
        moved.root / "old_tables" / "cross_dataset_frame.md"
    ).read_text()
    assert {"roc_blend.png", "roc_matched.png"} <= set(written)


def test_finished_cell_keeps_one_weights_only_checkpoint(tmp_path: Path, cells) -> None:
    runner = Runner(cells, tmp_path / "results")
    assert runner.run() == 0
    folder = runner.cell_dir(cells[0]) / "checkpoints"
    assert [p.name for p in folder.iterdir()] == ["best-epoch001.ckpt"]
    kept = torch.load(folder / "best-epoch001.ckpt", weights_only=False)
    assert set(kept) == {
        "state_dict",
        "hyper_parameters",
        "datamodule_hyper_parameters",
        "pytorch-lightning_version",
        "epoch",
    }
    assert torch.equal(kept["state_dict"]["layer.weight"], torch.ones(64, 64))
    assert runner.status(cells[0])["checkpoint_bytes_freed"] > 2 * 64 * 64 * 4


def test_keep_checkpoints_leaves_them_untouched(tmp_path: Path, cells) -> None:
    runner = Runner(cells, tmp_path / "results", keep_checkpoints=True)
    assert runner.run() == 0
    folder = runner.cell_dir(cells[0]) / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["best-epoch001.ckpt", "last.ckpt"]
    assert "optimizer_states" in torch.load(folder / "last.ckpt", weights_only=False)
    assert runner.status(cells[0])["checkpoint_bytes_freed"] == 0


def test_results_follow_the_umask(tmp_path: Path, cells) -> None:
    saved = os.umask(0o022)
    try:
        runner = Runner(cells, tmp_path / "results")
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


def test_cells_carry_run_meta_progress_and_selection_score(tmp_path: Path, cells) -> None:
    runner = Runner(cells, tmp_path / "results", wandb_group="tiny/demo")
    assert runner.run() == 0
    (fit_args, fit_child), (test_args, test_child) = CALLS
    assert fit_args[0] == "fit" and test_args[0] == "test"
    cell = cells[0]
    for child in (fit_child, test_child):
        assert json.loads(child["env"]["DFBENCH_RUN_META"]) == {
            "benchmark": "tiny",
            "profile": "demo",
            "cell": cell.id,
            "detector": "xception",
            "train_set": "synthetic",
            "seed": 0,
            "wandb_group": "tiny/demo",
        }
    # The fit reports its epoch to the cell's progress file; the test has no such callback.
    (callback,) = [a for a in fit_args if a.startswith("--trainer.callbacks+=")]
    spec = json.loads(callback.split("=", 1)[1])
    assert spec == {
        "class_path": "src.bench.progress.ProgressFile",
        "init_args": {"path": str(runner.cell_dir(cell) / "progress.json"), "before_seconds": 0.0},
    }
    assert not any(a.startswith("--trainer.callbacks") for a in test_args)
    fit = json.loads((runner.cell_dir(cell) / "fit.json").read_text())
    assert (fit["val_score"], fit["best_epoch"], fit["monitor"]) == (VAL_AUC, 1, "val/frame_auc")
    assert fit["params"] == 64 * 64
    assert fit["val_fakes"] == "pseudo"  # what the checkpoint's data module validated on
    results = runner.collect()
    assert (results["val_auc"] == VAL_AUC).all() and (results["best_epoch"] == 1).all()
    assert (results["val_fakes"] == "pseudo").all()
    # No pixel metrics from this detector: NaN, and no pixel table.
    assert results[["pixel_auc", "pixel_iou", "pixel_f1", "n_pixel_frames"]].isna().all().all()
    written = report(results, runner.root, wandb=False, stream=io.StringIO())
    assert "cross_dataset_pixel.md" not in written


def test_pixel_metrics_reach_rows_and_their_own_table(tmp_path: Path, cells) -> None:
    PIXEL["blend"] = {"pixel_auc": 0.9, "pixel_iou": 0.5, "pixel_f1": 0.625, "n_pixel_frames": 7}
    runner = Runner(cells, tmp_path / "results")
    assert runner.run() == 0
    results = runner.collect()
    blend = results[results["test_set"] == "blend"].set_index("level")
    assert blend.loc["frame", ["pixel_auc", "pixel_iou", "pixel_f1"]].tolist() == [0.9, 0.5, 0.625]
    assert blend.loc["frame", "n_pixel_frames"] == 7
    assert blend.loc["video", ["pixel_auc", "pixel_iou", "pixel_f1"]].isna().all()
    assert results[results["test_set"] == "matched"]["pixel_auc"].isna().all()

    out = io.StringIO()
    written = report(results, runner.root, wandb=False, style="plain", stream=out)
    tables = runner.root / "tables"
    assert {"cross_dataset_pixel.md", "cross_dataset_pixel.csv", "cross_dataset_pixel.tex"} <= set(
        written
    )
    markdown = (tables / "cross_dataset_pixel.md").read_text()
    assert "pixel level" in markdown
    assert "| detector | blend pixel AUC | blend IoU | blend F1 |" in markdown
    assert "| xception | 90.00 | 50.00 | 62.50 |" in markdown  # one row: nothing marked
    numbers = pd.read_csv(tables / "cross_dataset_pixel.csv")
    assert numbers.columns.tolist() == [
        "detector",
        "blend/pixel_auc",
        "blend/pixel_iou",
        "blend/pixel_f1",
    ]
    assert numbers.iloc[0, 1:].tolist() == [90.0, 50.0, 62.5]
    latex = (tables / "cross_dataset_pixel.tex").read_text()
    assert r" & \multicolumn{3}{c}{blend} \\" in latex
    assert r"xception & 90.00 & 50.00 & 62.50 \\" in latex
    text = out.getvalue()
    assert "cross-dataset benchmark, pixel level, demo profile (values in %)" in text
    assert "pixel level, pixel AUC, IoU and F1 at 0.5 over fakes with a mask in %" in text


def test_report_prints_legend_and_sanity_line(tmp_path: Path, cells) -> None:
    runner = Runner(cells, tmp_path / "results")
    assert runner.run() == 0
    out = io.StringIO()
    report(runner.collect(), runner.root, wandb=False, style="plain", stream=out)
    lines = out.getvalue().splitlines()
    legend = (
        "frame level, AUC and AP in %; [low, high] = bootstrap 95 % interval of the AUC over "
        "videos; (1) = best, (2) = second best per column"
    )
    assert legend in lines and legend.replace("frame level", "video level", 1) in lines
    sanity = (
        "validation frame AUC (%) at the selected checkpoints: xception pseudo-fake val 87.50 "
        "at epoch 1"
    )
    assert sanity in lines
    assert sanity in (runner.root / "tables" / "cross_dataset_frame.md").read_text()
    assert not any("*" in line or "<u>" in line for line in lines)


def test_interrupted_cell_is_marked_and_redone(tmp_path: Path, cells, monkeypatch) -> None:
    from src.bench.process import Interrupted

    def interrupted_test(args: list[str], log: Path, shown_log: str, **child) -> float:
        if args[0] == "test":
            raise Interrupted(signal.SIGTERM)
        return fake_dfbench(args, log, shown_log, **child)

    monkeypatch.setattr(runner_module, "_dfbench", interrupted_test)
    runner = Runner(cells, tmp_path / "results")
    with pytest.raises(Interrupted) as stopped:
        runner.run()
    assert stopped.value.exit_code == 128 + signal.SIGTERM
    assert runner.status(cells[0]) | {"cell": None} == {
        "status": "interrupted",
        "cell": None,
        "signal": "SIGTERM",
    }
    monkeypatch.setattr(runner_module, "_dfbench", fake_dfbench)
    CALLS.clear()
    assert Runner(cells, tmp_path / "results").run() == 0
    assert [args[0] for args, _ in CALLS] == ["test"]  # the finished fit is kept


def _lightning_checkpoint(path: Path, epoch: int, callbacks: dict | None = None, **keys) -> None:
    torch.save(
        {"state_dict": {"layer.weight": torch.ones(2)}, "epoch": epoch, "callbacks": callbacks}
        | keys,
        path,
    )


def _fit_sees_checkpoints(folder: Path, seen: dict):
    """A stand-in fit that first records the checkpoints it finds and its --ckpt_path."""

    def fit(args: list[str], log: Path, shown_log: str, **child) -> float:
        if args[0] == "fit":
            seen["files"] = sorted(p.name for p in folder.glob("*.ckpt"))
            seen["ckpt_path"] = [a for a in args if a.startswith("--ckpt_path=")]
            (callback,) = [a for a in args if a.startswith("--trainer.callbacks+=")]
            seen["before_seconds"] = json.loads(callback.split("=", 1)[1])["init_args"][
                "before_seconds"
            ]
            shutil.rmtree(folder, ignore_errors=True)  # the stand-in writes a whole fit's files
        return fake_dfbench(args, log, shown_log, **child)

    return fit


def test_unfinished_fit_resumes_from_its_last_epoch(tmp_path: Path, cells, monkeypatch) -> None:
    runner = Runner(cells, tmp_path / "results")
    folder = runner.cell_dir(cells[0]) / "checkpoints"
    folder.mkdir(parents=True)
    # Killed in its third epoch (2), after that epoch's best file, before its last.ckpt. The
    # record names the best by the path it had when written (the folder has moved since).
    record = {
        "ModelCheckpoint{'monitor': 'val/frame_auc'}": {
            "best_model_path": "/elsewhere/checkpoints/best-epoch000.ckpt",
        },
    }
    _lightning_checkpoint(folder / "best-epoch000.ckpt", 0)
    _lightning_checkpoint(folder / "last.ckpt", 1, record)
    # The interrupted attempt's progress file: 30 s of training at the end of epoch 1 (the
    # checkpoint resumed from), 45 s at the end of epoch 2 (lost: no last.ckpt of it).
    progress = {"epoch": 2, "epoch_seconds": {"0": 14.0, "1": 30.0, "2": 45.0}}
    (folder.parent / "progress.json").write_text(json.dumps(progress))
    _lightning_checkpoint(folder / "best-epoch002.ckpt", 2)
    seen: dict = {}
    monkeypatch.setattr(runner_module, "_dfbench", _fit_sees_checkpoints(folder, seen))
    assert runner.run() == 0
    assert seen == {
        "files": ["best-epoch000.ckpt", "last.ckpt"],  # the unrecorded best is gone
        "ckpt_path": [f"--ckpt_path={folder / 'last.ckpt'}"],
        "before_seconds": 30.0,  # handed to the new attempt's progress file
    }
    fit = json.loads((runner.cell_dir(cells[0]) / "fit.json").read_text())
    # The stand-in's 1 s plus the 30 s the interrupted attempt trained before last.ckpt.
    assert fit["train_time_s"] == 31.0 and fit["resumed_after_epoch"] == 1


@pytest.mark.parametrize("last", ["missing", "half written", "names a deleted best"])
def test_fit_without_a_usable_last_checkpoint_starts_afresh(
    tmp_path: Path, cells, monkeypatch, last: str
) -> None:
    runner = Runner(cells, tmp_path / "results")
    folder = runner.cell_dir(cells[0]) / "checkpoints"
    folder.mkdir(parents=True)
    _lightning_checkpoint(folder / "best-epoch000.ckpt", 0)
    if last == "half written":
        (folder / "last.ckpt").write_bytes(b"half a checkpoint")
    elif last == "names a deleted best":
        record = {"ModelCheckpoint{}": {"best_model_path": str(folder / "best-epoch001.ckpt")}}
        _lightning_checkpoint(folder / "last.ckpt", 1, record)
    seen: dict = {}
    monkeypatch.setattr(runner_module, "_dfbench", _fit_sees_checkpoints(folder, seen))
    assert runner.run() == 0
    assert seen == {"files": [], "ckpt_path": [], "before_seconds": 0.0}
    fit = json.loads((runner.cell_dir(cells[0]) / "fit.json").read_text())
    assert fit["train_time_s"] == 1.0 and fit["resumed_after_epoch"] is None
