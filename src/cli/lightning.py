"""dfbench fit | validate | test | predict: LightningCLI with dfbench's defaults.

Stacked -c configs, class_path/init_args for model and data. What these
subcommands add to plain LightningCLI:

* named runs (src/cli/runs.py): runs/<detector>/<data>/<run>/ with the
  checkpoints and one folder per session; --run_name names the run, and
  --ckpt_path best / last resolve inside it. A resumed fit continues the run
  and its best-checkpoint record.
* a checkpoint callback that keeps the best epoch by val/frame_auc
  (validation data only; the test sets never choose a checkpoint) and the last;
  a CSV logger by default and a default seed of 0.
* validate, test and predict refuse to score untrained weights: they need
  --ckpt_path (or --allow_untrained true). A checkpoint must match the
  configured model (src/cli/checkpoints.py; --allow_mismatch true loads what
  fits).
* validate and test print the suite's frame- and video-level table (not
  Lightning's); test writes it to test_metrics.json and every frame's score
  to test_predictions.parquet, predict writes frames.csv, videos.csv and
  skipped.csv, all in the session folder.
* every logger receives the full resolved config and, after test, the test
  metrics (src/cli/records.py).
* a bad option or config key fails with jsonargparse's message on one line.
* data configs are read first wherever they are stacked (src/configs.py, the
  one place configurations are resolved).
* SIGTERM or SIGUSR1 (a scheduler's stop or warning) ends the verb after the
  batch in progress: a fit saves a mid-epoch last.ckpt that --ckpt_path last
  resumes, and the verb exits with status 75 after one line
  (src/cli/signals.py).
* processes started by srun or torchrun share one run and session folder, an
  srun task layout Lightning cannot use is one line from the first task, and
  Lightning's "srun is available" hint shows only where it may help
  (src/cli/launch.py).
* only public LightningCLI methods and hooks are overridden (DFBenchCLI).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import yaml
from jsonargparse import DefaultHelpFormatter, Namespace
from lightning_fabric.plugins import CheckpointIO
from lightning_fabric.utilities.exceptions import MisconfigurationException
from pytorch_lightning.cli import LightningCLI, SaveConfigCallback
from pytorch_lightning.loggers import WandbLogger

from src.bench.lock import lock_run
from src.cli import EXIT_USAGE, VERBS, UsageError, quiet
from src.cli.checkpoints import (
    AtomicCheckpointIO,
    LastCheckpoint,
    RunCheckpoint,
    checkpoint_mismatch,
    ignored_on_resume,
    load_matching,
    read_checkpoint,
)
from src.cli.launch import ReportedByFirstTask, launch_name, silence_srun_hint, slurm_layout_error
from src.cli.options import plain_text
from src.cli.predictions import (
    MaskWriter,
    frame_predictions,
    skipped_files,
    video_predictions,
)
from src.cli.records import experiment_record, run_meta, test_summary
from src.cli.runs import (
    LAYOUT_ENV,
    RunLayout,
    data_name,
    detector_name,
    first_process,
    plan_session,
)
from src.cli.signals import (
    EXIT_RESUMABLE,
    SaveOnStop,
    StopState,
    is_stop,
    stop_message,
    stop_signals,
)
from src.configs import (
    DEFAULT_ROOT,
    add_dfbench_arguments,
    code_version,
    order_configs,
    resolved_val_fakes,
)
from src.data.base import DeepfakeDataModuleBase
from src.detectors import Detector
from src.errors import ConfigError, one_line
from src.files import atomic_write, atomic_write_csv, atomic_write_json
from src.metrics import format_metrics_table
from src.parse_errors import parse_error_line, unwrap_instantiation

SUBCOMMANDS = ("fit", "validate", "test", "predict")
NO_WEIGHTS = (
    "no trained weights: give --ckpt_path, either best or last of a run of dfbench fit (with "
    "--run_name, or the latest run of this detector and data) or a checkpoint file, such as one "
    "written by dfbench import-laa-net from released weights; --allow_untrained true scores the "
    "untrained network anyway"
)
#: Descriptors of the run locks this process holds (src.bench.lock.lock_run).
_RUN_LOCKS: list[int] = []
# Logger save_dir values that mean "not chosen": ours, and the ones a switched class keeps.
_UNSET_SAVE_DIRS = {None, "", ".", DEFAULT_ROOT}


class PlainLightningHelpFormatter(DefaultHelpFormatter):
    """jsonargparse's help with the reST markup of docstrings removed."""

    def format_help(self) -> str:
        return plain_text(super().format_help())


