"""The one place a configuration is resolved: jsonargparse, as LightningCLI parses it, nothing built.

Every part of dfbench that needs to know what a run will do reads it from here:
the Lightning verbs (stacking order, the run's identity and record), the
benchmark grid (cell identities), the pre-run check (frame tables and weights
files) and the PRLE map keys. :func:`resolve` parses a ``fit`` command line
(``-c`` files, ``--key=value`` options) with the same sections, types and
defaults as ``dfbench fit``: ``config:`` includes, dotted keys and
``class_path``/``init_args`` are jsonargparse's, every class path is
type-checked, and no model, data module or trainer is instantiated.

Identity (:func:`config_hash`) is a hash of the resolved configuration, not of
file text: comments, key order and file layout do not change it; a changed
setting, or a code default that changed, does. What only says where and how
visibly a run writes (:data:`BOOKKEEPING`) is left out, a frame table counts
by its content (not by the cache folder holding it), and side-data folders by
their last two path components (a PRLE map folder's key and ``maps``), so a
moved cache or results folder keeps its identities.
"""

from __future__ import annotations

import functools
import hashlib
import json
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from src.errors import ConfigError, DFBenchError

REPO = Path(__file__).resolve().parents[1]
#: The environment variable through which ``dfbench bench`` gives each run its cell's metadata.
RUN_META_ENV = "DFBENCH_RUN_META"
#: Where runs go unless a logger or ``--trainer.default_root_dir`` says otherwise.
DEFAULT_ROOT = "runs"
#: ``dfbench fit``'s defaults beyond Lightning's: the checkpoint kept is the best epoch by
#: validation frame AUC (the test sets never choose), last.ckpt follows every epoch, CSV logs.
CLI_DEFAULTS: dict[str, Any] = {
    "checkpoint.monitor": "val/frame_auc",
    "checkpoint.mode": "max",
    "checkpoint.save_last": True,
    "checkpoint.filename": "best-epoch{epoch:03d}",
    "checkpoint.auto_insert_metric_name": False,
    "trainer.default_root_dir": DEFAULT_ROOT,
    "trainer.logger": {
        "class_path": "pytorch_lightning.loggers.CSVLogger",
        "init_args": {"save_dir": DEFAULT_ROOT},
    },
}
#: Keys that say where and how visibly a run writes, or how a verb was asked to load
#: weights, not what it computes (left out of :func:`config_hash`).
BOOKKEEPING: tuple[tuple[str, ...], ...] = (
    ("config",),
    ("trainer", "logger"),
    ("trainer", "default_root_dir"),
    ("trainer", "enable_progress_bar"),
    ("trainer", "enable_model_summary"),
    ("checkpoint", "dirpath"),
    ("checkpoint", "verbose"),
    ("data", "init_args", "cache_dir"),
    ("ckpt_path",),
    ("weights_only",),
    ("verbose",),
    ("run_name",),
    ("allow_untrained",),
    ("allow_mismatch",),
    ("return_predictions",),
)
#: Callbacks that only report (the runner's progress file): not part of what a run computes.
REPORTING_CALLBACKS = frozenset({"src.bench.progress.ProgressFile"})
#: The data module whose ``train``/``val``/``test`` name frame tables in its ``cache_dir``.
FRAME_TABLE_MODULE = "DeepfakeDataModule"
_CONFIG_FLAGS = ("-c", "--config")
#: Data options that choose the data (tables, cache, fake methods): a data config's or the
#: command line's, never a detector, profile or augmentation config's (data_config_files).
DATA_CHOICE = frozenset({"train", "val", "test", "cache_dir", "deepfakebench_root", "methods"})


def add_dfbench_arguments(parser: Any, checkpoint_class: type | None = None) -> None:
    """The sections and options ``dfbench fit`` adds to LightningCLI's, with their defaults.

    Args:
        parser: a ``LightningArgumentParser`` (LightningCLI's for a verb, or :func:`parser`'s).
        checkpoint_class: the ``checkpoint`` section's class (a ``ModelCheckpoint``).
    """
    from pytorch_lightning.callbacks import ModelCheckpoint

    parser.add_lightning_class_args(checkpoint_class or ModelCheckpoint, "checkpoint")
    parser.set_defaults(CLI_DEFAULTS)
    parser.add_argument(
        "--run_name",
        type=str | None,
        default=None,
        help="name of the run (a folder under runs/<detector>/<data>/); default: the time "
        "a fit starts, and for --ckpt_path best/last the latest run",
    )
    parser.add_argument(
        "--allow_mismatch",
        type=bool,
        default=False,
        help="load a checkpoint of another detector class or other hyper-parameters into "
        "the configured model, every tensor whose name and shape fit",
    )


