"""Weights & Biases reporting for benchmark runs: one run per cell, plus a leaderboard run.

Everything works without an account or a network: unless the user has logged in
(or asks for it), runs are written offline under ``<save_dir>/wandb/offline-run-*/``
and uploaded later with the command that :func:`sync_hint` prints.

* :func:`cell_logger_args` makes a ``dfbench fit``/``test`` subprocess log to the
  cell's W&B run (fit and test of a cell share one run id);
* :func:`log_leaderboard` writes one row per cell, the results store, the
  rendered tables (as ``wandb.Table``) and the figures of a benchmark into one
  ``leaderboard`` run, with a scalar summary per detector.

Runs go to the project ``dfbench`` (``--wandb-project``) and the group
``<benchmark>/<profile>`` (:func:`default_group`; ``--wandb-group``), so the
demo and the paper runs of one grid never share a group.
"""

from __future__ import annotations

import html
import json
import netrc
import os
import shlex
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pandas as pd

from src.bench.schema import RESULT_COLUMNS
from src.bench.tables import row_labels
from src.errors import DFBenchError

if TYPE_CHECKING:
    import wandb

#: W&B project that holds every dfbench run unless told otherwise.
PROJECT = "dfbench"
#: Default W&B server (``WANDB_BASE_URL`` overrides it, as in wandb itself).
DEFAULT_BASE_URL = "https://api.wandb.ai"

# WANDB_MODE values wandb accepts, mapped to the mode they amount to here
# ("dryrun" and "run" are wandb's legacy spellings).
_ENV_MODES = {
    "offline": "offline",
    "dryrun": "offline",
    "disabled": "disabled",
    "online": "online",
    "run": "online",
    "shared": "online",
}
_TRUE = {"1", "true", "yes", "on"}


def _netrc_path() -> Path:
    # Same lookup order as wandb's own login: $NETRC, then ~/.netrc, then ~/_netrc.
    if explicit := os.environ.get("NETRC"):
        return Path(explicit).expanduser()
    unix = Path("~/.netrc").expanduser()
    windows = Path("~/_netrc").expanduser()
    return windows if not unix.exists() and windows.exists() else unix


def _netrc_has_key(host: str) -> bool:
    try:
        entry = netrc.netrc(_netrc_path()).authenticators(host)
    except (OSError, netrc.NetrcParseError):
        # No file, an unreadable one or a malformed one: no usable login either way.
        return False
    return bool(entry and entry[2])


def has_api_key() -> bool:
    """Whether the user has logged in to W&B, judged from local files and variables only.

    Returns:
        True if ``WANDB_API_KEY`` is set or the netrc file holds a password for the
        W&B host (``api.wandb.ai`` unless ``WANDB_BASE_URL`` names another server).
    """
    if os.environ.get("WANDB_API_KEY", "").strip():
        return True
    host = urlsplit(os.environ.get("WANDB_BASE_URL") or DEFAULT_BASE_URL).hostname
    return bool(host) and _netrc_has_key(host)


def wandb_mode() -> str:
    """The W&B mode for dfbench runs, decided without touching the network.

    ``WANDB_MODE`` wins when set (``offline``/``disabled`` always keep runs local;
    ``online`` uploads even without a stored key, so wandb asks for one), as does
    ``WANDB_DISABLED=true``. Otherwise runs go online only if the user has logged in
    (see :func:`has_api_key`), so a fresh machine needs neither an account nor a network.

    Returns:
        ``"online"``, ``"offline"`` or ``"disabled"``.

    Raises:
        ValueError: If ``WANDB_MODE`` holds a value wandb does not know.
    """
    env_mode = os.environ.get("WANDB_MODE", "").strip().lower()
    if env_mode:
        if env_mode not in _ENV_MODES:
            raise DFBenchError(
                f"WANDB_MODE={env_mode!r} is not a W&B mode (use one of online, offline, disabled)"
            )
        return _ENV_MODES[env_mode]
    if os.environ.get("WANDB_DISABLED", "").strip().lower() in _TRUE:
        return "disabled"
    return "online" if has_api_key() else "offline"


def default_group(benchmark: str, profile: str) -> str:
    """The W&B group of a benchmark's runs: ``<benchmark>/<profile>``."""
    return f"{benchmark}/{profile}"