class RecordConfig(SaveConfigCallback):
    """Saves config.yaml in the session folder and gives every logger the experiment record."""

    #: Set by the CLI before the run starts (src/cli/records.py).
    record: dict[str, Any] | None = None

    def save_config(self, trainer, pl_module, stage: str) -> None:  # noqa: ANN001
        if self.record is not None:
            for logger in trainer.loggers:
                logger.log_hyperparams(self.record)


def _check_ranges(config: Namespace, verb: str) -> None:
    """Settings that Lightning or the DataModule would reject late, or silently misuse."""
    if verb == "fit":
        for option in ("max_epochs", "max_steps"):
            if config.trainer.get(option) == 0:
                # Lightning would end at once, write no checkpoint, and report success.
                raise UsageError(
                    f"--trainer.{option} 0: a fit trains at least one "
                    f"{option.removeprefix('max_')[:-1]} (-1: no limit)"
                )
    limits = {
        ("trainer", "max_epochs"): -1,
        ("trainer", "min_epochs"): 0,
        ("trainer", "max_steps"): -1,
        ("data", "init_args", "batch_size"): 1,
        ("data", "init_args", "eval_batch_size"): 1,
        ("data", "init_args", "num_workers"): 0,
    }
    for path, minimum in limits.items():
        value = config
        for key in path:
            value = value.get(key) if isinstance(value, Namespace | dict) else None
        if isinstance(value, int) and not isinstance(value, bool) and value < minimum:
            option = "--" + ".".join(path)
            allowed = f"an integer >= {minimum}" + (" (-1: no limit)" if minimum == -1 else "")
            raise UsageError(f"{option} {value}: must be {allowed}")


def _import_class(class_path: str) -> type:
    module, _, name = class_path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _loggers(trainer: Namespace) -> list[Namespace]:
    logger = trainer.get("logger")
    entries = logger if isinstance(logger, list) else [logger]
    return [e for e in entries if isinstance(e, Namespace) and e.get("class_path")]


def _runs_root(trainer: Namespace) -> Path:
    for logger in _loggers(trainer):
        save_dir = (logger.get("init_args") or {}).get("save_dir")
        if save_dir not in _UNSET_SAVE_DIRS:
            return Path(save_dir)
    return Path(trainer.get("default_root_dir") or DEFAULT_ROOT)


def _point_loggers(trainer: Namespace, layout: RunLayout, verb: str, meta: dict) -> None:
    """Make the loggers write into the session folder, unless the user placed them."""
    for logger in _loggers(trainer):
        kind = logger["class_path"].rsplit(".", 1)[-1]
        args = logger.get("init_args")
        if args is None:
            continue
        if kind in {"CSVLogger", "TensorBoardLogger"}:
            args["save_dir"] = str(layout.root)
            if args.get("name") in {None, "", "lightning_logs"} and args.get("version") is None:
                args["name"], args["version"] = layout.logger_name, layout.session
        elif kind == "WandbLogger":
            if args.get("save_dir") in _UNSET_SAVE_DIRS:
                args["save_dir"] = str(layout.session_dir)
            if args.get("project") is None:
                args["project"] = "dfbench"
            if args.get("name") in {None, "", "lightning_logs"}:
                args["name"] = f"{layout.logger_name}/{layout.session}"
            if args.get("job_type") is None:
                args["job_type"] = verb
            if args.get("group") is None and meta.get("wandb_group"):
                args["group"] = meta["wandb_group"]


