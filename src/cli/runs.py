"""Named runs: where dfbench fit, validate, test and predict write, and what
--ckpt_path best / last mean.

A run is one training of one detector on one training set; every invocation
that touches it (the first fit, a resumed fit, each test ...) is a session
folder inside it::

    <root>/<detector>/<data>/<run>/
        checkpoints/        best-epochNNN.ckpt (chosen on validation) and last.ckpt,
                            shared by every fit session of the run
        fit-<time>/         config.yaml and the loggers' files (metrics.csv, hparams.yaml,
                            TensorBoard events, wandb/)
        test-<time>/        the same plus test_metrics.json, test_predictions.parquet
        predict-<time>/     frames.csv, videos.csv, skipped.csv

* root: --trainer.default_root_dir (default runs), or the logger's save_dir
  when it is set to something else (the benchmark runner sets both).
* detector: the registered name whose defaults the configured model matches
  (xception, laa_net ...), else the model class in snake case followed by its
  backbone (backbone_classifier-resnet18). When the training recipe (model
  arguments, optimiser and schedule, batch size, augmentation and
  pseudo-fakes, precision: src.configs.recipe) differs from the detector's
  default (what its shipped configs/detectors/<name>.yaml gives on the same
  data configs; without one, the class's own defaults), six hex digits of the
  recipe's hash follow (efficientnet_b4-1f3a9c). Two recipes never share a
  run folder, and --ckpt_path best / last of the baseline config never finds
  an SBI-trained run of the same backbone.
* data: the training tables joined by "+" (ffpp_c23), else the DataModule's
  name (synthetic_face, folder). Test sets do not count: testing a model
  trained on FF++ on the cross-dataset config finds the FF++ run.
* run: --run_name, else the time the fit started (20250601-101500). Evaluation
  sessions join the run of their checkpoint: the named run for best/last, the
  run holding an explicit checkpoint file (whatever options of the training
  recipe the evaluation's command line leaves out), else a run named after
  the file.

--ckpt_path last is the run's last.ckpt; best is the checkpoint its
ModelCheckpoint recorded as best (read from last.ckpt, which always holds the
latest record). Without --run_name both mean the latest run of the detector
and data (the one whose newest checkpoint was written last). A fit given
last (or a checkpoint file of its run) continues that run: same checkpoint
folder, so best-checkpoint tracking carries on, and a new fit session.

Under DDP, Lightning starts the other processes with the same command line;
they take the run and session chosen by the first process from the
environment (LAYOUT_ENV), so every process writes to the same folders.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from src.configs import default_recipe, recipe, recipe_hash
from src.files import check_path_name

#: Passes the run and session chosen by the first process to the DDP processes it starts.
LAYOUT_ENV = "DFBENCH_RUN_LAYOUT"
CHECKPOINT_ALIASES = ("best", "last")
_STAMP = "%Y%m%d-%H%M%S"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.+=-]+")


@dataclass(frozen=True)
class RunLayout:
    """The folders of one session of one run."""

    root: Path
    detector: str
    data: str
    run: str
    session: str

    @property
    def group_dir(self) -> Path:
        """Every run of this detector on this training data."""
        return self.root / self.detector / self.data

    @property
    def run_dir(self) -> Path:
        return self.group_dir / self.run

    @property
    def checkpoint_dir(self) -> Path:
        return self.run_dir / "checkpoints"

    @property
    def session_dir(self) -> Path:
        return self.run_dir / self.session

    @property
    def logger_name(self) -> str:
        """A CSV/TensorBoard logger's ``name``: with ``version=session`` it writes to session_dir."""
        return f"{self.detector}/{self.data}/{self.run}"


def slug(text: str) -> str:
    """A generated name made safe as one folder name (no separators, no leading dot)."""
    return _UNSAFE.sub("_", text).strip("._") or "unnamed"


def checked_run_name(name: str) -> str:
    """``--run_name`` as given, if it is one plain folder name (:func:`src.files.check_path_name`)."""
    return check_path_name(name, "--run_name")


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def registered_name(model_class: type, init_args: dict[str, Any]) -> str | None:
    """The registered detector whose class and defaults the configured model matches."""
    from src.detectors.registry import DETECTORS

    matches = [
        entry
        for entry in DETECTORS
        if entry.obj is model_class
        and all(init_args.get(key) == value for key, value in entry.defaults.items())
    ]
    # The most specific entry: xception (backbone=legacy_xception) over a bare class name.
    return max(matches, key=lambda entry: len(entry.defaults)).name if matches else None


