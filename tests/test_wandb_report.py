"""W&B reporting: the online/offline decision, per-cell loggers and the leaderboard run."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import wandb
from PIL import Image

from src.bench.schema import RESULT_COLUMNS
from src.bench.wandb_report import (
    CELL_COLUMNS,
    cell_logger_args,
    cells_table,
    default_group,
    log_leaderboard,
    offline_run_dirs,
    results_table,
    summary,
    sync_hint,
    wandb_mode,
)
from src.cli import main

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
WANDB_VARIABLES = ("WANDB_MODE", "WANDB_API_KEY", "WANDB_DISABLED", "WANDB_BASE_URL", "NETRC")


@pytest.fixture
def bare_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No W&B variables, an empty home (so no ~/.netrc) and no network; returns the home."""
    for name in WANDB_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("wandb_mode() must not touch the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    return home


NETRC_WANDB = "machine api.wandb.ai\n  login user\n  password 0123456789abcdef\n"


@pytest.mark.parametrize(
    ("env", "netrc", "expected"),
    [
        ({}, None, "offline"),  # fresh machine: no account, no network needed
        ({"WANDB_API_KEY": "k" * 40}, None, "online"),
        ({"WANDB_API_KEY": " "}, None, "offline"),
        ({}, NETRC_WANDB, "online"),  # `wandb login` wrote ~/.netrc
        ({}, "machine example.com login u password p\n", "offline"),
        ({}, "machine api.wandb.ai login user\n", "offline"),  # entry without a key
        ({}, "machine api.wandb.ai login\n", "offline"),  # malformed file
        ({"WANDB_BASE_URL": "https://wandb.corp.example"}, NETRC_WANDB, "offline"),
        (
            {"WANDB_BASE_URL": "https://wandb.corp.example"},
            "machine wandb.corp.example login u password p\n",
            "online",
        ),
        ({"WANDB_MODE": "offline", "WANDB_API_KEY": "k" * 40}, NETRC_WANDB, "offline"),
        ({"WANDB_MODE": "disabled", "WANDB_API_KEY": "k" * 40}, NETRC_WANDB, "disabled"),
        ({"WANDB_MODE": "dryrun", "WANDB_API_KEY": "k" * 40}, None, "offline"),
        ({"WANDB_MODE": "online"}, None, "online"),  # explicit request, even without a key
        ({"WANDB_MODE": "Online"}, None, "online"),
        ({"WANDB_DISABLED": "true", "WANDB_API_KEY": "k" * 40}, None, "disabled"),
        ({"WANDB_DISABLED": "false", "WANDB_API_KEY": "k" * 40}, None, "online"),
        ({"WANDB_MODE": "offline", "WANDB_DISABLED": "true"}, None, "offline"),
    ],
)
def test_mode_decision(
    bare_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    netrc: str | None,
    expected: str,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    if netrc is not None:
        (bare_env / ".netrc").write_text(netrc)
    assert wandb_mode() == expected


def test_mode_reads_netrc_variable(
    bare_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "auth" / "netrc"
    elsewhere.parent.mkdir()
    elsewhere.write_text(NETRC_WANDB)
    assert wandb_mode() == "offline"
    monkeypatch.setenv("NETRC", str(elsewhere))
    assert wandb_mode() == "online"
    # $NETRC replaces ~/.netrc rather than adding to it.
    (bare_env / ".netrc").write_text(NETRC_WANDB)
    monkeypatch.setenv("NETRC", str(tmp_path / "missing"))
    assert wandb_mode() == "offline"


def test_mode_rejects_unknown_value(bare_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offlne")
    with pytest.raises(ValueError, match="offlne"):
        wandb_mode()


STRINGS = {"project", "group", "name", "id", "resume", "save_dir", "mode"}


def init_args(args: list[str]) -> dict[str, object]:
    """The logger's init_args from cell_logger_args(), decoded."""
    prefix = "--trainer.logger.init_args."
    pairs = (arg.removeprefix(prefix).split("=", 1) for arg in args if arg.startswith(prefix))
    return {key: value if key in STRINGS else json.loads(value) for key, value in pairs}


def test_cell_logger_args_follow_mode(bare_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    args = cell_logger_args("cross_dataset", "c0ffee", "xception", ["ffpp_c23", "cdf2"], "cells/c")
    assert args[0] == "--trainer.logger=pytorch_lightning.loggers.WandbLogger"
    assert init_args(args) == {
        "project": "dfbench",
        "group": "cross_dataset",
        "name": "c0ffee",
        "id": "c0ffee",
        "resume": "allow",
        "tags": ["xception", "ffpp_c23", "cdf2"],
        "save_dir": "cells/c",
        "offline": True,
        "mode": "offline",
        "log_model": False,
    }
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    online = init_args(cell_logger_args("b", "c", "d", [], Path("x")))
    assert (online["offline"], online["mode"], online["tags"]) == (False, "online", ["d"])


def test_cell_logger_fit_then_test_share_one_run(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tiny_synthetic_args: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.chdir(tmp_path)
    # All digits and an "e": YAML would read it as a float if the CLI did not keep it a string.
    cell = "0012e345"
    save_dir = tmp_path / "cells" / cell
    logger_args = cell_logger_args(
        "cross_dataset", cell, "xception", ["blend", "matched"], save_dir
    )
    configs = ["detectors/xception.yaml", "data/synthetic.yaml", "profiles/demo.yaml"]
    base = [arg for config in configs for arg in ("-c", str(CONFIGS / config))]
    base += [*tiny_synthetic_args, "--trainer.limit_train_batches=1", *logger_args]

    try:
        assert main(["fit", *base]) == 0
        run = wandb.run
        assert (run.id, run.name, run.group, run.project) == (
            cell,
            cell,
            "cross_dataset",
            "dfbench",
        )
        assert set(run.tags) == {"xception", "blend", "matched"}
        assert run.settings.mode in {"offline", "dryrun"}
    finally:
        # Lightning leaves the run open (a subprocess would close it on exit).
        wandb.finish()
    (fit_dir,) = save_dir.glob("wandb/offline-run-*")
    assert fit_dir.name.endswith(f"-{cell}")
    assert (fit_dir / f"run-{cell}.wandb").stat().st_size > 0
    # Checkpoints go to the named run under the logger's save_dir (src/cli/runs.py).
    (last,) = save_dir.glob("xception-*/synthetic_face/*/checkpoints/last.ckpt")

    try:
        assert main(["test", *base, f"--ckpt_path={last}"]) == 0
    finally:
        wandb.finish()
    run_dirs = offline_run_dirs(save_dir)
    assert len(run_dirs) == 2 and all(d.name.endswith(f"-{cell}") for d in run_dirs)
    # The test joins the run of its checkpoint.
    assert len(list(last.parents[1].glob("test-*/test_metrics.json"))) == 1
    assert sync_hint(run_dirs) == f"wandb sync {run_dirs[0]} {run_dirs[1]}"
    capsys.readouterr()


def result_rows() -> pd.DataFrame:
    """Four results-store rows: two detectors, frame and video level."""
    rows = []
    for detector in ("xception", "laa_net_no_efpn"):
        for level in ("frame", "video"):
            frame = level == "frame"
            rows.append(
                {
                    "benchmark": "cross_dataset",
                    "profile": "demo",
                    "cell": f"cell-{detector}",
                    "detector": detector,
                    "flags": "{}" if detector == "xception" else None,
                    "train_set": "ffpp_c23",
                    "test_set": "cdf2",
                    "level": level,
                    "seed": 0,
                    "auc": 0.91,
                    "ap": 0.93,
                    "acc": 0.8,
                    "eer": 0.17,
                    "real_acc": 0.75 if frame else np.nan,
                    "fake_acc": 0.85 if frame else np.nan,
                    "n_videos": 10,
                    "n_frames": 40,
                    "train_time_s": 12.5,
                    "test_images_per_s": 210.0,
                    "params": 20_811_050,
                    "config_hash": "ab12",
                    "code_version": "deadbeef",
                    "predictions": f"cells/cell-{detector}/test_predictions.parquet",
                    "prediction_set": "cdf2",
                    "val_auc": 0.99,
                    "best_epoch": 3,
                    "val_fakes": "real",
                    "pixel_auc": np.nan,
                    "pixel_iou": np.nan,
                    "pixel_f1": np.nan,
                    "n_pixel_frames": np.nan,
                }
            )
    # Stored column order differs from the schema's; the table follows the schema.
    return pd.DataFrame(rows)[list(reversed(RESULT_COLUMNS))]


def test_results_table_needs_every_column() -> None:
    with pytest.raises(ValueError, match="auc"):
        results_table(result_rows().drop(columns="auc"))


def test_leaderboard_run_holds_tables_and_images(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    roc = tmp_path / "roc_cdf2.png"
    Image.fromarray(np.full((32, 48, 3), 200, np.uint8)).save(roc)
    markdown = "| detector | CDF2 |\n|---|---|\n| xception & co | 91.0 |"
    numbers = pd.DataFrame({"detector": ["xception", "laa_net"], "cdf2/auc": [91.0, np.nan]})
    save_dir = tmp_path / "results" / "cross_dataset"
    started = []
    init = wandb.init

    def recording_init(**kwargs):
        run = init(**kwargs)
        finish = run.finish
        summary_at_finish: dict = {}

        def recording_finish(*args, **finish_kwargs):
            keys = run.summary.keys()  # a wandb Summary has keys() but no iteration
            summary_at_finish.update({key: run.summary[key] for key in keys})
            return finish(*args, **finish_kwargs)

        run.finish = recording_finish
        started.append((kwargs, summary_at_finish))
        return run

    monkeypatch.setattr(wandb, "init", recording_init)

    run_dir = log_leaderboard(
        result_rows(),
        {"cross_dataset_frame": numbers},
        {"roc_cdf2": roc},
        "cross_dataset",
        save_dir,
        project="my-project",
        markdown={"cross_dataset_frame": markdown},
    )

    assert run_dir.parent == save_dir / "wandb" and run_dir.name.startswith("offline-run-")
    assert offline_run_dirs(save_dir.parent) == [run_dir]
    assert wandb.run is None  # finished, nothing left open
    (log,) = run_dir.glob("run-*.wandb")
    assert log.stat().st_size > 0
    media = run_dir / "files" / "media"
    (table_file,) = media.glob("table/results_*.table.json")
    table = json.loads(table_file.read_text())
    assert table["columns"] == list(RESULT_COLUMNS)
    assert [row[table["columns"].index("detector")] for row in table["data"]] == [
        "xception",
        "xception",
        "laa_net_no_efpn",
        "laa_net_no_efpn",
    ]
    real_acc = [row[table["columns"].index("real_acc")] for row in table["data"]]
    assert real_acc == [0.75, None, 0.75, None]
    # One row per cell, and the rendered table as a proper table of numbers.
    (cells_file,) = media.glob("table/cells_*.table.json")
    cells = json.loads(cells_file.read_text())
    assert [row[0] for row in cells["data"]] == ["cell-xception", "cell-laa_net_no_efpn"]
    (rendered,) = media.glob("table/tables/cross_dataset_frame_*.table.json")
    rendered = json.loads(rendered.read_text())
    assert rendered["columns"] == ["detector", "cdf2/auc"]
    assert rendered["data"] == [["xception", 91.0], ["laa_net", None]]
    (page,) = media.glob("html/tables_text/cross_dataset_frame_*.html")
    assert "xception &amp; co | 91.0 |" in page.read_text()
    (image,) = media.glob("images/figures/roc_cdf2_*.png")
    assert Image.open(image).size == (48, 32)
    # Project, the default group <benchmark>/<profile> and the summary's scalars.
    ((kwargs, saved),) = started
    assert (kwargs["project"], kwargs["group"]) == ("my-project", "cross_dataset/demo")
    scalars = {key: value for key, value in saved.items() if "_auc/" in key}
    assert scalars == {
        "cross_dataset_auc/xception": pytest.approx(0.91),
        "cross_dataset_auc/laa_net_no_efpn": pytest.approx(0.91),
    }
    assert sync_hint([run_dir]) == f"wandb sync {run_dir}"
    capsys.readouterr()


def test_cells_table_and_summary() -> None:
    rows = result_rows()
    rows.loc[rows["detector"] == "laa_net_no_efpn", "auc"] = 0.7
    extra = rows.iloc[[0, 1]].copy()  # xception on its own training set
    extra["test_set"] = "ffpp_c23"
    extra["auc"] = [0.99, 0.98]
    rows = pd.concat([rows, extra], ignore_index=True)

    cells = cells_table(rows)
    assert list(cells["cell"]) == ["cell-xception", "cell-laa_net_no_efpn"]
    assert list(cells.columns[: len(CELL_COLUMNS)]) == list(CELL_COLUMNS)
    first = cells.iloc[0]
    assert (first["auc/cdf2/frame"], first["auc/ffpp_c23/frame"], first["auc/ffpp_c23/video"]) == (
        0.91,
        0.99,
        0.98,
    )
    assert np.isnan(cells.iloc[1]["auc/ffpp_c23/frame"]) and cells.iloc[1]["val_auc"] == 0.99

    assert summary(rows) == {
        "in_dataset_auc/xception": pytest.approx(0.99),
        "cross_dataset_auc/xception": pytest.approx(0.91),
        "cross_dataset_auc/laa_net_no_efpn": pytest.approx(0.7),
    }


def test_group_defaults_to_benchmark_and_profile(bare_env: Path) -> None:
    assert default_group("cross_dataset", "paper") == "cross_dataset/paper"
    args = init_args(
        cell_logger_args("b", "c", "d", [], "x", project="p", group=default_group("b", "demo"))
    )
    assert (args["project"], args["group"]) == ("p", "b/demo")


def test_sync_hint_quotes_paths(tmp_path: Path) -> None:
    spaced = tmp_path / "my results" / "wandb" / "offline-run-20260101_000000-abc"
    assert sync_hint([spaced, "plain"]) == f"wandb sync '{spaced}' plain"
    assert sync_hint([]) == ""
