"""Experiment records: every logger gets the resolved config and the test summary; predict's tables."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import wandb
import yaml
from cli_helpers import scripted_args

from src.cli import UsageError, main
from src.cli.predictions import frame_predictions, skipped_files, video_predictions
from src.cli.records import experiment_record, run_meta
from src.cli.records import test_summary as summary_of_test
from src.configs import RUN_META_ENV, config_hash

RECORD_KEYS = {
    "verb",
    "detector",
    "data",
    "run",
    "session",
    "optimizer",
    "lr",
    "lr_scheduler",
    "batch_size",
    "max_epochs",
    "seed",
    "input_size",
    "train_sets",
    "test_sets",
    "profile",
    "config_files",
    "config_hash",
    "code_version",
}
META = {"benchmark": "cross_dataset", "profile": "demo", "cell": "c7", "wandb_group": "xd/demo"}


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A runs folder holding one ScriptedDetector run (one epoch, CSV logger)."""
    root = tmp_path_factory.mktemp("records") / "runs"
    assert main(["fit", *scripted_args(root, epochs=1)]) == 0
    return root


def session(root: Path, verb: str) -> Path:
    (folder,) = root.glob(f"scripted_detector-*/synthetic_face/*/{verb}-*")
    return folder


def test_csv_logger_records_config_and_test_metrics(fitted: Path) -> None:
    hparams = yaml.safe_load((session(fitted, "fit") / "hparams.yaml").read_text())
    assert set(hparams["dfbench"]) == RECORD_KEYS
    record = hparams["dfbench"]
    assert (record["verb"], record["data"]) == ("fit", "synthetic_face")
    # Batches of 4, not the data config's: a recipe of its own, named by its hash.
    assert record["detector"].startswith("scripted_detector-") and len(record["detector"]) == 24
    assert (record["batch_size"], record["max_epochs"], record["seed"]) == (4, 1, 0)
    assert record["test_sets"] == ["blend", "matched"]
    assert hparams["model"]["class_path"] == "cli_helpers.ScriptedDetector"
    assert hparams["data"]["init_args"]["batch_size"] == 4

    assert main(["test", *scripted_args(fitted, "--ckpt_path=best", epochs=1)]) == 0
    folder = session(fitted, "test")
    metrics = pd.read_csv(folder / "metrics.csv")
    results = json.loads((folder / "test_metrics.json").read_text())
    assert metrics["test/blend/frame_auc"].dropna().tolist() == [results["blend"]["frame_auc"]]
    tested = yaml.safe_load((folder / "hparams.yaml").read_text())["dfbench"]
    # Same model, data, seed: the settings hash equals the fit's except for what the verb changes.
    assert tested["verb"] == "test" and tested["run"] == record["run"]


