"""``bench --slurm`` (scripts, submission), ``--report-only`` and ``--status``.

The fast tests check the scripts' text, the submission order and dependencies
against a stand-in ``sbatch``, and the report and status modes on a results
folder made by a stand-in ``dfbench`` (as in ``test_bench_prle``: each verb
leaves on disk what it would, in a blink; here its test metrics depend on the
cell, so that a table that mixed cells up would differ). The test marked
``slurm`` submits a grid to a real throwaway Slurm (``tests/slurm_cluster.py``)
and compares its tables with those of the same grid run without Slurm.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import stat
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
import yaml
from slurm_cluster import slurm_cluster  # noqa: F401 (a fixture)

from src.bench import runner as runner_module
from src.bench import slurm
from src.bench.grid import load_grid
from src.bench.prle_maps import maps_folder, maps_state
from src.bench.progress import ProgressLine
from src.bench.report import report
from src.bench.runner import Runner
from src.bench.slurm import SlurmError, TaskState, cell_state, parse_options
from src.cli.bench import run
from src.configs import REPO

TESTS = Path(__file__).parent

#: A ``dfbench`` whose verbs write what they would; the test metrics are computed on
#: predictions drawn from the cell's id, so every cell has its own numbers.
FAKE_DFBENCH = r"""
import hashlib, json, os, shutil, sys
from pathlib import Path

sys.path.insert(0, os.environ["FAKE_TESTS"])
args = sys.argv[1:]
verb = args[0]
cell = json.loads(os.environ["DFBENCH_RUN_META"])["cell"]
with open(os.environ["FAKE_CALLS"], "a") as calls:
    calls.write(json.dumps({"verb": verb, "cell": cell, "launcher": os.environ.get("VIA")}) + "\n")
if cell in os.environ.get("FAKE_FAIL", "").split(","):
    sys.exit("this cell fails on purpose")


def option(prefix):
    return next(a[len(prefix):] for a in args if a.startswith(prefix))


if verb == "fit":
    folder = Path(option("--checkpoint.dirpath="))
    folder.mkdir(parents=True)
    shutil.copy(os.environ["FAKE_CHECKPOINT"], folder / "best-epoch=0.ckpt")
elif verb == "test":
    import pandas as pd
    from bench_data import make_predictions

    out = Path(option("--trainer.default_root_dir=")) / "version_0"
    out.mkdir(parents=True)
    seed = int(hashlib.sha1(cell.encode()).hexdigest()[:6], 16)
    parts, metrics = [], {}
    for k, name in enumerate(("blend", "matched")):
        frames = make_predictions(seed + k, n_videos=12, name=name)
        parts.append(frames)
        # Numbers of this cell and test set; the AUC intervals come from the predictions.
        value = 0.5 + ((seed >> (4 * k)) % 50) / 100
        metrics[name] = {f"{level}_{metric}": value for level in ("frame", "video")
                         for metric in ("auc", "ap", "acc", "eer")}
        metrics[name] |= {"real_acc": value, "fake_acc": value}
        metrics[name] |= {"n_videos": 12, "n_frames": len(frames)}
    pd.concat(parts).to_parquet(out / "test_predictions.parquet", index=False)
    (out / "test_metrics.json").write_text(json.dumps(metrics))
elif verb == "prle-maps":
    import pandas as pd

    out = Path(args[args.index("--out") + 1])
    split = args[args.index("--split") + 1]
    (out / "maps").mkdir(parents=True, exist_ok=True)
    (out / "maps" / f"{split}.png").write_bytes(b"png")
    pd.DataFrame({"crop_path": [f"{split}.png"] * 3}).to_parquet(out / "index.parquet")
    pd.DataFrame(columns=["crop_path", "video_key", "frame_idx", "reason"]).to_csv(
        out / "failures.csv", index=False
    )
