"""Experiment records: what every logger of a run (CSV, TensorBoard, W&B) receives.

A run's W&B config, hparams.yaml or TensorBoard hparams hold the whole
resolved configuration (model with its optimiser and schedule, data, trainer,
checkpointing, seed) plus a ``dfbench`` section of the settings people filter
and compare runs by, flat::

    dfbench.verb / detector / data / run / session
    dfbench.optimizer / lr / lr_scheduler / batch_size / max_epochs / seed / input_size
    dfbench.train_sets / test_sets / profile / config_files
    dfbench.config_hash   src.configs.config_hash of the resolved config (bookkeeping
                          left out, frame tables by content): two runs with the same
                          hash were configured alike, and a bench cell's fit records
                          the cell's own config_hash
    dfbench.code_version  src.configs.code_version: git commit (with "-dirty" when
                          tracked files changed), or the installed package version

and, for a run launched by ``dfbench bench``, the runner's ``DFBENCH_RUN_META``
(benchmark, profile, cell, seed, config hash and code version of the grid
cell ...) under ``run``. After ``dfbench test``, every test metric is in the
run's summary as ``test/<set>/<metric>`` (W&B run.summary; the CSV and
TensorBoard loggers have them as logged metrics).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from src.cli import UsageError
from src.configs import RUN_META_ENV, config_hash


def run_meta() -> dict[str, Any]:
    """``DFBENCH_RUN_META`` as a dict ({} when unset)."""
    text = os.environ.get(RUN_META_ENV, "").strip()
    if not text:
        return {}
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as error:
        raise UsageError(f"{RUN_META_ENV} is not JSON: {error}") from None
    if not isinstance(meta, dict):
        raise UsageError(f"{RUN_META_ENV} must be a JSON object, got {type(meta).__name__}")
    return meta


def _short_class(spec: Any) -> str | None:
    if isinstance(spec, dict) and isinstance(spec.get("class_path"), str):
        return spec["class_path"].rsplit(".", 1)[-1]
    return None


def experiment_record(
    config: dict[str, Any],
    names: dict[str, str],
    config_files: list[str],
    meta: dict[str, Any],
    version: str,
) -> dict[str, Any]:
    """What a run's loggers receive as hyper-parameters (see the module docstring).

    Args:
        config: the resolved config of the subcommand (a plain dict, as config.yaml holds it).
        names: verb, detector, data, run and session of the run.
        config_files: the ``-c`` files in the order given.
        meta: DFBENCH_RUN_META ({} when unset).
        version: the code version (code_version()).
    """
    model = config.get("model") or {}
    model_args = model.get("init_args") or {}
    data_args = (config.get("data") or {}).get("init_args") or {}
    trainer = config.get("trainer") or {}
    optimizer = model_args.get("optimizer")
    profiles = [Path(f).stem for f in config_files if Path(f).parent.name == "profiles"]
    summary = dict(names)
    summary |= {
        "optimizer": _short_class(optimizer) or "default",
        "lr": ((optimizer or {}).get("init_args") or {}).get("lr"),
        "lr_scheduler": _short_class(model_args.get("lr_scheduler")) or "default",
        "batch_size": data_args.get("batch_size"),
        "max_epochs": trainer.get("max_epochs"),
        "seed": config.get("seed_everything"),
        "input_size": model_args.get("input_size"),
        "train_sets": data_args.get("train"),
        "test_sets": data_args.get("test", data_args.get("test_sets")),
        "profile": meta.get("profile") or "+".join(profiles) or "none",
        "config_files": list(config_files),
        "config_hash": config_hash(config),
        "code_version": version,
    }
    # Plain copies: YAML would write a value shared with the config as an anchor.
    record = {"dfbench": json.loads(json.dumps(summary, default=str))}
    record |= {key: value for key, value in config.items() if key != "config"}
    if meta:
        record["run"] = meta
    return record


def test_summary(results: dict[str, dict[str, float]]) -> dict[str, float]:
    """Test metrics as flat scalars: ``test/<set>/<metric>``."""
    return {
        f"test/{name}/{key}": float(value)
        for name, metrics in results.items()
        for key, value in metrics.items()
        if isinstance(value, int | float)
    }
