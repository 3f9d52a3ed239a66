"""The ``dfbench`` command.

``dfbench fit | validate | test | predict`` are LightningCLI subcommands
(stacked ``-c`` configs, ``class_path``/``init_args`` for model and data).
Every other verb is a plain function registered with :func:`verb`; adding one
is a decorated function, and ``dfbench --help`` lists them all::

    @verb("index", "write a dataset's video table")
    def index(argv: list[str]) -> int:
        parser = argparse.ArgumentParser(prog="dfbench index")
        ...

What the Lightning subcommands add to plain LightningCLI:

* a ``checkpoint`` callback that keeps the best epoch by ``val/frame_auc``
  (validation data only; the test sets never choose a checkpoint) and the last;
* a CSV logger under ``runs/`` by default and a default seed of 0;
* ``validate``/``test`` print the frame- and video-level table; ``test`` writes
  it to ``<log_dir>/test_metrics.json`` and every frame's score to
  ``<log_dir>/test_predictions.parquet``;
* ``predict`` writes ``<log_dir>/predictions/frames.csv`` and ``videos.csv``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.cli import LightningCLI

from src.data.base import DeepfakeDataModuleBase
from src.detectors import Detector, build_detector, list_detectors
from src.detectors.registry import registry_entry
from src.files import atomic_write, atomic_write_csv, atomic_write_json
from src.metrics import format_metrics_table, video_scores

LIGHTNING_SUBCOMMANDS = {
    "fit": "train a detector (checkpoint chosen on the validation split)",
    "validate": "evaluate on the validation split",
    "test": "evaluate on every test set; print and save frame/video metrics",
    "predict": "score every frame and video; write CSV files",
}


@dataclass(frozen=True)
class Verb:
    name: str
    help: str
    run: Callable[[list[str]], int]


VERBS: dict[str, Verb] = {}


def verb(
    name: str, help: str
) -> Callable[[Callable[[list[str]], int]], Callable[[list[str]], int]]:
    """Register ``run(argv) -> exit code`` as ``dfbench NAME``."""

    def decorator(run: Callable[[list[str]], int]) -> Callable[[list[str]], int]:
        VERBS[name] = Verb(name, help, run)
        return run

    return decorator


class DFBenchCLI(LightningCLI):
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


def run_lightning(argv: list[str]) -> int:
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


@verb("detectors", "list the registered detectors and their input contracts")
def detectors_verb(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="dfbench detectors", description=VERBS["detectors"].help)
    parser.add_argument(
        "--params", action="store_true", help="also build each one and count its parameters"
    )
    args = parser.parse_args(argv)
    for name in list_detectors():
        entry = registry_entry(name)
        model = build_detector(name, pretrained=False)
        contract = model.input_contract
        line = (
            f"{name:<18} {entry.obj.__name__:<20} input {contract.input_size[0]}x{contract.input_size[1]} "
            f"mean {contract.mean} std {contract.std}"
        )
        if args.params:
            line += f"  {sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters"
        print(line)
    return 0


@verb("index", "write a dataset's video table (CSV) from its official layout")
def index_verb(argv: list[str]) -> int:
    from src.data.indexers.command import run_index

    return run_index(argv)


@verb("preprocess", "extract evenly spaced face frames, landmarks and masks into the frame cache")
def preprocess_verb(argv: list[str]) -> int:
    from src.data.preprocess import run_preprocess

    return run_preprocess(argv)


@verb("synth", "write small synthetic copies of every dataset's on-disk layout")
def synth_verb(argv: list[str]) -> int:
    from src.data.synth import run_synth

    return run_synth(argv)


@verb("show-augment", "draw real / SBI / BI fakes with their masks for a few training faces")
def show_augment_verb(argv: list[str]) -> int:
    from src.augment.show import run_show_augment

    return run_show_augment(argv)


@verb("import-laa-net", "convert the LAA-Net authors' released weights into a dfbench checkpoint")
def import_laa_net_verb(argv: list[str]) -> int:
    from src.detectors.laa_net.importer import write_checkpoint

    parser = argparse.ArgumentParser(
        prog="dfbench import-laa-net", description=VERBS["import-laa-net"].help
    )
    parser.add_argument("--checkpoint", required=True, help="the authors' released .pth file")
    parser.add_argument("--out", required=True, help="Lightning checkpoint to write (.ckpt)")
    args = parser.parse_args(argv)
    path, count = write_checkpoint(args.checkpoint, args.out)
    print(f"imported {count} tensors -> {path}")
    print(
        "test it with: dfbench test -c configs/data/cross_dataset.yaml -c configs/detectors/laa_net.yaml "
        f"--model.init_args.authors_padding=true --ckpt_path {path}"
    )
    return 0


@verb("bench", "run a benchmark grid (benchmarks/*.yaml) and render its tables")
def bench_verb(argv: list[str]) -> int:
    from src.bench.runner import run_bench

    return run_bench(argv)


def print_help() -> None:
    print("usage: dfbench COMMAND [options]   (dfbench COMMAND --help for its options)\n")
    print("Lightning commands (stack configs with -c; see configs/):")
    for name, text in LIGHTNING_SUBCOMMANDS.items():
        print(f"  {name:<14} {text}")
    print("\ndfbench commands:")
    for name in sorted(VERBS):
        print(f"  {name:<14} {VERBS[name].help}")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print_help()
        return 0
    if argv[0] in VERBS:
        return VERBS[argv[0]].run(argv[1:])
    if argv[0] in LIGHTNING_SUBCOMMANDS:
        return run_lightning(argv)
    print(f"dfbench: unknown command {argv[0]!r}\n", file=sys.stderr)
    print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