"""

#: What a Slurm job runs instead of ``python -m src.cli``: dfbench with the stand-in cells.
JOB_WRAPPER = """
import sys
from src.bench import runner
runner.DFBENCH = [sys.executable, {fake!r}]
from src.cli import main
sys.exit(main(sys.argv[1:]))
"""


def tiny_grid(folder: Path) -> Path:
    """Three plain cells and one PRLE cell (last) whose zoo is the first two; beside it its cache."""
    tiny = {"model.init_args.input_size": 32}

    def entry(name: str, config: str) -> dict:
        return {"name": name, "configs": [f"configs/detectors/{config}.yaml"], "overrides": tiny}

    spec = {
        "name": "tiny",
        "train_set": "synthetic",
        "seeds": [0],
        "profiles": {
            "demo": {
                "data": ["configs/data/cross_dataset_synthetic.yaml"],
                "configs": ["configs/profiles/demo.yaml"],
            }
        },
        "detectors": [
            entry("xception", "xception"),
            entry("vgg16", "vgg16"),
            entry("resnet50", "resnet50"),
            entry("prle_xception", "xception") | {"prle_zoo": ["xception", "vgg16"]},
        ],
    }
    path = folder / "grid.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    # Empty frame tables, for the preflight: the stand-in cells read none.
    (folder / "cache" / "tables").mkdir(parents=True)
    for name in ("cdf2", "dfd", "dfdc", "dfw", "ffpp"):
        (folder / "cache" / "tables" / f"{name}.parquet").touch()
    return path


@pytest.fixture
def fake_cells(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The stand-in ``dfbench`` for the cells (in this process and in Slurm jobs); its calls file."""
    script = tmp_path / "fake_dfbench.py"
    script.write_text(FAKE_DFBENCH)
    checkpoint = tmp_path / "selected.ckpt"
    torch.save(
        {
            "state_dict": {"weight": torch.zeros(3)},
            "hyper_parameters": {},
            "epoch": 0,
            "callbacks": {"ModelCheckpoint{}": {"monitor": "val/frame_auc", "current_score": 0.9}},
        },
        checkpoint,
    )
    wrapper = tmp_path / "job_dfbench.py"
    wrapper.write_text(JOB_WRAPPER.format(fake=str(script)))
    calls = tmp_path / "calls.jsonl"
    monkeypatch.setattr(runner_module, "DFBENCH", [sys.executable, str(script)])
    monkeypatch.setattr(slurm, "JOB_COMMAND", [sys.executable, str(wrapper)])
    monkeypatch.setenv("FAKE_CALLS", str(calls))
    monkeypatch.setenv("FAKE_CHECKPOINT", str(checkpoint))
    monkeypatch.setenv("FAKE_TESTS", str(TESTS))
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.delenv("FAKE_FAIL", raising=False)
    return calls


def fake_programs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **bodies: str) -> None:
    """Shell scripts named as the keywords (``sbatch=...``), first on PATH."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for name, body in bodies.items():
        path = folder / name
        path.write_text(f"#!/bin/bash\n{body}\n")
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")


def bench(grid: Path, out: Path, *more: str) -> int:
    """``dfbench bench GRID`` into ``out``, with the grid's cache of frame tables."""
    cache = grid.parent / "cache"
    return run(
        [str(grid), "--profile", "demo", "--out", str(out), "--no-wandb", "--cache-dir", str(cache)]
        + list(more)
    )


def grid_cells(grid: Path) -> list:
    """The cells ``bench`` runs (the cache folder is part of their identities)."""
    cache = (grid.parent / "cache").resolve()
    return load_grid(grid, "demo", extra_args=[f"--data.init_args.cache_dir={cache}"])


def quiet_runner(cells: list, out: Path) -> Runner:
    return Runner(cells, out, progress=ProgressLine(len(cells), stream=io.StringIO()))


# --------------------------------------------------------------------------- options


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["gpu=2"], "KEY one of partition, account, time, gpus"),
        (["partition"], "expected KEY=VALUE"),
        (["gpus=0"], "gpus=0: expected a whole number of at least 1"),
        (["throttle=two"], "throttle=two: expected a whole number"),
        (["requeue=yes"], "expected requeue=true or requeue=false"),
        (["time="], "the value is empty"),
    ],
)
def test_bad_slurm_options_get_one_line(options: list[str], message: str) -> None:
    with pytest.raises(SlurmError, match=message):
        parse_options(options)