def detector_name(model_class: type, config: dict[str, Any], config_files: list[str]) -> str:
    """The detector part of a run's path (see the module docstring).

    Args:
        model_class: the configured model's class.
        config: the resolved configuration (a plain dict).
        config_files: the ``-c`` files given (their data configs make the shipped recipe).
    """
    model = config.get("model") or {}
    init_args = model.get("init_args") or {}
    registered = registered_name(model_class, init_args)
    name = registered
    if name is None:
        backbone = init_args.get("backbone")
        plain_name = _snake(model_class.__name__)
        name = slug(f"{plain_name}-{backbone}" if isinstance(backbone, str) else plain_name)
    if recipe(config) == default_recipe(registered, model["class_path"], config_files):
        return name
    return f"{name}-{recipe_hash(config)}"


def data_name(data_class: type | None, init_args: dict[str, Any]) -> str:
    """The training-data part of a run's path (see the module docstring)."""
    train = init_args.get("train")
    if isinstance(train, str):
        train = [train]
    if isinstance(train, list | tuple) and train and all(isinstance(t, str) for t in train):
        # A table may be given as a .parquet path: its file name is the table's name.
        return slug("+".join(Path(t).stem if t.endswith(".parquet") else t for t in train))
    if data_class is None:
        return "no_data"
    return slug(_snake(data_class.__name__.removesuffix("DataModule")) or "data")


def _stamp() -> str:
    return time.strftime(_STAMP)


def _launched_by_first_process() -> bool:
    # Lightning's DDP launcher gives the processes it starts LOCAL_RANK 1, 2 ...
    return os.environ.get("LOCAL_RANK", "0") != "0"


def first_process() -> bool:
    """Whether this is the first process of a (possibly distributed) run, or the only one."""
    ranks = ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID")
    return all(os.environ.get(name, "0") == "0" for name in ranks)


def _unique(folder: Path, create: bool) -> Path:
    """``folder``, or ``folder-2``, ``folder-3`` ... if taken; created when ``create``."""
    candidate, n = folder, 1
    while True:
        if not create:
            if not candidate.exists():
                return candidate
        else:
            try:
                candidate.mkdir(parents=True)
                return candidate
            except FileExistsError:
                pass
        n += 1
        candidate = folder.with_name(f"{folder.name}-{n}")


def checkpoints_of(run_dir: Path) -> list[Path]:
    return sorted((run_dir / "checkpoints").glob("*.ckpt"))


def latest_run(group_dir: Path) -> Path | None:
    """The run under ``group_dir`` whose newest checkpoint was written last (None: no run)."""
    runs = [
        (max(p.stat().st_mtime for p in ckpts), run)
        for run in (group_dir.iterdir() if group_dir.is_dir() else [])
        if run.is_dir() and (ckpts := checkpoints_of(run))
    ]
    return max(runs)[1] if runs else None


def recorded_best(last: Path) -> str | None:
    """The file name a run's ModelCheckpoint recorded as best, read from its last.ckpt.

    None when last.ckpt cannot be read with ``weights_only=True`` (nothing in it
    runs): the caller then falls back on the file names.
    """
    from src.checkpoint_files import load_checkpoint

    try:
        state = load_checkpoint(last, mmap=True)
    except ValueError:  # unreadable, or more than tensors and plain values
        return None
    if not isinstance(state, dict):
        return None
    for key, value in (state.get("callbacks") or {}).items():
        if key.startswith("ModelCheckpoint") and value.get("best_model_path"):
            return Path(value["best_model_path"]).name
    return None


def resolve_alias(alias: str, run_dir: Path) -> Path:
    """The checkpoint ``best`` or ``last`` names in ``run_dir``."""
    folder = run_dir / "checkpoints"
    last = folder / "last.ckpt"
    if alias == "last":
        if not last.is_file():
            raise FileNotFoundError(f"--ckpt_path last: {last} does not exist")
        return last
    name = recorded_best(last) if last.is_file() else None
    if name and (folder / name).is_file():
        return folder / name
    candidates = sorted(folder.glob("best*.ckpt"), key=lambda p: p.stat().st_mtime)
    if not candidates:
        raise FileNotFoundError(f"--ckpt_path best: no best checkpoint in {folder}")
    return candidates[-1]