class DFBenchCLI(LightningCLI):
    """LightningCLI plus the runs, checks and records listed in the module docstring.

    It extends LightningCLI through its public methods and hooks only:
    ``add_arguments_to_parser``, ``parse_arguments``, ``before_instantiate_classes``,
    ``instantiate_classes``, ``instantiate_trainer`` and ``after_instantiate_classes``.
    """

    layout: RunLayout
    names: dict[str, str]

    def __init__(self, *args: Any, stop: StopState | None = None, **kwargs: Any) -> None:
        #: What a stop signal interrupted, and how the run continues (src/cli/signals.py).
        self.stop = stop if stop is not None else StopState()
        super().__init__(*args, **kwargs)

    def add_arguments_to_parser(self, parser) -> None:  # noqa: ANN001 (jsonargparse parser)
        add_dfbench_arguments(parser, RunCheckpoint)
        if parser.prog.rsplit(" ", 1)[-1] != "fit":
            parser.add_argument(
                "--allow_untrained",
                type=bool,
                default=False,
                help="run without --ckpt_path, scoring the untrained network",
            )

    def parse_arguments(self, parser, args) -> None:  # noqa: ANN001
        try:
            super().parse_arguments(parser, args)
        except argparse.ArgumentError as error:
            raise UsageError(parse_error_line(str(error))) from error
        verb = self.config.get("subcommand")
        if not verb:
            return
        config = self.config[verb]
        if config.get("weights_only") is None:
            config["weights_only"] = True  # explicit: what every checkpoint load of the suite does
        self._prepare_run(verb, config)
        # Held back until the classes are built: LightningCLI would otherwise rebuild the
        # model from the checkpoint's hyper-parameters; here the config wins, checked above.
        self.ckpt_path = config.get("ckpt_path")
        config["ckpt_path"] = None

    def _prepare_run(self, verb: str, config: Namespace) -> None:
        _check_ranges(config, verb)
        devices, num_nodes = config.trainer.get("devices"), config.trainer.get("num_nodes")
        layout_error = slurm_layout_error(devices, num_nodes)
        if layout_error:
            if not first_process():
                raise ReportedByFirstTask(layout_error)
            raise UsageError(layout_error)
        silence_srun_hint(devices, num_nodes)
        model_class = _import_class(config.model.class_path)
        init_args = (config.model.get("init_args") or Namespace()).as_dict()
        data = config.get("data")
        data_class = _import_class(data.class_path) if data and data.get("class_path") else None
        data_args = (data.get("init_args") or Namespace()).as_dict() if data_class else {}
        if verb != "fit" and not config.get("ckpt_path") and not config.get("allow_untrained"):
            raise UsageError(NO_WEIGHTS)
        self.meta = run_meta()
        fast = bool(config.trainer.get("fast_dev_run"))
        resolved = yaml.safe_load(self.parser.dump(self.config, skip_link_targets=False))[verb]
        files = [str(path) for path in (config.get("config") or [])]
        # Ranks that srun or torchrun started share the name the launch gives them all.
        launch = None if fast else launch_name()
        run_name = config.get("run_name")
        if launch and run_name is None and verb == "fit" and not config.get("ckpt_path"):
            run_name = launch
        layout, checkpoint, continues = plan_session(
            verb,
            _runs_root(config.trainer),
            detector_name(model_class, resolved, files),
            data_name(data_class, data_args),
            run_name,
            config.get("ckpt_path"),
            create=not fast and launch is None,
        )
        if launch:
            layout = dataclasses.replace(layout, session=f"{verb}-{launch}")
            layout.session_dir.mkdir(parents=True, exist_ok=True)
            os.environ[LAYOUT_ENV] = json.dumps({"run": layout.run, "session": layout.session})
        self.layout = layout
        self.continues_run = continues
        if verb == "fit" and not fast and first_process():
            # One fit per run folder at a time (released when the verb ends: run()).
            _RUN_LOCKS.append(lock_run(self.layout.run_dir))
        self.partial_weights: tuple[Path, dict] | None = None
        if checkpoint is not None:
            contents = read_checkpoint(
                checkpoint, weights_only=config.get("weights_only") is not False
            )
            mismatch = checkpoint_mismatch(checkpoint, contents, model_class, init_args)
            config["ckpt_path"] = str(checkpoint)
            if mismatch and not config.get("allow_mismatch"):
                raise UsageError(
                    f"{mismatch}: stack the configs it was trained with, or add "
                    "--allow_mismatch true to load the weights whose names and shapes fit"
                )
            if mismatch:
                self.partial_weights = (checkpoint, contents["state_dict"])
                config["ckpt_path"] = None  # loaded by load_matching, not by Lightning
            elif verb == "fit":
                optimizer = resolved["model"].get("init_args", {}).get("optimizer")
                ignored = ignored_on_resume(contents, optimizer)
                if ignored:
                    raise UsageError(
                        f"{ignored}: a fit resumed from {checkpoint} restores the optimiser and "
                        "schedule it holds, so this setting would not be used; resume with the "
                        "run's settings, or start a new run (another --run_name) to change it"
                    )
        if verb == "fit" and config.checkpoint.get("dirpath") is None:
            config.checkpoint["dirpath"] = str(self.layout.checkpoint_dir)
        elif verb == "fit" and checkpoint is not None:
            # A fit resumed from its own checkpoint folder (an interrupted bench cell's) continues.
            own = Path(config.checkpoint["dirpath"]).resolve() == checkpoint.resolve().parent
            self.continues_run = self.continues_run or own
        if verb == "fit":
            self.stop.checkpoint_dir = Path(config.checkpoint["dirpath"])
            if self.stop.checkpoint_dir.resolve() == self.layout.checkpoint_dir.resolve():
                self.stop.resume_args = f"--ckpt_path last --run_name {self.layout.run}"
        config.trainer["default_root_dir"] = str(self.layout.run_dir)
        _point_loggers(config.trainer, self.layout, verb, self.meta)
        self.names = {
            "verb": verb,
            "detector": self.layout.detector,
            "data": self.layout.data,
            "run": self.layout.run,
            "session": self.layout.session,
        }

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand]
        config["ckpt_path"] = self.ckpt_path
        init_args = config.model.get("init_args")
        # With a checkpoint the weights come from it: building the network with
        # `pretrained: true` first would only fetch weights (and fail offline).
        weights_given = config.get("ckpt_path") or self.partial_weights
        if weights_given and init_args is not None and init_args.get("pretrained"):
            init_args["pretrained"] = False
        data_args = config.data.get("init_args") if config.get("data") else None
        if data_args is not None and data_args.get("val_fakes", "given") is None:
            # The run's config says what validation chose checkpoints on.
            data_args["val_fakes"] = resolved_val_fakes(data_args)
        dumped = yaml.safe_load(self.parser.dump(self.config, skip_link_targets=False))
        files = [str(path) for path in (config.get("config") or [])]
        self.record = experiment_record(
            dumped[self.subcommand], self.names, files, self.meta, code_version()
        )

    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
        except ValueError as error:
            unwrapped = unwrap_instantiation(error)
            if unwrapped is error:
                raise
            if isinstance(unwrapped, UsageError | ConfigError):
                raise unwrapped from None
            raise unwrapped from error  # the constructor's own error, with its traceback

    def instantiate_trainer(self, **kwargs: Any):  # noqa: ANN201 (pl.Trainer)
        # Checkpoints go through AtomicCheckpointIO unless the config names its own writer.
        given = (self.config_init[self.subcommand].get("trainer") or {}).get("plugins") or []
        plugins = list(given) if isinstance(given, list | tuple) else [given]
        if not any(isinstance(plugin, CheckpointIO) for plugin in plugins):
            kwargs["plugins"] = [*plugins, AtomicCheckpointIO()]
        try:
            return super().instantiate_trainer(**kwargs)
        except MisconfigurationException as error:
            raise UsageError(f"--trainer: {one_line(error)}") from error

    def after_instantiate_classes(self) -> None:
        if self.subcommand == "predict":
            self.trainer.callbacks.append(MaskWriter(self._session_dir))
        for callback in list(self.trainer.callbacks):
            if isinstance(callback, RecordConfig):
                callback.record = self.record
            if isinstance(callback, RunCheckpoint):
                callback.continues_run = self.continues_run
                callback.tracking = self.subcommand == "fit"
                if self.subcommand == "fit" and callback.save_last is True:
                    # last.ckpt after every epoch (LastCheckpoint says why), not only in
                    # epochs that also wrote a best checkpoint.
                    callback.save_last = False
                    self.trainer.callbacks.append(LastCheckpoint(callback))
                if self.subcommand == "fit":
                    self.trainer.callbacks.append(SaveOnStop(callback, self.stop))
        if self.partial_weights is not None:
            path, state_dict = self.partial_weights
            loaded, kept = load_matching(self.model, state_dict)
            config = self.config[self.subcommand]
            if loaded == 0 and not config.get("allow_untrained", self.subcommand == "fit"):
                raise UsageError(f"--allow_mismatch: no tensor of {path} fits the configured model")
            example = f" (e.g. {', '.join(kept[:3])})" if kept else ""
            print(
                f"--allow_mismatch: loaded {loaded} tensors from {path}; "
                f"{len(kept)} keep their initial values{example}"
            )

    def _session_dir(self) -> Path:
        # Every process takes the first one's folder (collective: all ranks call it).
        return Path(self.trainer.strategy.broadcast(str(self.layout.session_dir)))

    def after_fit(self) -> None:
        if not self.trainer.is_global_zero:
            return
        callback = self.trainer.checkpoint_callback
        if isinstance(callback, RunCheckpoint) and callback.best_model_path:
            print(
                f"best checkpoint ({callback.monitor} = {float(callback.best_model_score):.4f}): "
                f"{callback.best_model_path}"
            )
        if self.model.val_results:
            print(format_metrics_table(self.model.val_results, "validation (last epoch)"))
        print(f"run {self.layout.run!r} in {self.layout.run_dir} (--ckpt_path best or last)")

    def after_validate(self) -> None:
        if self.trainer.is_global_zero and self.model.val_results:
            print(format_metrics_table(self.model.val_results, "validation"))

    def after_test(self) -> None:
        out = self._session_dir()
        if not self.trainer.is_global_zero:
            return
        results = self.model.test_results
        print(format_metrics_table(results, "test (frame and video level; values in %)"))
        path = atomic_write_json(out / "test_metrics.json", results)
        frames = frame_predictions(self.model.test_predictions, self.datamodule, "test")
        atomic_write(
            out / "test_predictions.parquet",
            lambda handle: frames.to_parquet(handle, index=False),
        )
        summary = test_summary(results)
        for logger in self.trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.experiment.summary.update(summary)
        print(f"metrics written to {path}; per-frame scores to {out / 'test_predictions.parquet'}")

    def after_predict(self) -> None:
        out = self._session_dir()
        if not self.trainer.is_global_zero:
            return
        frames = frame_predictions(self.model.predictions, self.datamodule, "predict")
        videos = video_predictions(frames, self.model.video_score)
        skipped = skipped_files(self.datamodule)
        atomic_write_csv(out / "frames.csv", frames.drop(columns="video_idx"))
        atomic_write_csv(out / "videos.csv", videos)
        atomic_write_csv(out / "skipped.csv", skipped)
        print(
            f"{len(frames)} frame and {len(videos)} video scores written to {out}/frames.csv, "
            f"videos.csv; {len(skipped)} files skipped (skipped.csv)"
        )
        masks = next((c for c in self.trainer.callbacks if isinstance(c, MaskWriter)), None)
        if masks is not None and masks.written:
            print(f"{masks.written} predicted maps written to {out / 'masks'}/")


