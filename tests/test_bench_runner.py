"""The benchmark runner: grid expansion, cells, the results store, resuming, failures."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from src.bench.grid import GridError, load_grid
from src.bench.runner import Runner
from src.bench.schema import RESULT_COLUMNS
from src.configs import REPO

TINY = {
    "model.init_args.input_size": 32,
    "data.init_args.train_videos": 8,
    "data.init_args.val_videos": 4,
    "data.init_args.test_videos": 3,
    "data.init_args.frames_per_video": 2,
    "data.init_args.batch_size": 4,
}


def write_grid(tmp_path: Path, detectors: list[dict], **extra) -> Path:
    spec = {
        "name": "tiny",
        "train_set": "synthetic",
        "seeds": [0, 1],
        "trainer": {"max_epochs": 1, "limit_train_batches": 1},
        "profiles": {
            "demo": {
                "data": ["configs/data/synthetic.yaml"],
                "configs": ["configs/profiles/demo.yaml"],
            }
        },
        "detectors": detectors,
    } | extra
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_grid_expansion(tmp_path: Path) -> None:
    path = write_grid(
        tmp_path,
        [
            {
                "name": "xception",
                "configs": ["configs/detectors/xception.yaml"],
                "sweep": {"model.init_args.drop_rate": [0.1, 0.3]},
            }
        ],
        tests=[{}, {"data.init_args.test_sets": ["hard"]}],
    )
    cells = load_grid(path, "demo")
    assert [c.index for c in cells] == [0, 1, 2, 3]
    assert [(c.detector, c.seed) for c in cells] == [
        ("xception_drop_rate=0.1", 0),
        ("xception_drop_rate=0.1", 1),
        ("xception_drop_rate=0.3", 0),
        ("xception_drop_rate=0.3", 1),
    ]
    assert len({c.id for c in cells}) == 4 and all(len(c.tests) == 2 for c in cells)
    assert cells[0].configs == (
        "configs/data/synthetic.yaml",
        "configs/detectors/xception.yaml",
        "configs/profiles/demo.yaml",
    )
    assert "--model.init_args.drop_rate=0.1" in cells[0].fit_args()
    assert "--seed_everything=1" in cells[1].fit_args()
    assert load_grid(path, "demo")[0].id == cells[0].id  # stable
    with pytest.raises(GridError, match="no profile 'paper'"):
        load_grid(path, "paper")
    with pytest.raises(GridError, match="grid file not found"):
        load_grid(tmp_path / "nope.yaml", "demo")


def test_every_shipped_grid_expands() -> None:
    root = Path(__file__).resolve().parents[1] / "benchmarks"
    for grid in sorted(root.glob("*.yaml")):
        for profile in ("demo", "paper"):
            assert load_grid(grid, profile), (grid, profile)


@pytest.mark.slow
def test_runner_resumes_records_failures_and_equals_a_clean_run(tmp_path: Path) -> None:
    good = {"name": "xception", "configs": ["configs/detectors/xception.yaml"], "overrides": TINY}
    bad = {
        "name": "broken",
        "configs": ["configs/detectors/xception.yaml"],
        "overrides": TINY | {"model.init_args.backbone": "no_such_backbone"},
    }
    cells = load_grid(write_grid(tmp_path, [good, bad]), "demo")
    good_cells = [c for c in cells if c.detector == "xception"]

    # A run interrupted after its first cell: only that cell is on disk.
    partial = Runner(cells, tmp_path / "resumed")
    partial.run(only=good_cells[0].index)
    assert partial.status(good_cells[0])["status"] == "done"
    # The re-run skips it, runs the rest, records the broken cells and exits 1.
    resumed = Runner(cells, tmp_path / "resumed")
    assert resumed.run() == 1
    statuses = {c.detector: resumed.status(c)["status"] for c in cells}
    assert statuses == {"xception": "done", "broken": "failed"}
    assert "no_such_backbone" in resumed.status(cells[-1])["error"]
    results = resumed.collect()
    assert list(results.columns) == list(RESULT_COLUMNS)
    assert (
        set(results.detector) == {"xception"} and len(results) == 2 * 2 * 2
    )  # seeds x test sets x levels
    assert (resumed.root / "results.csv").is_file()

    clean = Runner(good_cells, tmp_path / "clean")
    assert clean.run() == 0
    columns = [
        "detector",
        "seed",
        "test_set",
        "level",
        "auc",
        "ap",
        "acc",
        "eer",
        "n_frames",
        "n_videos",
    ]
    pd.testing.assert_frame_equal(
        results[columns].sort_values(columns[:4]).reset_index(drop=True),
        clean.collect()[columns].sort_values(columns[:4]).reset_index(drop=True),
    )
    row = results.iloc[0]
    frames = pd.read_parquet(resumed.root / row["predictions"])
    assert len(frames[frames["set"] == row["prediction_set"]]) == int(row["n_frames"])
    assert json.loads(row["flags"])["input_size"] == 32


@pytest.mark.slow
def test_killed_bench_reruns_only_the_missing_cells(tmp_path: Path) -> None:
    """SIGKILL `dfbench bench` after its first cell; the re-run does the rest, results match."""
    import os
    import signal
    import subprocess
    import sys
    import time

    good = {"name": "xception", "configs": ["configs/detectors/xception.yaml"], "overrides": TINY}
    grid = write_grid(tmp_path, [good])
    command = [
        sys.executable,
        "-m",
        "src.cli",
        "bench",
        str(grid),
        "--profile",
        "demo",
        "--no-wandb",
    ]
    env = os.environ | {"HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    results = tmp_path / "killed"
    process = subprocess.Popen(
        [*command, "--out", str(results)],
        env=env,
        cwd=Path(__file__).parents[1],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    cells = results / "tiny" / "demo" / "cells"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not any(
        json.loads(p.read_text())["status"] == "done" for p in cells.glob("*/status.json")
    ):
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    statuses = [json.loads(p.read_text())["status"] for p in sorted(cells.glob("*/status.json"))]
    assert statuses[0] == "done" and "done" not in statuses[1:], statuses

    out = subprocess.run(
        [*command, "--out", str(results)],
        env=env,
        cwd=Path(__file__).parents[1],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "done earlier, skipped" in out and out.count(": running") == 1
    clean = tmp_path / "clean"
    subprocess.run(
        [*command, "--out", str(clean)],
        env=env,
        cwd=Path(__file__).parents[1],
        check=True,
        capture_output=True,
    )
    keys = ["detector", "seed", "test_set", "level"]
    metrics = [*keys, "auc", "ap", "acc", "eer", "n_frames"]
    a = (
        pd.read_csv(results / "tiny" / "demo" / "results.csv")[metrics]
        .sort_values(keys)
        .reset_index(drop=True)
    )
    b = (
        pd.read_csv(clean / "tiny" / "demo" / "results.csv")[metrics]
        .sort_values(keys)
        .reset_index(drop=True)
    )
    pd.testing.assert_frame_equal(a, b)
    for level in ("frame", "video"):
        assert (results / "tiny" / "demo" / "tables" / f"cross_dataset_{level}.md").read_text() == (
            clean / "tiny" / "demo" / "tables" / f"cross_dataset_{level}.md"
        ).read_text()
    # Each finished cell kept one checkpoint.
    assert [len(list(c.glob("checkpoints/*.ckpt"))) for c in cells.iterdir()] == [1, 1]

    # The results folder moved elsewhere: nothing is redone and the tables render again.
    moved = tmp_path / "elsewhere" / "results"
    moved.parent.mkdir()
    results.rename(moved)
    tables = moved / "tiny" / "demo" / "tables"
    before = (tables / "cross_dataset_frame.md").read_text()
    (tables / "cross_dataset_frame.md").unlink()
    out = subprocess.run(
        [*command, "--out", str(moved)],
        env=env,
        cwd=Path(__file__).parents[1],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.count("done earlier, skipped") == 2 and ": running" not in out
    assert (tables / "cross_dataset_frame.md").read_text() == before


@pytest.mark.slow
def test_same_seed_same_machine_gives_the_same_table(tmp_path: Path) -> None:
    """Two runs of a tiny grid into two folders: equal metrics, equal tables, readable logs."""
    import subprocess
    import sys

    good = {"name": "xception", "configs": ["configs/detectors/xception.yaml"], "overrides": TINY}
    grid = write_grid(tmp_path, [good], seeds=[0])
    outputs = {}
    for run in ("first", "second"):
        outputs[run] = subprocess.run(
            [sys.executable, "-m", "src.cli", "bench", str(grid), "--no-wandb"]
            + ["--out", str(tmp_path / run)],
            env=os.environ | {"HF_HUB_OFFLINE": "1", "NO_COLOR": "1"},
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    first, second = (tmp_path / run / "tiny" / "demo" for run in ("first", "second"))
    metrics = ["cell", "test_set", "level", "auc", "ap", "acc", "eer", "real_acc", "fake_acc"]
    metrics += ["n_frames", "n_videos", "val_auc", "best_epoch"]
    a, b = (pd.read_csv(root / "results.csv")[metrics] for root in (first, second))
    pd.testing.assert_frame_equal(a, b)
    assert a["val_auc"].notna().all()
    for name in ("cross_dataset_frame", "cross_dataset_video"):
        for suffix in (".md", ".csv", ".tex"):
            assert (first / "tables" / f"{name}{suffix}").read_text() == (
                second / "tables" / f"{name}{suffix}"
            ).read_text(), name + suffix

    def tables_printed(text: str) -> str:
        start = text.index("cross-dataset benchmark, frame level")
        return text[start : text.index("tables and ROC curves:")]

    assert tables_printed(outputs["first"]) == tables_printed(outputs["second"])
    printed = tables_printed(outputs["first"])
    assert "validation frame AUC (%) at the selected checkpoints: xception " in printed
    assert "bootstrap 95 % interval of the AUC over videos" in printed
    assert "\x1b[" not in printed and "*" not in printed  # a pipe: plain marks
    # Progress: one line per epoch, none per batch; the fit's log has no redraws.
    assert "[cells 0/1 done" in outputs["first"] and "fit epoch 1/1" in outputs["first"]
    (cell,) = (first / "cells").iterdir()
    assert json.loads((cell / "progress.json").read_text())["epoch"] == 0
    for log in ("fit.log", "test_0.log"):
        assert "\r" not in (cell / log).read_text()


@pytest.mark.slow
def test_interrupted_fit_resumes_from_its_last_checkpoint(tmp_path: Path) -> None:
    """A two-epoch cell left with the checkpoints of its first epoch trains only the second."""
    good = {"name": "xception", "configs": ["configs/detectors/xception.yaml"], "overrides": TINY}
    grids = {}
    for epochs in (1, 2):
        (tmp_path / str(epochs)).mkdir()
        trainer = {"max_epochs": epochs, "limit_train_batches": 1}
        path = write_grid(tmp_path / str(epochs), [good], seeds=[0], trainer=trainer)
        (grids[epochs],) = load_grid(path, "demo")
    first = Runner([grids[1]], tmp_path / "first", keep_checkpoints=True)
    assert first.run() == 0
    left = first.cell_dir(grids[1]) / "checkpoints"
    progress = json.loads((first.cell_dir(grids[1]) / "progress.json").read_text())
    trained_s = progress["epoch_seconds"]["0"]
    assert trained_s > 0

    resumed = Runner([grids[2]], tmp_path / "resumed")
    shutil.copytree(left, resumed.cell_dir(grids[2]) / "checkpoints")
    shutil.copy(first.cell_dir(grids[1]) / "progress.json", resumed.cell_dir(grids[2]))
    assert resumed.run() == 0
    folder = resumed.cell_dir(grids[2])
    fit = json.loads((folder / "fit.json").read_text())
    assert fit["resumed_after_epoch"] == 0 and fit["best_epoch"] in (0, 1)
    assert fit["train_time_s"] > trained_s
    log = (folder / "fit.log").read_text()
    assert "Restoring states from the checkpoint path" in log and "not empty" not in log
    assert "Please add the following callbacks" not in (folder / "test_0.log").read_text()
    (metrics,) = (folder / "fit").rglob("metrics.csv")
    assert set(pd.read_csv(metrics)["epoch"].dropna()) == {1}  # the first epoch was not redone
    assert resumed.status(grids[2])["status"] == "done"