def test_wandb_offline_run_has_config_group_and_summary(
    fitted: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(RUN_META_ENV, json.dumps(META))
    logger = ["--trainer.logger=WandbLogger", "--trainer.logger.init_args.offline=true"]
    try:
        assert main(["test", *scripted_args(fitted, *logger, "--ckpt_path=best", epochs=1)]) == 0
        run = wandb.run
        assert (run.project, run.group, run.job_type) == ("dfbench", "xd/demo", "test")
        assert set(run.config["dfbench"]) == RECORD_KEYS
        assert run.config["dfbench"]["profile"] == "demo"
        assert dict(run.config["run"]) == META
        assert run.config["model"]["class_path"] == "cli_helpers.ScriptedDetector"
        # wandb's Summary answers keys() but is not a Mapping.
        keys = [k for k in run.summary.keys() if k.startswith("test/")]  # noqa: SIM118
        summary = {k: run.summary[k] for k in keys}
    finally:
        wandb.finish()
    (folder,) = [f for f in fitted.glob("scripted_detector-*/*/*/test-*") if (f / "wandb").is_dir()]
    results = json.loads((folder / "test_metrics.json").read_text())
    assert summary == summary_of_test(results)
    assert summary["test/blend/frame_auc"] == results["blend"]["frame_auc"] == 1.0


def test_tensorboard_logger_works(fitted: Path) -> None:
    logger = ["--trainer.logger=TensorBoardLogger"]
    assert main(["test", *scripted_args(fitted, *logger, "--ckpt_path=best", epochs=1)]) == 0
    (events,) = fitted.glob("scripted_detector-*/*/*/test-*/events.out.tfevents.*")
    hparams = yaml.safe_load((events.parent / "hparams.yaml").read_text())
    assert set(hparams["dfbench"]) == RECORD_KEYS


def test_config_hash_ignores_bookkeeping_only() -> None:
    config = {
        "model": {"class_path": "a.B", "init_args": {"lr": 1}},
        "trainer": {"max_epochs": 3, "default_root_dir": "runs"},
        "ckpt_path": "x.ckpt",
        "seed_everything": 0,
    }
    moved = json.loads(json.dumps(config))
    moved["trainer"]["default_root_dir"] = "elsewhere"
    moved["ckpt_path"] = None
    assert config_hash(moved) == config_hash(config)
    longer = json.loads(json.dumps(config))
    longer["trainer"]["max_epochs"] = 4
    assert config_hash(longer) != config_hash(config)
    assert len(config_hash(config)) == 12


def test_experiment_record_collects_the_settings() -> None:
    config = {
        "model": {
            "class_path": "src.detectors.LAANet",
            "init_args": {
                "input_size": 384,
                "optimizer": {"class_path": "torch.optim.Adam", "init_args": {"lr": 2e-4}},
                "lr_scheduler": {"class_path": "src.detectors.training.WarmupDecay"},
            },
        },
        "data": {"init_args": {"train": ["ffpp_c23"], "test": ["cdf2"], "batch_size": 8}},
        "trainer": {"max_epochs": 100},
        "seed_everything": 3,
        "config": ["ignored"],
    }
    names = {"verb": "fit", "detector": "laa_net", "data": "ffpp_c23", "run": "r", "session": "s"}
    files = ["configs/detectors/laa_net.yaml", "configs/profiles/laa_net_demo.yaml"]
    record = experiment_record(config, names, files, {}, "abc123")
    assert record["dfbench"] == names | {
        "optimizer": "Adam",
        "lr": 2e-4,
        "lr_scheduler": "WarmupDecay",
        "batch_size": 8,
        "max_epochs": 100,
        "seed": 3,
        "input_size": 384,
        "train_sets": ["ffpp_c23"],
        "test_sets": ["cdf2"],
        "profile": "laa_net_demo",
        "config_files": files,
        "config_hash": config_hash(config),
        "code_version": "abc123",
    }
    assert "config" not in record and "run" not in record and record["trainer"] == config["trainer"]
    with_meta = experiment_record(config, names, files, META | {"code_version": "grid"}, "abc")
    # One code version: the running code's, whatever the grid's metadata says.
    assert with_meta["dfbench"]["code_version"] == "abc" and with_meta["run"]["cell"] == "c7"


def test_run_meta_must_be_a_json_object(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(RUN_META_ENV, "[1, 2]")
    with pytest.raises(UsageError, match="must be a JSON object, got list"):
        run_meta()
    monkeypatch.setenv(RUN_META_ENV, "{bad")
    with pytest.raises(UsageError, match="is not JSON"):
        run_meta()
    monkeypatch.delenv(RUN_META_ENV)
    assert run_meta() == {}


# ------------------------------------------------------------------ predict
class FolderLike:
    """What predict reads from a DataModule of a user's files: keys, paths, skipped files."""

    def __init__(self, skipped: pd.DataFrame | None) -> None:
        self._skipped = skipped

    def video_keys(self, stage: str, index: int) -> list[str]:
        return ["files/a.mp4", "files/b.jpg"]

    def video_paths(self, stage: str, index: int) -> list[str]:
        return ["/data/files/a.mp4", "/data/files/b.jpg"]

    def skipped(self) -> pd.DataFrame | None:
        return self._skipped


def test_predict_tables_carry_sources_and_unknown_labels() -> None:
    predictions = {
        "files": {
            "video_idx": np.array([0, 0, 1]),
            "frame_idx": np.array([0, 5, 0]),
            "sample_idx": np.array([0, 1, 2]),
            "label": np.array([-1.0, -1.0, -1.0]),
            "logit": np.array([0.0, 2.0, -1.0]),
            "score": np.array([0.5, 0.9, 0.2]),
        }
    }
    frames = frame_predictions(predictions, FolderLike(None), "predict")
    assert frames.source_path.tolist() == ["/data/files/a.mp4"] * 2 + ["/data/files/b.jpg"]
    assert frames.label.isna().all()
    videos = video_predictions(frames, "mean")
    assert videos.score.tolist() == pytest.approx([0.7, 0.2])
    assert videos.n_frames.tolist() == [2, 1] and videos.label.isna().all()


def test_skipped_files_come_from_the_datamodule() -> None:
    table = pd.DataFrame({"path": ["/data/x.mp4"], "reason": ["no face found"]})
    assert skipped_files(FolderLike(table)).to_dict("records") == table.to_dict("records")
    empty = skipped_files(FolderLike(None))
    assert empty.empty and list(empty.columns) == ["path", "reason"]
    assert list(skipped_files(object()).columns) == ["path", "reason"]
    with pytest.raises(ValueError, match=r"skipped\(\) lacks the columns \['reason'\]"):
        skipped_files(FolderLike(pd.DataFrame({"path": ["x"]})))