def run(argv: list[str]) -> int:
    """Run a LightningCLI subcommand; ``argv[0]`` is ``fit``, ``validate``, ``test`` or ``predict``."""
    quiet.install()
    # Errors raise (dfbench prints one line); no abbreviated options: a misspelled
    # --trainer.max_epoch must fail, not set max_epochs.
    plain = {
        "exit_on_error": False,
        "allow_abbrev": False,
        "formatter_class": PlainLightningHelpFormatter,
    }
    parser_kwargs: dict[str, Any] = dict(plain)
    for verb in SUBCOMMANDS:
        parser_kwargs[verb] = {**plain, "prog": f"dfbench {verb}", "description": VERBS[verb].help}
    argv = order_configs(argv, start=1)
    if argv and argv[0] in {"validate", "test"}:
        # The suite prints its own table; an explicit --verbose later on still wins.
        argv.insert(1, "--verbose=false")
    with stop_signals() as stop:
        try:
            DFBenchCLI(
                Detector,
                DeepfakeDataModuleBase,
                subclass_mode_model=True,
                subclass_mode_data=True,
                save_config_callback=RecordConfig,
                save_config_kwargs={"overwrite": True},
                seed_everything_default=0,
                parser_kwargs=parser_kwargs,
                args=argv,
                stop=stop,
            )
        except ReportedByFirstTask:
            return EXIT_USAGE
        except BaseException as error:
            if not is_stop(error):
                raise
            if first_process():
                print(stop_message(stop, argv[0]), file=sys.stderr, flush=True)
            return EXIT_RESUMABLE
        finally:
            while _RUN_LOCKS:
                os.close(_RUN_LOCKS.pop())
    return 0