@functools.cache
def parser() -> Any:
    """A parser of ``dfbench fit``'s options (sections, types, defaults), built once."""
    from jsonargparse import ActionConfigFile
    from pytorch_lightning import Trainer
    from pytorch_lightning.cli import LightningArgumentParser

    from src.data.base import DeepfakeDataModuleBase
    from src.detectors import Detector

    built = LightningArgumentParser(exit_on_error=False, allow_abbrev=False)
    built.add_argument("-c", "--config", action=ActionConfigFile)
    built.add_argument("--seed_everything", type=bool | int, default=0)
    built.add_lightning_class_args(Trainer, "trainer")
    built.add_lightning_class_args(Detector, "model", subclass_mode=True)
    built.add_lightning_class_args(DeepfakeDataModuleBase, "data", subclass_mode=True)
    add_dfbench_arguments(built)
    return built


@functools.cache
def _section_reader() -> Any:
    """A parser that reads one config file's sections as plain mappings (no types checked).

    It follows ``config:`` includes and dotted keys exactly as the full parser
    does; :func:`order_configs` uses it to see which sections a file sets.
    """
    from jsonargparse import ActionConfigFile, ArgumentParser

    reader = ArgumentParser(exit_on_error=False)
    reader.add_argument("-c", "--config", action=ActionConfigFile)
    for section in ("model", "data", "trainer", "checkpoint"):
        reader.add_argument(f"--{section}", type=dict | None, default=None)
    reader.add_argument("--seed_everything", type=Any, default=None)
    return reader