def cell_logger_args(
    benchmark: str,
    cell: str,
    detector: str,
    datasets: list[str],
    save_dir: str | Path,
    project: str | None = None,
    group: str | None = None,
) -> list[str]:
    """LightningCLI arguments that log a ``dfbench fit``/``test`` run to the cell's W&B run.

    The run is ``project=<project>``, ``group=<group>``, ``name=<cell>``, tagged with the
    detector and the datasets. Its id is the cell id with ``resume="allow"``, so ``fit``
    and a later ``test`` of the cell land in the same run (offline, they write two
    ``offline-run-*`` folders that ``wandb sync`` merges in start order).

    With a ``WandbLogger`` the Trainer's ``log_dir`` is ``save_dir``: ``dfbench test``
    writes ``test_metrics.json`` there, and checkpoints go to
    ``<save_dir>/dfbench/<cell>/checkpoints/``.

    Args:
        benchmark: Benchmark (grid) name, e.g. ``cross_dataset``.
        cell: Cell id; also the W&B run id, so it must be unique within the project
            and free of ``/ \\ # ? % :``.
        detector: Detector name given in the grid.
        datasets: Training and test set names to tag the run with.
        save_dir: Folder that receives ``wandb/`` (usually the cell's folder).
        project: W&B project (default :data:`PROJECT`).
        group: W&B group (default: the benchmark's name).

    Returns:
        Arguments to append to a ``dfbench fit``/``test`` command line.
    """
    mode = wandb_mode()
    init_args = {
        "project": project or PROJECT,
        "group": group or benchmark,
        "name": cell,
        "id": cell,
        # WandbLogger defaults resume to "allow", but LightningCLI passes every wandb.init
        # keyword it resolved, so an unset resume would arrive as None and override it.
        "resume": "allow",
        "tags": [detector, *datasets],
        "save_dir": str(save_dir),
        "offline": mode == "offline",
        # The mode itself also reaches wandb.init, so "disabled" and "online" hold even
        # when the subprocess inherits a different WANDB_MODE.
        "mode": mode,
        # Checkpoints stay on disk; uploading them is impossible offline and costly online.
        "log_model": False,
    }
    args = ["--trainer.logger=pytorch_lightning.loggers.WandbLogger"]
    for key, value in init_args.items():
        # Strings go as they are (str-typed options keep the raw text, so an all-digit cell
        # id stays a string, while a quoted "allow" would fail the Literal check); lists
        # and booleans as JSON, which jsonargparse reads as YAML.
        text = value if isinstance(value, str) else json.dumps(value)
        args.append(f"--trainer.logger.init_args.{key}={text}")
    return args


def _markdown_html(markdown: str) -> str:
    # W&B renders HTML, not Markdown; a <pre> block keeps the pipe table aligned as written.
    return f"<pre style='font-family: monospace'>{html.escape(markdown)}</pre>"


def _plain(value: object) -> object:
    return value.item() if hasattr(value, "item") else value


def frame_table(frame: pd.DataFrame) -> wandb.Table:
    """A DataFrame as a ``wandb.Table`` of plain Python values, missing values as nulls."""
    import wandb

    # W&B infers one type per column: NaN in a text column (e.g. a flag-less row) or
    # numpy scalars would break that inference.
    values = frame.astype(object)
    values = values.where(values.notna(), None)
    rows = [[_plain(value) for value in row] for row in values.itertuples(index=False)]
    return wandb.Table(columns=[str(c) for c in frame.columns], data=rows)


def results_table(results: pd.DataFrame) -> wandb.Table:
    """The results store as a ``wandb.Table``: every schema column first, then any extras.

    Args:
        results: Rows of the results store (:data:`~src.bench.schema.RESULT_COLUMNS`).

    Returns:
        The table, with missing values as nulls.

    Raises:
        ValueError: If a schema column is missing.
    """
    missing = [column for column in RESULT_COLUMNS if column not in results.columns]
    if missing:
        raise ValueError(f"results lack the schema columns {missing}")
    columns = [*RESULT_COLUMNS, *(c for c in results.columns if c not in RESULT_COLUMNS)]
    return frame_table(results[columns])


#: Columns of the per-cell table that describe the cell (the rest are AUCs).
CELL_COLUMNS = (
    "cell",
    "detector",
    "flags",
    "train_set",
    "seed",
    "val_auc",
    "best_epoch",
    "val_fakes",
    "params",
    "train_time_s",
)