def test_modes_that_do_not_go_together(tmp_path: Path) -> None:
    grid = tiny_grid(tmp_path)
    with pytest.raises(SlurmError, match="--slurm and --status do not go together"):
        bench(grid, tmp_path, "--slurm", "--status")
    with pytest.raises(SlurmError, match="--dry-run goes with --slurm"):
        bench(grid, tmp_path, "--dry-run")
    with pytest.raises(SlurmError, match="drop --cell 1"):
        bench(grid, tmp_path, "--report-only", "--cell", "1")
    with pytest.raises(SlurmError, match="--gpus 1 and --slurm-opt gpus=2 disagree"):
        bench(grid, tmp_path, "--slurm", "--gpus", "1", "--slurm-opt", "gpus=2")


# --------------------------------------------------------------------------- scripts


def sbatch_lines(text: str) -> list[str]:
    return [
        line.removeprefix("#SBATCH ") for line in text.splitlines() if line.startswith("#SBATCH")
    ]


def test_dry_run_writes_the_three_scripts_and_submits_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    grid = tiny_grid(tmp_path)
    code = bench(
        grid,
        tmp_path / "out",
        "--slurm",
        "--dry-run",
        "--set",
        "trainer.max_epochs=1",
        *("--slurm-opt", "partition=gpu", "--slurm-opt", "time=02:00:00"),
        *("--slurm-opt", "throttle=2", "--slurm-opt", "signal=USR1@90"),
        *("--slurm-opt", "requeue=true", "--slurm-opt", "extra=--mail-type=END"),
    )
    shown = capsys.readouterr().out
    assert code == 0
    folder = tmp_path / "out" / "tiny" / "demo" / "slurm"
    scripts = {p.stem: p.read_text() for p in folder.glob("*.sbatch")}
    assert set(scripts) == {"cells", "prle", "report"}
    assert not (folder / "jobs.json").exists()
    for text in scripts.values():
        assert text in shown
    logs = folder / "logs"
    cells = sbatch_lines(scripts["cells"])
    assert "--array=0,1,2%2" in cells
    assert f"--output={logs}/cells-%A_%a.out" in cells
    for line in ("--partition=gpu", "--time=02:00:00", "--signal=USR1@90", "--requeue"):
        assert line in cells
    assert "--mail-type=END" in cells
    assert "--ntasks-per-node=1" in cells
    assert not any(line.startswith("--gres") for line in cells)
    prle = sbatch_lines(scripts["prle"])
    assert "--array=3%2" in prle and "--kill-on-invalid-dep=yes" in prle
    report = sbatch_lines(scripts["report"])
    assert "--partition=gpu" in report
    assert "--signal=USR1@90" not in report and "--requeue" not in report
    # Dependencies: the PRLE array after cells 0 and 1 (its zoo), the report after both arrays.
    assert "--dependency=afterok:<cells job>_0:<cells job>_1 " in shown
    assert "--dependency=afterany:<cells job>:<prle job> " in shown
    # Each job repeats what makes the cells' identities, from the repository folder.
    command = scripts["cells"].splitlines()[-1]
    assert command.startswith("exec ")
    assert f"{grid.resolve()} --profile demo --out {(tmp_path / 'out').resolve()}" in command
    assert "--set trainer.max_epochs=1" in command and "--no-wandb" in command
    assert command.endswith("--cell $SLURM_ARRAY_TASK_ID")
    assert scripts["report"].splitlines()[-1].endswith("--report-only")
    assert f"cd {REPO}" in scripts["cells"]


def test_several_gpus_per_cell_run_their_fits_through_srun(tmp_path: Path) -> None:
    grid = tiny_grid(tmp_path)
    assert bench(grid, tmp_path, "--slurm", "--dry-run", "--slurm-opt", "gpus=4") == 0
    text = (tmp_path / "tiny" / "demo" / "slurm" / "cells.sbatch").read_text()
    lines = sbatch_lines(text)
    assert "--ntasks-per-node=4" in lines and "--gres=gpu:4" in lines and "--nodes=1" in lines
    command = text.splitlines()[-1]
    assert " --gpus 4 " in command and command.endswith("--cell $SLURM_ARRAY_TASK_ID --srun")
    report = (tmp_path / "tiny" / "demo" / "slurm" / "report.sbatch").read_text()
    assert "--gres" not in report and " --gpus 4 " in report.splitlines()[-1]