def _sections(path: str) -> dict[str, Any]:
    """The sections a config file sets (empty when it is missing: the full parse reports it).

    Raises:
        ConfigError: the file is not YAML, or not a mapping of sections.
    """
    file = Path(path).expanduser()
    if not file.is_file():
        return {}
    try:
        content = yaml.safe_load(file.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: not a YAML file ({str(error).splitlines()[0]})") from None
    if content is not None and not isinstance(content, dict):
        raise ConfigError(
            f"{path}: a config file is a YAML mapping of sections (model, data, trainer ...), "
            f"not {type(content).__name__} {str(content)[:40]!r}"
        )
    try:
        return _section_reader().parse_args(["--config", path]).as_dict()
    except Exception:  # noqa: BLE001 (jsonargparse's errors; the full parse names the problem)
        return {}


def _config_positions(argv: Sequence[str]) -> list[tuple[int, int, str]]:
    """(start, stop, file) of every ``-c FILE`` / ``--config FILE`` / ``--config=FILE``."""
    found, i = [], 0
    while i < len(argv):
        arg = argv[i]
        if arg in _CONFIG_FLAGS and i + 1 < len(argv):
            found.append((i, i + 2, argv[i + 1]))
            i += 2
            continue
        if arg.startswith("--config="):
            found.append((i, i + 1, arg.split("=", 1)[1]))
        i += 1
    return found


def data_config_files(argv: Sequence[str]) -> list[str]:
    """The ``-c`` files of ``argv`` that are data configs: they choose a DataModule, set no model.

    Raises:
        ConfigError: if a method file chooses another DataModule class than the data config,
            or another config file chooses the data (:data:`DATA_CHOICE`): such an option
            would otherwise silently override the data config's, whatever their order.
    """
    data_files: list[str] = []
    data_class: tuple[str, str] | None = None
    method_classes: list[tuple[str, str]] = []
    for _, _, name in _config_positions(argv):
        sections = _sections(name)
        chosen = (sections.get("data") or {}).get("class_path")
        if chosen and sections.get("model") is None:
            data_files.append(name)
            data_class = (name, chosen)
            continue
        if chosen:
            method_classes.append((name, chosen))
        named = sorted(set((sections.get("data") or {}).get("init_args") or {}) & DATA_CHOICE)
        if named:
            raise ConfigError(
                f"{name} sets data.init_args.{named[0]}, which chooses the data: a detector, "
                "profile or augmentation config sets how a detector trains (batch size, "
                "augmentation, pseudo-fakes), a data config (configs/data/*.yaml) or the "
                f"command line (--data.init_args.{named[0]}=...) which data"
            )
    for name, chosen in method_classes:
        if data_class is not None and chosen != data_class[1]:
            raise ConfigError(
                f"{name} trains with the DataModule {chosen}, but {data_class[0]} chooses "
                f"{data_class[1]}: stack a data config of {chosen} (configs/data/*.yaml)"
            )
    return data_files


def order_configs(argv: Sequence[str], start: int = 0) -> list[str]:
    """``argv`` with its data configs moved to position ``start``, in their order.

    jsonargparse applies ``-c`` files in the order given, so a method file that
    also sets data options (laa_net.yaml: its pseudo-fakes, batches of 8) would
    lose them to a data config stacked after it. Data configs are the base
    layer wherever they stand; every other file and option applies on top in
    the order given, so ``-c laa_net.yaml -c ffpp.yaml`` and ``-c ffpp.yaml -c
    laa_net.yaml`` resolve to one configuration.

    Args:
        argv: a command line (for the Lightning verbs, the verb first: ``start=1``).
        start: where the data configs go.

    Raises:
        ConfigError: if a method file and a data config choose different DataModule classes.
    """
    argv = list(argv)
    data_files = set(data_config_files(argv))
    moved = [(a, b) for a, b, name in _config_positions(argv) if name in data_files]
    if not moved:
        return argv
    indexes = {i for a, b in moved for i in range(a, b)}
    front = [argv[i] for a, b in moved for i in range(a, b)]
    rest = [arg for i, arg in enumerate(argv) if i not in indexes]
    return [*rest[:start], *front, *rest[start:]]


def resolve(args: Sequence[str]) -> dict[str, Any]:
    """The configuration ``dfbench fit ARGS`` would run, as a plain dict; nothing is built.

    Raises:
        ConfigError: one line naming the option or file and the problem.
    """
    from jsonargparse import ArgumentError

    from src.parse_errors import parse_error_line

    full = parser()
    try:
        namespace = full.parse_args(order_configs(args))
    except ArgumentError as error:
        raise ConfigError(parse_error_line(str(error))) from None
    return plain(yaml.safe_load(full.dump(namespace, skip_link_targets=False)))


def plain(value: Any) -> Any:
    """A value with tuples as lists and every object as text (what JSON holds)."""
    return json.loads(json.dumps(value, default=str))


def _pop(config: dict[str, Any], path: Sequence[str]) -> Any:
    node: Any = config
    for key in path[:-1]:
        node = node.get(key) if isinstance(node, dict) else None
    return node.pop(path[-1], None) if isinstance(node, dict) else None


@functools.cache
def _file_digest(path: Path, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha1()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def table_identity(path: str | Path) -> str:
    """A frame table's identity: a digest of its content ("missing" while it does not exist)."""
    path = Path(path)
    if not path.is_absolute():
        path = REPO / path
    if not path.is_file():
        return "missing"
    stat = path.stat()
    return _file_digest(path.resolve(), stat.st_size, stat.st_mtime_ns)


def frame_tables(config: Mapping[str, Any]) -> dict[str, Path]:
    """The frame tables a resolved config reads (name -> file), DeepfakeDataModule only."""
    from src.data.datamodule import resolve_table

    data = config.get("data") or {}
    if str(data.get("class_path", "")).rsplit(".", 1)[-1] != FRAME_TABLE_MODULE:
        return {}
    args = data.get("init_args") or {}
    names = [*(args.get("train") or []), *(args.get("val") or []), *(args.get("test") or [])]
    folder = args.get("cache_dir") or "data/cache"
    return {str(name): resolve_table(str(name), folder) for name in dict.fromkeys(names)}


def resolved_val_fakes(data_args: Mapping[str, Any]) -> str:
    """What a data configuration validates on: its ``val_fakes``, or the default for it.

    ``pseudo`` with a ``pseudo_fake`` generator, ``real`` without.
    """
    return data_args.get("val_fakes") or ("pseudo" if data_args.get("pseudo_fake") else "real")


def _explicit_val_fakes(data_args: dict[str, Any]) -> None:
    """Write the validation fakes a pseudo-fake run uses; leave a plain run's default unset.

    The options only pseudo-fakes read (their validation seed, the in-memory
    faces' blending size) are left out of runs without them.

    So a default and its explicit spelling are one identity, and runs from before
    the option existed keep theirs unless they train on pseudo-fakes (whose
    validation it changed).
    """
    chosen = resolved_val_fakes(data_args)
    if data_args.get("pseudo_fake") or chosen != "real":
        data_args["val_fakes"] = chosen
    else:
        data_args.pop("val_fakes", None)
    # Options of pseudo-fakes that a run without them never reads.
    if chosen == "real":
        data_args.pop("pseudo_val_seed", None)
    if not data_args.get("pseudo_fake"):
        data_args.pop("pseudo_crop_size", None)


def identity(config: Mapping[str, Any]) -> dict[str, Any]:
    """What of a resolved configuration decides what a run computes (see the module docstring)."""
    kept = plain(dict(config))
    tables = frame_tables(kept)
    for path in BOOKKEEPING:
        _pop(kept, path)
    trainer = kept.get("trainer") or {}
    callbacks = trainer.get("callbacks")
    if isinstance(callbacks, list):
        trainer["callbacks"] = [
            c
            for c in callbacks
            if not (isinstance(c, dict) and c.get("class_path") in REPORTING_CALLBACKS)
        ]
    data_args = (kept.get("data") or {}).get("init_args") or {}
    _explicit_val_fakes(data_args)
    if isinstance(data_args.get("side_data"), dict):
        data_args["side_data"] = {
            name: "/".join(Path(str(folder)).parts[-2:])
            for name, folder in data_args["side_data"].items()
        }
    if tables:
        kept["frame_tables"] = {name: table_identity(path) for name, path in tables.items()}
    return _without_unset(kept)


def _without_unset(value: Any) -> Any:
    """``value`` without None values and empty lists in mappings (a dump leaves None out)."""
    if isinstance(value, dict):
        return {
            key: _without_unset(item)
            for key, item in value.items()
            if item is not None and item != []
        }
    if isinstance(value, list):
        return [_without_unset(item) for item in value]
    return value


def config_hash(config: Mapping[str, Any]) -> str:
    """12 hex digits of the SHA-1 of :func:`identity` (equal hashes: configured alike)."""
    payload = json.dumps(identity(config), sort_keys=True)
    return hashlib.sha1(payload.encode()).hexdigest()[:12]


@functools.cache
def code_version() -> str:
    """The git commit of the code that runs (``-dirty`` if tracked files differ), else its version."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=10
        )
        return done.stdout.strip() if done.returncode == 0 else ""

    try:
        commit = git("rev-parse", "--short=12", "HEAD")
        if commit:
            dirty = git("status", "--porcelain", "--untracked-files=no")
            return f"{commit}-dirty" if dirty else commit
    except (OSError, subprocess.SubprocessError):
        pass
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"dfbench {version('dfbench')}"
    except PackageNotFoundError:
        return "unknown"


#: What of a resolved configuration is the training recipe (:func:`recipe`): the model's
#: arguments, the data options that shape training batches, and these trainer settings.
#: How long a fit trains is not part of it: a run resumed to train longer stays the same run.
RECIPE_TRAINER_KEYS = (
    "accumulate_grad_batches",
    "precision",
    "gradient_clip_val",
    "gradient_clip_algorithm",
    "limit_train_batches",
)
#: Data options that are not the recipe: which tables, where they are, how they load.
NOT_RECIPE_DATA = frozenset(
    {
        "train",
        "val",
        "test",
        "cache_dir",
        "num_workers",
        "pin_memory",
        "eval_batch_size",
        "test_perturbation",
        "deepfakebench_root",
    }
)
#: Model options that are not the recipe: initial weights (a checkpoint replaces them)
#: and how frame scores become a video score.
NOT_RECIPE_MODEL = frozenset({"pretrained", "video_score"})


def recipe(config: Mapping[str, Any]) -> dict[str, Any]:
    """The training recipe of a resolved configuration.

    What distinguishes two trainings of one detector on one training set: the
    model's arguments with its optimiser and schedule, the batch size,
    augmentation and pseudo-fakes, and how gradients are accumulated, clipped
    and computed (precision).
    """
    config = plain(dict(config))
    model = config.get("model") or {}
    data = config.get("data") or {}
    trainer = config.get("trainer") or {}
    _explicit_val_fakes(data.get("init_args") or {})
    return {
        "model": {
            "class_path": model.get("class_path"),
            "init_args": {
                k: v for k, v in (model.get("init_args") or {}).items() if k not in NOT_RECIPE_MODEL
            },
        },
        "data": {
            "class_path": data.get("class_path"),
            "init_args": {
                k: v for k, v in (data.get("init_args") or {}).items() if k not in NOT_RECIPE_DATA
            },
        },
        "trainer": {k: trainer.get(k) for k in RECIPE_TRAINER_KEYS},
    }


def recipe_hash(config: Mapping[str, Any]) -> str:
    """Six hex digits of the SHA-1 of :func:`recipe`."""
    payload = json.dumps(recipe(config), sort_keys=True)
    return hashlib.sha1(payload.encode()).hexdigest()[:6]


def default_recipe(
    detector: str | None, class_path: str, config_files: Sequence[str | Path]
) -> dict[str, Any] | None:
    """The recipe a detector has by default on the data configs of a run.

    That is what ``configs/detectors/<detector>.yaml`` gives on those data
    configs, or for a detector that ships no config (or a class that is not
    registered), the class with its own defaults on them.

    Args:
        detector: a registered detector name (None: not registered).
        class_path: the model's class path.
        config_files: the ``-c`` files of the run (its data configs are kept).

    Returns:
        None when that stack does not resolve.
    """
    stacked = [arg for path in config_files for arg in ("-c", str(path))]
    args = [arg for name in data_config_files(stacked) for arg in ("-c", name)]
    shipped = REPO / "configs" / "detectors" / f"{detector}.yaml"
    args += ["-c", str(shipped)] if detector and shipped.is_file() else [f"--model={class_path}"]
    try:
        return recipe(resolve(args))
    except (DFBenchError, OSError):
        return None