def cells_table(results: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: what it is, its validation AUC, and its AUC on every test set and level.

    AUC columns are ``auc/<test set>/<level>``; a cell with several test
    variants of one set (robustness) keeps each variant's AUC under its flags.
    """
    rows = results.copy()
    rows["_column"] = "auc/" + rows["test_set"].astype(str) + "/" + rows["level"].astype(str)
    variants = rows["flags"].fillna("{}").astype(str)
    several = variants.groupby(rows["cell"]).transform("nunique") > 1
    rows.loc[several, "_column"] += " " + variants[several]
    aucs = rows.pivot_table(index="cell", columns="_column", values="auc", sort=False)
    first = rows.groupby("cell", sort=False)[[c for c in CELL_COLUMNS if c != "cell"]].first()
    return first.join(aucs).reset_index()


def summary(results: pd.DataFrame) -> dict[str, float]:
    """Per detector (as the tables label it): mean frame AUC in-dataset and on the other sets.

    In-dataset means tested on the training set (``test_set == train_set``);
    ``cross_dataset_auc`` averages every other test set. Means over seeds and
    sets, as fractions like the results store.
    """
    frame = results[results["level"] == "frame"].copy()
    if frame.empty:
        return {}
    frame["_label"] = row_labels(frame)
    own = frame["test_set"] == frame["train_set"]
    out: dict[str, float] = {}
    for key, part in (("in_dataset_auc", frame[own]), ("cross_dataset_auc", frame[~own])):
        for label, value in part.groupby("_label", sort=False)["auc"].mean().items():
            if pd.notna(value):
                out[f"{key}/{label}"] = float(value)
    return out


def log_leaderboard(
    results: pd.DataFrame,
    tables: dict[str, pd.DataFrame],
    images: dict[str, Path],
    benchmark: str,
    save_dir: Path,
    project: str | None = None,
    group: str | None = None,
    markdown: dict[str, str] | None = None,
) -> Path:
    """Write a benchmark's leaderboard to one W&B run and finish it.

    The run (``job_type="leaderboard"``, ``name=<group>-leaderboard``) holds
    ``cells`` (one row per cell: :func:`cells_table`), ``results`` (the results
    store), ``tables/<name>`` (each rendered table as numbers, a ``wandb.Table``),
    ``tables_text/<name>`` (the Markdown tables as HTML, with their marks and
    intervals) and ``figures/<name>`` (each PNG, e.g. ROC curves); its summary
    holds :func:`summary`. The mode comes from :func:`wandb_mode`: offline unless
    the user has logged in.

    Args:
        results: Rows of the results store (:data:`~src.bench.schema.RESULT_COLUMNS`).
        tables: Rendered tables as numbers (:func:`src.bench.render.to_numbers`), by name.
        images: PNG files by name.
        benchmark: Benchmark (grid) name.
        save_dir: Folder that receives ``wandb/``.
        project: W&B project (default :data:`PROJECT`).
        group: W&B group (default: ``<benchmark>/<profile>`` of the results).
        markdown: Rendered Markdown tables by name.

    Returns:
        The run's folder, ``<save_dir>/wandb/offline-run-*`` offline (``run-*`` online).
    """
    import wandb

    save_dir = Path(save_dir)
    save_dir.mkdir(parents=True, exist_ok=True)
    profiles = results["profile"].dropna().unique() if "profile" in results else []
    group = group or (default_group(benchmark, str(profiles[0])) if len(profiles) else benchmark)
    run = wandb.init(
        project=project or PROJECT,
        group=group,
        name=f"{group.replace('/', '-')}-leaderboard",
        job_type="leaderboard",
        dir=str(save_dir),
        mode=wandb_mode(),
        config={"benchmark": benchmark, "rows": len(results), "cells": results["cell"].nunique()},
        # A run the caller already has open (e.g. a cell's) must stay untouched.
        reinit="create_new",
    )
    try:
        payload: dict[str, object] = {
            "cells": frame_table(cells_table(results)),
            "results": results_table(results),
        }
        payload.update({f"tables/{name}": frame_table(t) for name, t in tables.items()})
        payload.update(
            {
                f"tables_text/{name}": wandb.Html(_markdown_html(text))
                for name, text in (markdown or {}).items()
            }
        )
        payload.update({f"figures/{name}": wandb.Image(str(path)) for name, path in images.items()})
        run.log(payload)
        run.summary.update(summary(results))
        # The sync folder is the run's files/ folder's parent in every mode.
        run_dir = Path(run.dir).parent
    except BaseException:
        run.finish(exit_code=1)
        raise
    run.finish()
    return run_dir


def offline_run_dirs(root: str | Path) -> list[Path]:
    """Every offline W&B run folder below ``root`` (``**/wandb/offline-run-*``), oldest first.

    Args:
        root: Folder to search, e.g. a benchmark's results folder.

    Returns:
        The run folders, sorted by name (which starts with the run's start time).
    """
    found = (p for p in Path(root).glob("**/wandb/offline-run-*") if p.is_dir())
    return sorted(found, key=lambda p: (p.name, str(p)))


def sync_hint(run_dirs: Iterable[str | Path]) -> str:
    """The ``wandb sync`` command that uploads the given run folders.

    Args:
        run_dirs: Run folders, e.g. from :func:`log_leaderboard` or :func:`offline_run_dirs`.

    Returns:
        A shell-quoted command line, or ``""`` when there is nothing to upload.
    """
    paths = [str(path) for path in run_dirs]
    return shlex.join(["wandb", "sync", *paths]) if paths else ""