def test_done_cells_get_no_task_and_a_done_zoo_no_dependency(
    tmp_path: Path, fake_cells: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    grid = tiny_grid(tmp_path)
    cells = grid_cells(grid)
    runner = quiet_runner(cells, tmp_path)
    assert runner.run(only=0) == 0 and runner.run(only=1) == 0
    capsys.readouterr()
    assert bench(grid, tmp_path, "--slurm", "--dry-run") == 0
    shown = capsys.readouterr().out
    folder = tmp_path / "tiny" / "demo" / "slurm"
    assert "--array=2" in sbatch_lines((folder / "cells.sbatch").read_text())
    assert "--array=3" in sbatch_lines((folder / "prle.sbatch").read_text())
    assert "--dependency=afterok" not in shown
    assert "--dependency=afterany:<cells job>:<prle job> " in shown


def test_submission_chains_the_real_job_ids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "sbatch.log"
    # Job ids 101, 102, 103 in submission order; each call's arguments recorded.
    fake_programs(
        tmp_path,
        monkeypatch,
        sbatch=f'echo "$@" >> {log}; n=$(wc -l < {log}); echo "$((100 + n));cluster"',
    )
    grid = tiny_grid(tmp_path)
    assert bench(grid, tmp_path, "--slurm") == 0
    folder = tmp_path / "tiny" / "demo" / "slurm"
    assert log.read_text().splitlines() == [
        f"--parsable {folder}/cells.sbatch",
        f"--parsable --dependency=afterok:101_0:101_1 {folder}/prle.sbatch",
        f"--parsable --dependency=afterany:101:102 {folder}/report.sbatch",
    ]
    record = json.loads((folder / "jobs.json").read_text())
    assert record["jobs"] == {"cells": "101", "prle": "102", "report": "103"}
    assert record["cells"] == {"0": "101", "1": "101", "2": "101", "3": "102"}
    assert "submitted report: job 103" in capsys.readouterr().out


def test_a_refused_submission_says_why_and_what_was_submitted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = tmp_path / "n"
    fake_programs(
        tmp_path,
        monkeypatch,
        sbatch=f"echo x >> {calls}; if [ $(wc -l < {calls}) = 2 ]; then "
        'echo "sbatch: error: invalid partition specified: gpu" >&2; exit 1; fi; echo 7',
    )
    with pytest.raises(
        SlurmError,
        match=r"prle.sbatch: sbatch: error: invalid partition.*\(jobs submitted before it: 7\)",
    ):
        bench(tiny_grid(tmp_path), tmp_path, "--slurm")


# --------------------------------------------------------------------------- report, status


def test_report_only_renders_what_finished_and_names_what_did_not(
    tmp_path: Path,
    fake_cells: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    grid = tiny_grid(tmp_path)
    cells = grid_cells(grid)
    monkeypatch.setenv("FAKE_FAIL", cells[2].id)
    runner = quiet_runner(cells, tmp_path)
    assert runner.run() == 1
    report(runner.collect(), runner.root, wandb=False, stream=io.StringIO())
    tables = tmp_path / "tiny" / "demo" / "tables"
    rendered = {p.name: p.read_text() for p in tables.glob("*.csv")}
    for path in tables.glob("*"):
        path.unlink()
    (tmp_path / "tiny" / "demo" / "results.csv").unlink()
    calls = fake_cells.read_text()
    capsys.readouterr()

    assert bench(grid, tmp_path, "--report-only") == 1
    shown = capsys.readouterr().out
    assert fake_cells.read_text() == calls  # nothing trained
    assert {p.name: p.read_text() for p in tables.glob("*.csv")} == rendered
    assert f"cell 2 {cells[2].id}: failed: dfbench fit exited 1" in shown
    assert "1 of 4 cell(s) did not finish" in shown
    assert cells[2].detector not in rendered["cross_dataset_frame.csv"]
    assert cells[3].detector in rendered["cross_dataset_frame.csv"]


def test_report_only_of_a_finished_grid_exits_0(
    tmp_path: Path, fake_cells: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    grid = tiny_grid(tmp_path)
    assert quiet_runner(grid_cells(grid), tmp_path).run() == 0
    assert bench(grid, tmp_path, "--report-only") == 0
    assert "all 4 cells finished" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("status", "task", "in_use", "shown"),
    [
        ({"status": "done"}, None, False, "done"),
        ({"status": "done", "requeues": 2}, None, False, "done, requeued 2 time(s)"),
        (
            {"status": "failed", "error": "dfbench fit exited 1; see fit.log\ntail"},
            None,
            False,
            "failed: dfbench fit exited 1; see fit.log",
        ),
        ({"status": "pending"}, TaskState("PENDING", "Dependency"), False, "queued (Dependency)"),
        ({"status": "pending"}, TaskState("PENDING"), False, "queued"),
        ({"status": "running"}, TaskState("RUNNING", "", 1), True, "running, requeued 1 time(s)"),
        ({"status": "running"}, None, True, "running"),
        ({"status": "running"}, TaskState("TIMEOUT"), False, "stopped (Slurm: TIMEOUT)"),
        ({"status": "pending"}, TaskState("CANCELLED"), False, "pending (Slurm: CANCELLED)"),
        ({"status": "running"}, None, False, "stopped (its process died; a re-run continues it)"),
        (
            {"status": "interrupted", "signal": "SIGTERM"},
            None,
            False,
            "interrupted by SIGTERM; a re-run continues it",
        ),
        ({"status": "pending"}, None, False, "not started"),
    ],
)
def test_cell_state_lines(status: dict, task: TaskState | None, in_use: bool, shown: str) -> None:
    assert cell_state(status, task, in_use) == shown


def test_status_reads_the_results_folder_and_the_queue(
    tmp_path: Path,
    fake_cells: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    grid = tiny_grid(tmp_path)
    cells = grid_cells(grid)
    runner = quiet_runner(cells, tmp_path)
    monkeypatch.setenv("FAKE_FAIL", cells[1].id)
    runner.run(only=0)
    runner.run(only=1)
    slurm_folder = runner.root / "slurm"
    slurm_folder.mkdir()
    record = {
        "jobs": {"cells": "50", "prle": "51"},
        "cells": {"0": "50", "1": "50", "2": "50", "3": "51"},
    }
    (slurm_folder / "jobs.json").write_text(json.dumps(record))
    # squeue --Format with '|' after each field, as the status asks for; one other job's row.
    fake_programs(
        tmp_path,
        monkeypatch,
        squeue="printf '50|2|RUNNING|1|None\\n51|3|PENDING|0|Dependency\\n49|2|RUNNING|0|None\\n'",
        sacct="echo 'Slurm accounting storage is disabled' >&2; exit 1",
    )
    capsys.readouterr()
    assert bench(grid, tmp_path, "--status") == 0
    lines = capsys.readouterr().out.splitlines()
    assert "Slurm jobs of the last --slurm submission: cells 50, prle 51" in lines
    assert f"   0  {cells[0].id}  done" in lines
    assert (
        f"   1  {cells[1].id}  failed: dfbench fit exited 1; see cells/{cells[1].id}/fit.log in the benchmark's results folder"
        in lines
    )
    assert f"   2  {cells[2].id}  running, requeued 1 time(s)" in lines
    assert f"   3  {cells[3].id}  queued (Dependency)" in lines


def test_srun_flag_starts_fits_and_tests_through_the_launcher(
    tmp_path: Path, fake_cells: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--srun`` puts srun before each fit and test; here a stand-in srun marks them."""
    fake_programs(tmp_path, monkeypatch, srun='shift; VIA=srun exec "$@"')  # drops an option
    grid = tiny_grid(tmp_path)
    assert bench(grid, tmp_path, "--cell", "2", "--srun") == 0
    calls = [json.loads(line) for line in fake_cells.read_text().splitlines()]
    assert [(c["verb"], c["launcher"]) for c in calls] == [("fit", "srun"), ("test", "srun")]


def test_a_second_map_builder_waits_and_reuses_the_maps(tmp_path: Path, fake_cells: Path) -> None:
    """Two PRLE tasks of one zoo side by side: the one that comes second builds nothing."""
    grid = tiny_grid(tmp_path)
    cells = grid_cells(grid)
    first, second = quiet_runner(cells, tmp_path), quiet_runner(cells, tmp_path)
    assert first.run(only=0) == 0 and first.run(only=1) == 0
    folder = maps_folder(first.root, cells[3])
    folder.parent.mkdir(parents=True)
    fake_cells.unlink()
    with open(folder.parent / f"{folder.name}.lock", "w") as builder:
        fcntl.flock(builder, fcntl.LOCK_EX)  # the first task is building
        waiting = threading.Thread(target=second.run, kwargs={"only": 3})
        waiting.start()
        time.sleep(3.0)
        assert not fake_cells.exists()  # the second waits: no map build, no fit yet
        first._build_maps(cells[3], folder)
    waiting.join(timeout=120)
    assert maps_state(first.root, cells[3]) == "built"
    calls = [(c["verb"], c["cell"]) for c in map(json.loads, fake_cells.read_text().splitlines())]
    # One build (the first task's), then the second task's fit and test of its PRLE cell.
    assert calls == [("prle-maps", cells[3].id), ("fit", cells[3].id), ("test", cells[3].id)]
    assert second.status(cells[3])["status"] == "done"


# --------------------------------------------------------------------------- real Slurm


def table_files(root: Path) -> dict[str, str]:
    return {
        p.name: p.read_text()
        for p in sorted((root / "tables").glob("*"))
        if p.suffix in (".md", ".csv", ".tex")
    }


@pytest.mark.slurm
@pytest.mark.timeout(900)
def test_a_grid_submitted_to_slurm_gives_the_tables_of_a_plain_run(
    tmp_path: Path,
    fake_cells: Path,
    slurm_cluster,  # noqa: ANN001, F811
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for key, value in slurm_cluster.env.items():
        monkeypatch.setenv(key, value)
    grid = tiny_grid(tmp_path)
    start = time.monotonic()
    assert bench(grid, tmp_path / "slurm", "--slurm", "--slurm-opt", "cpus=1") == 0
    capsys.readouterr()
    assert bench(grid, tmp_path / "slurm", "--status") == 0
    states = [line.split("  ")[-1] for line in capsys.readouterr().out.splitlines()[2:]]
    # Seconds after the submission: no cell finished; the PRLE cell waits for its zoo.
    assert all(s.startswith(("queued", "running")) for s in states[:3]), states
    assert states[3].startswith("queued"), states
    slurm_cluster.wait_for_jobs(timeout_s=840)
    took = time.monotonic() - start
    root = tmp_path / "slurm" / "tiny" / "demo"
    logs = root / "slurm" / "logs"
    (report_log,) = logs.glob("report-*.out")
    shown = report_log.read_text()
    assert "all 4 cells finished" in shown, shown + slurm_cluster.logs()
    assert len(list(logs.glob("cells-*_*.out"))) == 3
    assert len(list(logs.glob("prle-*_3.out"))) == 1
    calls = [json.loads(line) for line in fake_cells.read_text().splitlines()]
    cells = grid_cells(grid)
    # The PRLE cell's maps and fit came after its zoo's fits, and no zoo cell was fitted twice.
    order = [(c["verb"], c["cell"]) for c in calls]
    fits = [cell for verb, cell in order if verb == "fit"]
    assert sorted(fits) == sorted(c.id for c in cells)
    first_map = order.index(next(step for step in order if step[0] == "prle-maps"))
    for zoo in cells[3].zoo:
        assert order.index(("fit", zoo.id)) < first_map
    via_slurm = table_files(root)
    assert "cross_dataset_frame.csv" in via_slurm

    fake_cells.unlink()
    capsys.readouterr()
    assert bench(grid, tmp_path / "plain") == 0
    assert table_files(tmp_path / "plain" / "tiny" / "demo") == via_slurm
    capsys.readouterr()
    assert bench(grid, tmp_path / "slurm", "--status") == 0
    assert capsys.readouterr().out.count("  done\n") == 4
    print(f"grid through Slurm: {took:.0f} s")
