"""``dfbench bench GRID.yaml``: run a grid's cells, keep every result, render the tables.

For each cell (:mod:`src.bench.grid`): ``dfbench fit`` (checkpoint chosen on
the training set's validation split), then one ``dfbench test`` of the best
checkpoint per test variant, each as a subprocess so that a crash, an
out-of-memory error or DDP's process launch stays inside its cell.

Everything lands in ``<results>/<benchmark>/<profile>/``:

* ``cells/<cell id>/``: the cell's runs, ``status.json`` (running / done /
  failed, with the error), ``fit.json`` (the selected checkpoint) and
  ``results.csv``;
* ``results.csv``: every finished cell's rows (:mod:`src.bench.schema`),
  rewritten atomically after each cell;
* ``tables/``: the rendered tables (Markdown, CSV, LaTeX) and ROC curves.

A re-run skips finished cells and redoes failed or interrupted ones (a fit
that finished is kept). One failing cell does not stop the others; the
command exits 1 if any failed. ``--cell N`` runs one cell, for a cluster
array job; ``--list`` shows the cells.

Every path the runner stores is relative to ``<results>/<benchmark>/<profile>/``,
so a results folder can be moved (or copied to another machine) and a re-run
there still finds its finished cells. (Logs and the W&B runs' metadata record
the command lines as they were run, with absolute paths; nothing reads them
back.) Once a cell's tests pass, only its selected checkpoint is kept, reduced
to weights and hyper-parameters (:mod:`src.bench.checkpoints`), unless
``keep_checkpoints`` asks to keep every checkpoint as written.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from src.bench.checkpoints import keep_only
from src.bench.grid import REPO, Cell, GridError, cli_value
from src.bench.schema import RESULT_COLUMNS
from src.files import atomic_write_csv, atomic_write_json

DEFAULT_RESULTS = REPO / "benchmarks" / "results"


def code_version() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        )
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def _dfbench(args: list[str], log: Path, shown_log: str) -> float:
    """Run ``dfbench ARGS`` in a subprocess, output to ``log``; returns the wall time.

    ``shown_log`` is how an error message names the log (relative to the results root).
    """
    start = time.perf_counter()
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as handle:
        process = subprocess.run(
            [sys.executable, "-m", "src.cli", *args],
            cwd=REPO,
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=os.environ | {"PYTHONUNBUFFERED": "1"},
        )
    if process.returncode != 0:
        tail = log.read_text()[-2000:]
        raise RuntimeError(
            f"dfbench {args[0]} exited {process.returncode}; see {shown_log} in the "
            f"benchmark's results folder\n{tail}"
        )
    return time.perf_counter() - start


def _count_parameters(checkpoint: Path) -> int:
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    buffers = ("running_mean", "running_var", "num_batches_tracked")
    return int(sum(v.numel() for k, v in state.items() if not k.endswith(buffers)))


class Runner:
    """Runs the cells of one grid and profile into a results folder.

    Args:
        cells: the grid's cells (:func:`src.bench.grid.load_grid`).
        results: the results folder; the benchmark's root is
            ``results/<benchmark>/<profile>``.
        extra_args: arguments added to every ``dfbench fit``/``test``.
        logger_args: ``(cell, save_dir) -> arguments`` that choose the logger
            (W&B); None logs CSV files.
        keep_checkpoints: keep every checkpoint of a finished cell as written,
            optimiser state included (default: only the selected one, weights only).
    """

    def __init__(
        self,
        cells: list[Cell],
        results: Path,
        extra_args: list[str],
        logger_args: Any = None,
        keep_checkpoints: bool = False,
    ) -> None:
        if not cells:
            raise GridError("the grid has no cells")
        self.cells = cells
        self.root = results / cells[0].benchmark / cells[0].profile
        self.extra_args = extra_args
        self.logger_args = logger_args
        self.keep_checkpoints = keep_checkpoints
        self.version = code_version()

    def cell_dir(self, cell: Cell) -> Path:
        return self.root / "cells" / cell.id

    def _stored(self, path: Path) -> str:
        """How a path inside the results root is stored: relative to the root."""
        return path.relative_to(self.root).as_posix()

    def status(self, cell: Cell) -> dict[str, Any]:
        path = self.cell_dir(cell) / "status.json"
        return json.loads(path.read_text()) if path.is_file() else {"status": "pending"}

    def _set_status(self, cell: Cell, status: str, **extra: Any) -> None:
        atomic_write_json(
            self.cell_dir(cell) / "status.json", {"status": status, "cell": cell.id} | extra
        )

    def run(self, only: int | None = None) -> int:
        """Run every unfinished cell (or only cell ``only``); 1 if any failed."""
        failed = []
        for cell in self.cells:
            if only is not None and cell.index != only:
                continue
            if self.status(cell)["status"] == "done":
                print(f"[{cell.index}] {cell.id}: done earlier, skipped")
                continue
            print(f"[{cell.index}] {cell.id}: running", flush=True)
            try:
                self.run_cell(cell)
                freed = self.status(cell).get("checkpoint_bytes_freed", 0)
                note = f" ({freed / 2**20:.0f} MiB of checkpoints freed)" if freed else ""
                print(f"[{cell.index}] {cell.id}: done{note}", flush=True)
            except Exception as error:  # one cell's failure never stops the grid
                self._set_status(cell, "failed", error=str(error)[-4000:])
                failed.append(cell)
                print(f"[{cell.index}] {cell.id}: FAILED: {str(error).splitlines()[0]}", flush=True)
            self.collect()
        if failed:
            print(
                f"{len(failed)} cell(s) failed: {', '.join(c.id for c in failed)} (see their status.json)"
            )
        return 1 if failed else 0

    def run_cell(self, cell: Cell) -> None:
        folder = self.cell_dir(cell)
        started = time.time()
        self._set_status(cell, "running", started=started)
        common = [*cell.fit_args(), *self.extra_args, "--trainer.enable_progress_bar=false"]
        fit_marker = folder / "fit.json"
        if not fit_marker.is_file():
            # An interrupted fit may have left checkpoints that are not this run's best.
            shutil.rmtree(folder / "checkpoints", ignore_errors=True)
            shutil.rmtree(folder / "fit", ignore_errors=True)
            fit_time = _dfbench(
                [
                    "fit",
                    *common,
                    *self._logger(cell, folder / "fit"),
                    f"--checkpoint.dirpath={folder / 'checkpoints'}",
                ],
                folder / "fit.log",
                self._stored(folder / "fit.log"),
            )
            best = sorted((folder / "checkpoints").glob("best-*.ckpt"))
            if not best:
                raise RuntimeError(
                    f"fit wrote no best checkpoint in {self._stored(folder / 'checkpoints')}"
                )
            atomic_write_json(
                fit_marker, {"train_time_s": fit_time, "checkpoint": self._stored(best[-1])}
            )
        fit = json.loads(fit_marker.read_text())
        # An absolute path (results written before paths were stored relative) stays as it is.
        checkpoint = self.root / fit["checkpoint"]
        params = _count_parameters(checkpoint)
        rows = []
        for k, variant in enumerate(cell.tests):
            out = folder / f"test_{k}"
            shutil.rmtree(out, ignore_errors=True)
            test_time = _dfbench(
                [
                    "test",
                    *common,
                    *(f"--{key}={cli_value(v)}" for key, v in variant.items()),
                    f"--ckpt_path={checkpoint}",
                    *self._logger(cell, out),
                ],
                folder / f"test_{k}.log",
                self._stored(folder / f"test_{k}.log"),
            )
            (metrics_path,) = sorted(out.rglob("test_metrics.json"))[-1:]
            metrics = json.loads(metrics_path.read_text())
            predictions = metrics_path.parent / "test_predictions.parquet"
            frames = sum(m["n_frames"] for m in metrics.values())
            # A test restricted to some methods (cross-manipulation) is its own test set;
            # the "methods" flag stays the training set's.
            tested_methods = variant.get("data.init_args.methods")
            flags = cell.flags | {
                key.split(".")[-1]: value
                for key, value in variant.items()
                if key != "data.init_args.methods"
            }
            for name, m in metrics.items():
                test_set = f"{name}:{'+'.join(tested_methods)}" if tested_methods else name
                for level in ("frame", "video"):
                    rows.append(
                        {
                            "benchmark": cell.benchmark,
                            "profile": cell.profile,
                            "cell": cell.id,
                            "detector": cell.detector,
                            "flags": json.dumps(flags, sort_keys=True),
                            "train_set": cell.train_set,
                            "test_set": test_set,
                            "level": level,
                            "seed": cell.seed,
                            "auc": m[f"{level}_auc"],
                            "ap": m[f"{level}_ap"],
                            "acc": m[f"{level}_acc"],
                            "eer": m[f"{level}_eer"],
                            "real_acc": m["real_acc"] if level == "frame" else float("nan"),
                            "fake_acc": m["fake_acc"] if level == "frame" else float("nan"),
                            "n_videos": int(m["n_videos"]),
                            "n_frames": int(m["n_frames"]),
                            "train_time_s": fit["train_time_s"],
                            "test_images_per_s": frames / test_time,
                            "params": params,
                            "config_hash": cell.config_hash,
                            "code_version": self.version,
                            "predictions": self._stored(predictions),
                            "prediction_set": name,
                        }
                    )
        atomic_write_csv(folder / "results.csv", pd.DataFrame(rows, columns=list(RESULT_COLUMNS)))
        freed = 0 if self.keep_checkpoints else keep_only(checkpoint)
        self._set_status(
            cell, "done", started=started, finished=time.time(), checkpoint_bytes_freed=freed
        )

    def _logger(self, cell: Cell, folder: Path) -> list[str]:
        """Where a fit or test run logs; its log_dir (test_metrics.json) is ``folder``."""
        if self.logger_args is not None:
            return [f"--trainer.default_root_dir={folder}", *self.logger_args(cell, folder)]
        return [
            f"--trainer.default_root_dir={folder}",
            f"--trainer.logger.init_args.save_dir={folder}",
        ]

    def collect(self) -> pd.DataFrame:
        """Every finished cell's rows, written to ``results.csv`` (only cells of this grid)."""
        parts = [
            pd.read_csv(self.cell_dir(cell) / "results.csv")
            for cell in self.cells
            if self.status(cell)["status"] == "done"
            and (self.cell_dir(cell) / "results.csv").is_file()
        ]
        results = (
            pd.concat(parts, ignore_index=True)
            if parts
            else pd.DataFrame(columns=list(RESULT_COLUMNS))
        )
        atomic_write_csv(self.root / "results.csv", results)
        return results