def _other_recipes(root: Path, detector: str, data: str) -> str:
    """``; runs of other recipes: ...`` when the detector has runs under other recipe hashes."""
    base = detector.rsplit("-", 1)[0] if re.search(r"-[0-9a-f]{6}$", detector) else detector
    others = sorted(
        folder.name
        for folder in (root.glob(f"{base}*") if root.is_dir() else [])
        if folder.name != detector
        and re.fullmatch(rf"{re.escape(base)}(-[0-9a-f]{{6}})?", folder.name)
        and (folder / data).is_dir()
    )
    if not others:
        return ""
    return (
        f"; runs of other training recipes: {', '.join(others)} (stack the configs they were "
        "trained with to find them)"
    )


def _owner_run(checkpoint: Path, root: Path) -> tuple[str, str, str] | None:
    """(detector, data, run) of the run under ``root`` whose checkpoints folder holds the file."""
    folder = checkpoint.resolve().parent
    if folder.name != "checkpoints" or not root.is_dir():
        return None
    run_dir = folder.parent
    if run_dir.parent.parent.parent != root.resolve():
        return None
    return run_dir.parent.parent.name, run_dir.parent.name, run_dir.name


def _run_of(checkpoint: Path, group_dir: Path) -> str | None:
    """The run of ``group_dir`` that holds ``checkpoint`` in its checkpoints folder, if any."""
    folder = checkpoint.resolve().parent
    if folder.name != "checkpoints" or not group_dir.is_dir():
        return None
    run = folder.parent
    return run.name if run.parent == group_dir.resolve() else None


def plan_session(
    verb: str,
    root: Path,
    detector: str,
    data: str,
    run_name: str | None,
    ckpt_path: str | None,
    create: bool = True,
) -> tuple[RunLayout, Path | None, bool]:
    """Choose the run and session of one invocation, and resolve ``--ckpt_path``.

    Args:
        verb: fit, validate, test or predict.
        root, detector, data: where runs of this detector and data live.
        run_name: ``--run_name`` (None: see the module docstring).
        ckpt_path: ``--ckpt_path`` as given: None, best, last or a file.
        create: make the session folder (reserving its name); off when nothing is written
            (fast_dev_run).

    Returns:
        The layout, the checkpoint file (None without one) and whether a fit continues
        the run that wrote the checkpoint.
    """
    group_dir = root / detector / data
    if run_name is not None:
        run_name = checked_run_name(run_name)
    inherited = (
        json.loads(os.environ[LAYOUT_ENV])
        if _launched_by_first_process() and (LAYOUT_ENV in os.environ)
        else None
    )

    checkpoint: Path | None = None
    run = run_name
    if ckpt_path in CHECKPOINT_ALIASES:
        if run is None:
            latest = latest_run(group_dir)
            if latest is None:
                raise FileNotFoundError(
                    f"--ckpt_path {ckpt_path}: no run of {detector} on {data} under {root}"
                    f"{_other_recipes(root, detector, data)} (fit one first, or give a "
                    "checkpoint file)"
                )
            run = latest.name
        elif not checkpoints_of(group_dir / run):
            raise FileNotFoundError(
                f"--ckpt_path {ckpt_path}: run {run!r} has no checkpoints in {group_dir / run}"
            )
        checkpoint = resolve_alias(ckpt_path, group_dir / run)
    elif ckpt_path:
        checkpoint = Path(ckpt_path).expanduser()
        owner = _owner_run(checkpoint, root) if verb != "fit" and run is None else None
        if owner is not None:
            # Evaluating a run's checkpoint joins that run, whatever recipe options (an
            # optimiser, a schedule) this command line leaves out.
            detector, data, run = owner
            group_dir = root / detector / data
        if run is None:
            run = _run_of(checkpoint, group_dir)
        if run is None and verb != "fit":
            run = slug(checkpoint.stem)
    elif verb != "fit":
        run = run or "untrained"
    elif run is not None and checkpoints_of(group_dir / run) and inherited is None:
        raise FileExistsError(
            f"run {run!r} of {detector} on {data} already has checkpoints in {group_dir / run}: "
            "continue it with --ckpt_path last, or choose another --run_name"
        )
    resuming = verb == "fit" and checkpoint is not None and run is not None

    if inherited is not None:
        run, session = inherited["run"], inherited["session"]
    else:
        if run is None:
            # Made at once, so that two fits started in the same second get two runs.
            run = _unique(group_dir / _stamp(), create=create).name
        session = _unique(group_dir / run / f"{verb}-{_stamp()}", create=create).name
        os.environ[LAYOUT_ENV] = json.dumps({"run": run, "session": session})
    return RunLayout(root, detector, data, run, session), checkpoint, resuming
