"""``dfbench fit | validate | test | predict``: LightningCLI with dfbench's defaults.

Stacked ``-c`` configs, ``class_path``/``init_args`` for model and data. What
these subcommands add to plain LightningCLI:

* a ``checkpoint`` callback that keeps the best epoch by ``val/frame_auc``
  (validation data only; the test sets never choose a checkpoint) and the last;
* a CSV logger under ``runs/`` by default and a default seed of 0;
* ``validate``/``test`` print the frame- and video-level table; ``test`` writes
  it to ``<log_dir>/test_metrics.json`` and every frame's score to
  ``<log_dir>/test_predictions.parquet``;
* ``predict`` writes ``<log_dir>/predictions/frames.csv`` and ``videos.csv``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.cli import LightningCLI

from src.data.base import DeepfakeDataModuleBase
from src.detectors import Detector
from src.files import atomic_write, atomic_write_csv, atomic_write_json
from src.metrics import format_metrics_table, video_scores


class DFBenchCLI(LightningCLI):
    """LightningCLI plus the checkpoint, logger and result files listed in the module docstring."""

    def add_arguments_to_parser(self, parser) -> None:  # noqa: ANN001 (jsonargparse parser)
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "checkpoint.monitor": "val/frame_auc",
                "checkpoint.mode": "max",
                "checkpoint.save_last": True,
                "checkpoint.filename": "best-epoch{epoch:03d}",
                "checkpoint.auto_insert_metric_name": False,
                "trainer.default_root_dir": "runs",
                "trainer.logger": {
                    "class_path": "pytorch_lightning.loggers.CSVLogger",
                    "init_args": {"save_dir": "runs"},
                },
            }
        )

    def before_instantiate_classes(self) -> None:
        # With a checkpoint the weights come from it: building the network with
        # `pretrained: true` first would only fetch weights (and fail offline).
        config = self.config.get(self.subcommand, self.config)
        init_args = config.get("model", {}).get("init_args", {})
        if config.get("ckpt_path") and init_args.get("pretrained"):
            init_args["pretrained"] = False

    def _log_dir(self) -> Path:
        # trainer.log_dir broadcasts from rank 0 under DDP: every rank must call it.
        return Path(self.trainer.log_dir or self.trainer.default_root_dir)

    def after_fit(self) -> None:
        if not self.trainer.is_global_zero:
            return
        callback = self.trainer.checkpoint_callback
        if isinstance(callback, ModelCheckpoint) and callback.best_model_path:
            print(
                f"best checkpoint ({callback.monitor} = {float(callback.best_model_score):.4f}): "
                f"{callback.best_model_path}"
            )
        if self.model.val_results:
            print(format_metrics_table(self.model.val_results, "validation (last epoch)"))

    def after_validate(self) -> None:
        if self.trainer.is_global_zero and self.model.val_results:
            print(format_metrics_table(self.model.val_results, "validation"))

    def after_test(self) -> None:
        log_dir = self._log_dir()
        if not self.trainer.is_global_zero:
            return
        results = self.model.test_results
        print(format_metrics_table(results, "test (frame and video level; values in %)"))
        path = atomic_write_json(log_dir / "test_metrics.json", results)
        frames = frame_predictions(self.model.test_predictions, self.datamodule, "test")
        atomic_write(
            log_dir / "test_predictions.parquet",
            lambda handle: frames.to_parquet(handle, index=False),
        )
        print(
            f"metrics written to {path}; per-frame scores to {log_dir / 'test_predictions.parquet'}"
        )

    def after_predict(self) -> None:
        out = self._log_dir() / "predictions"
        if not self.trainer.is_global_zero:
            return
        frames = frame_predictions(self.model.predictions, self.datamodule, "predict")
        videos = video_predictions(frames, self.model.video_score)
        atomic_write_csv(out / "frames.csv", frames.drop(columns="video_idx"))
        atomic_write_csv(out / "videos.csv", videos)
        print(
            f"{len(frames)} frame and {len(videos)} video scores written to {out}/frames.csv, videos.csv"
        )


def frame_predictions(predictions: dict[str, dict], datamodule: object, stage: str) -> pd.DataFrame:
    """One row per scored frame: set, video key and index, frame, sample, label, logit, score."""
    parts = []
    for index, (name, p) in enumerate(predictions.items()):
        keys = np.asarray(datamodule.video_keys(stage, index), dtype=object)
        columns = {"set": name, "video_key": keys[p["video_idx"]]}
        columns |= {
            k: p[k] for k in ("video_idx", "frame_idx", "sample_idx", "label", "logit", "score")
        }
        parts.append(pd.DataFrame(columns))
    return pd.concat(parts, ignore_index=True)


def video_predictions(frames: pd.DataFrame, how: str) -> pd.DataFrame:
    """One row per video, its score aggregated from its frames as the metrics do."""
    parts = []
    for name, part in frames.groupby("set", sort=False):
        _, scores, _ = video_scores(
            part["score"].to_numpy(),
            part["label"].to_numpy() == 1,
            part["video_idx"].to_numpy(),
            how,
        )
        videos = part.groupby("video_idx").agg(
            video_key=("video_key", "first"), label=("label", "first"), n_frames=("score", "size")
        )
        parts.append(videos.reset_index(drop=True).assign(set=name, score=scores))
    return pd.concat(parts, ignore_index=True)[["set", "video_key", "label", "n_frames", "score"]]


def run(argv: list[str]) -> int:
    """Run a LightningCLI subcommand; ``argv[0]`` is ``fit``, ``validate``, ``test`` or ``predict``."""
    DFBenchCLI(
        Detector,
        DeepfakeDataModuleBase,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_kwargs={"overwrite": True},
        seed_everything_default=0,
        # LightningCLI warns when given args while sys.argv holds others (as under pytest).
        args=None if argv == sys.argv[1:] else argv,
    )
    return 0
