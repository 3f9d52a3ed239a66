"""``dfbench bench GRID.yaml``: run a grid's cells, keep every result, render the tables.

For each cell (:mod:`src.bench.grid`): ``dfbench fit`` (checkpoint chosen on
the training set's validation split), then one ``dfbench test`` of the best
checkpoint per test variant, each as a subprocess so that a crash, an
out-of-memory error or DDP's process launch stays inside its cell
(:mod:`src.bench.process`: stopping ``bench`` stops them too).

Everything lands in ``<out>/<benchmark>/<profile>/``:

* ``cells/<cell id>/``: the cell's resolved configuration (``config.yaml``, what
  its id hashes), its runs and logs, ``status.json`` (running /
  done / failed with the error / interrupted), ``fit.json`` (the selected
  checkpoint, the validation score it was chosen by, the training time),
  ``progress.json`` (the fit's epoch) and ``results.csv``;
* ``results.csv``: every finished cell's rows (:mod:`src.bench.schema`),
  rewritten atomically after each cell;
* ``tables/``: the rendered tables (Markdown, CSV, LaTeX) and ROC curves;
* ``bench.lock``: held while a ``bench`` runs there (:mod:`src.bench.lock`).

A PRLE cell (``prle_zoo`` in the grid) runs after its zoo cells, which are
added to a ``--cell`` run when not done yet; between them, the zoo's maps are
built once into ``prle_maps/<key>/`` (:mod:`src.bench.prle_maps`), a step with
its own done marker that every PRLE cell of the same zoo and data reuses.

A re-run skips finished cells and continues failed or interrupted ones: a
fit that finished is kept, and one that did not resumes from the last epoch
it completed (its ``last.ckpt``; ``fit.json`` records ``resumed_after_epoch``,
and its ``train_time_s`` adds the earlier attempts' training time up to that
checkpoint). One failing cell does not stop the others; the
command exits 1 if any failed. ``--cell N`` runs one cell, for a cluster
array job; ``--list`` shows the cells.

Every subprocess gets ``DFBENCH_RUN_META`` in its environment: a JSON object
(benchmark, profile, cell, detector, train_set, seed, wandb_group) that the
Lightning verbs log with their config, so a run found on its own (on W&B, in
a log folder) says where it belongs; its config hash and code version are the
run's own (:mod:`src.configs`), equal to the cell's.

Every path the runner stores is relative to ``<out>/<benchmark>/<profile>/``,
so a results folder can be moved (or copied to another machine) and a re-run
there still finds its finished cells. (Logs and the W&B runs' metadata record
the command lines as they were run, with absolute paths; nothing reads them
back.) Once a cell's tests pass, only its selected checkpoint is kept, reduced
to weights and hyper-parameters (:mod:`src.bench.checkpoints`), unless
``keep_checkpoints`` asks to keep every checkpoint as written.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from src.bench import prle_maps as maps
from src.bench import process
from src.bench.checkpoints import keep_only, resume_point, selection
from src.bench.grid import Cell, GridError, cli_value, with_dependencies
from src.bench.process import Interrupted, StopSignals, Workers, handle_stop_signals, run_child
from src.bench.progress import ProgressLine, read_progress, seconds_at_epoch
from src.bench.schema import RESULT_COLUMNS, rows_of_test
from src.configs import REPO, RUN_META_ENV, code_version
from src.files import atomic_write_csv, atomic_write_json, atomic_write_text

DEFAULT_RESULTS = REPO / "benchmarks" / "results"
#: The command a cell runs (``dfbench`` of this source tree, with this interpreter).
DFBENCH = [sys.executable, "-m", "src.cli"]
_THIS_DFBENCH = DFBENCH


def _dfbench(
    args: list[str],
    log: Path,
    shown_log: str,
    *,
    env: dict[str, str],
    pass_fds: Sequence[int] = (),
    watch: Callable[[], None] | None = None,
    state: StopSignals | None = None,
    grace_s: float | None = None,
    workers: Workers | None = None,
    launcher: Sequence[str] = (),
) -> float:
    """Run ``dfbench ARGS`` in a subprocess, output to ``log``; returns the wall time.

    ``shown_log`` is how an error message names the log (relative to the results root).
    With ``workers`` (:class:`~src.bench.process.Workers` of ``dfbench``'s main), the
    subprocess is one of them, unless ``DFBENCH`` names another command (a test's stand-in)
    or a ``launcher`` (``srun``) starts it as a new program.
    """
    start = time.perf_counter()
    if DFBENCH is not _THIS_DFBENCH or launcher:
        workers = None
    code = run_child(
        args if workers is not None else [*launcher, *DFBENCH, *args],
        log,
        cwd=REPO,
        env=os.environ | {"PYTHONUNBUFFERED": "1"} | env,
        pass_fds=pass_fds,
        watch=watch,
        state=state,
        grace_s=process.GRACE_S if grace_s is None else grace_s,
        workers=workers,
    )
    if code != 0:
        tail = log.read_text()[-2000:]
        raise RuntimeError(
            f"dfbench {args[0]} exited {code}; see {shown_log} in the "
            f"benchmark's results folder\n{tail}"
        )
    return time.perf_counter() - start


def progress_callback(path: Path, before_seconds: float = 0.0) -> str:
    """The fit argument that adds :class:`~src.bench.progress.ProgressFile` writing ``path``."""
    init_args = {"path": str(path), "before_seconds": before_seconds}
    spec = {"class_path": "src.bench.progress.ProgressFile", "init_args": init_args}
    return f"--trainer.callbacks+={json.dumps(spec)}"


class Runner:
    """Runs the cells of one grid and profile into a results folder.

    Args:
        cells: the grid's cells (:func:`src.bench.grid.load_grid`).
        results: the results folder (``--out``); the benchmark's root is
            ``results/<benchmark>/<profile>``.
        logger_args: ``(cell, save_dir) -> arguments`` that choose the logger
            (W&B); None logs CSV files.
        keep_checkpoints: keep every checkpoint of a finished cell as written,
            optimiser state included (default: only the selected one, weights only).
        wandb_group: the W&B group of the cells' runs, recorded in their metadata.
        progress: where progress goes (default: a :class:`ProgressLine` on stdout).
        lock_fds: the results folder's lock descriptors, inherited by every
            subprocess (:mod:`src.bench.lock`).
        grace_s: how long a stopped subprocess may take before SIGKILL (default
            :data:`src.bench.process.GRACE_S`).
        map_device: where ``dfbench prle-maps`` runs the zoo (``cpu``, ``cuda``).
        workers: workers that run ``dfbench``'s main with torch, Lightning and the
            detectors imported already (:class:`src.bench.process.Workers`): each fit
            and test is one of them instead of a new program that imports those
            again. None for DDP, whose launcher starts the command line again.
        launcher: what starts each fit and test (``["srun", ...]`` in a Slurm job whose
            tasks are the cell's DDP ranks: :mod:`src.bench.slurm`); empty for none.
    """

    def __init__(
        self,
        cells: list[Cell],
        results: Path,
        logger_args: Any = None,
        keep_checkpoints: bool = False,
        wandb_group: str | None = None,
        progress: ProgressLine | None = None,
        lock_fds: Sequence[int] = (),
        grace_s: float | None = None,
        map_device: str = "cpu",
        workers: Workers | None = None,
        launcher: Sequence[str] = (),
    ) -> None:
        if not cells:
            raise GridError("the grid has no cells")
        self.cells = cells
        self.root = results / cells[0].benchmark / cells[0].profile
        self.logger_args = logger_args
        self.keep_checkpoints = keep_checkpoints
        self.wandb_group = wandb_group
        self.progress = progress or ProgressLine(len(cells))
        self.lock_fds = tuple(lock_fds)
        self.grace_s = grace_s
        self.map_device = map_device
        self.workers = workers
        self.launcher = tuple(launcher)
        self.version = code_version()
        self._signals: StopSignals | None = None

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

    def run_meta(self, cell: Cell) -> dict[str, Any]:
        """The ``DFBENCH_RUN_META`` object of a cell's runs."""
        return {
            "benchmark": cell.benchmark,
            "profile": cell.profile,
            "cell": cell.id,
            "detector": cell.detector,
            "train_set": cell.train_set,
            "seed": cell.seed,
            "wandb_group": self.wandb_group,
        }

    def run(self, only: int | None = None) -> int:
        """Run every unfinished cell (or cell ``only`` and the zoo cells it needs); 1 if any failed.

        Raises:
            Interrupted: on SIGINT/SIGTERM, once the running cell's subprocess
                has stopped and the cell is marked ``interrupted`` (a re-run continues it).
        """
        chosen = with_dependencies(
            [cell for cell in self.cells if only is None or cell.index == only]
        )
        progress = self.progress
        progress.total = len(chosen)
        failed = []
        with handle_stop_signals() as self._signals:
            for cell in chosen:
                label = f"[{cell.index}] {cell.id}"
                if self.status(cell)["status"] == "done":
                    progress.say(f"{label}: done earlier, skipped")
                    progress.skipped()
                    continue
                progress.say(f"{label}: running")
                progress.start(cell.id)
                try:
                    if cell.zoo:
                        self._prepare_maps(cell)
                    self.run_cell(cell)
                    progress.finish()
                    freed = self.status(cell).get("checkpoint_bytes_freed", 0)
                    note = f" ({freed / 2**20:.0f} MiB of checkpoints freed)" if freed else ""
                    progress.say(f"{label}: done{note}")
                except Interrupted as stop:
                    progress.finish()
                    self._set_status(cell, "interrupted", signal=stop.name)
                    progress.say(
                        f"{label}: interrupted by {stop.name}; a re-run continues this cell"
                    )
                    self.collect()
                    raise
                except Exception as error:  # one cell's failure never stops the grid
                    progress.finish()
                    self._set_status(cell, "failed", error=str(error)[-4000:])
                    failed.append(cell)
                    progress.say(f"{label}: FAILED: {str(error).splitlines()[0]}")
                self.collect()
        if failed:
            progress.say(
                f"{len(failed)} cell(s) failed: {', '.join(c.id for c in failed)} "
                "(see their status.json)"
            )
        return 1 if failed else 0

    def _run(
        self,
        cell: Cell,
        args: list[str],
        log: Path,
        watch: Callable[[], None],
        launcher: Sequence[str] = (),
    ) -> float:
        return _dfbench(
            args,
            log,
            self._stored(log),
            env={RUN_META_ENV: json.dumps(self.run_meta(cell))},
            pass_fds=self.lock_fds,
            watch=watch,
            state=self._signals,
            grace_s=self.grace_s,
            workers=self.workers,
            launcher=launcher,
        )

    def _prepare_maps(self, cell: Cell) -> None:
        """Build a PRLE cell's maps from its zoo's checkpoints, unless done already."""
        broken = [z.id for z in cell.zoo if self.status(z)["status"] != "done"]
        if broken:
            raise RuntimeError(
                f"its PRLE zoo is not trained: cell(s) {', '.join(broken)} did not finish"
            )
        if maps.maps_state(self.root, cell) == "built":
            return
        folder = maps.maps_folder(self.root, cell)
        folder.parent.mkdir(parents=True, exist_ok=True)
        # PRLE cells of one zoo may run side by side (Slurm array tasks): the first
        # builds the maps, the others wait for it and then find them built.
        with open(folder.parent / f"{folder.name}.lock", "w") as builder:
            fcntl.flock(builder, fcntl.LOCK_EX)
            if maps.maps_state(self.root, cell) != "built":
                self._build_maps(cell, folder)

    def _build_maps(self, cell: Cell, folder: Path) -> None:
        checkpoints = [
            self.root / json.loads((self.cell_dir(z) / "fit.json").read_text())["checkpoint"]
            for z in cell.zoo
        ]
        maps.adopt_moved_folder(folder, checkpoints)
        data_config = maps.write_data_config(folder, cell)
        counts = {}
        for split in maps.SPLITS:
            self.progress.say(f"PRLE maps {self._stored(folder)}: building the {split} split")
            self._run(
                cell,
                maps.build_args(cell, checkpoints, folder, data_config, split, self.map_device),
                folder / f"build_{split}.log",
                lambda: None,
            )
            counts[split] = maps.check_built(folder, split)
        maps.mark_built(folder, cell, counts)
        self.progress.say(
            f"PRLE maps {self._stored(folder)}: built ("
            + ", ".join(f"{n} {split}" for split, n in counts.items())
            + " frames)"
        )

    def _fit(self, cell: Cell, common: list[str]) -> dict[str, Any]:
        """Fit the cell (unless an earlier run did) and return its ``fit.json``."""
        folder = self.cell_dir(cell)
        fit_marker = folder / "fit.json"
        if not fit_marker.is_file():
            resume = resume_point(
                folder / "checkpoints",
                lambda why: self.progress.say(
                    f"[{cell.index}] {cell.id}: its fit starts afresh: {why}"
                ),
            )
            if resume is None:
                shutil.rmtree(folder / "checkpoints", ignore_errors=True)
                shutil.rmtree(folder / "fit", ignore_errors=True)
            else:
                self.progress.say(
                    f"[{cell.index}] {cell.id}: resuming its fit after epoch {resume.epoch + 1}"
                )
            progress_file = folder / "progress.json"
            # The interrupted attempts' training time up to the checkpoint resumed from.
            before = seconds_at_epoch(read_progress(progress_file), resume.epoch) if resume else 0.0
            progress_file.unlink(missing_ok=True)
            fit_time = self._run(
                cell,
                [
                    "fit",
                    *common,
                    *self._logger(cell, folder / "fit"),
                    f"--checkpoint.dirpath={folder / 'checkpoints'}",
                    progress_callback(progress_file, before),
                    *([maps.side_data_arg(self.root, cell)] if cell.zoo else []),
                    *([f"--ckpt_path={resume.path}"] if resume else []),
                ],
                folder / "fit.log",
                lambda: self.progress.update(read_progress(progress_file)),
                self.launcher,
            )
            best = sorted((folder / "checkpoints").glob("best-*.ckpt"))
            if not best:
                raise RuntimeError(
                    f"fit wrote no best checkpoint in {self._stored(folder / 'checkpoints')}"
                )
            facts = selection(best[-1])
            atomic_write_json(
                fit_marker,
                {
                    "train_time_s": fit_time + before,
                    "resumed_after_epoch": resume.epoch if resume else None,
                    "checkpoint": self._stored(best[-1]),
                    "params": facts["params"],
                    "best_epoch": facts["epoch"],
                    "monitor": facts["monitor"],
                    "val_score": facts["val_score"],
                    "val_fakes": facts["val_fakes"],
                },
            )
        return json.loads(fit_marker.read_text())

    def run_cell(self, cell: Cell) -> None:
        folder = self.cell_dir(cell)
        started = time.time()
        self._set_status(cell, "running", started=started, pid=os.getpid())
        atomic_write_text(folder / "config.yaml", yaml.safe_dump(cell.config, sort_keys=False))
        common = [*cell.fit_args(), "--trainer.enable_progress_bar=false"]
        fit = self._fit(cell, common)
        checkpoint = self.root / fit["checkpoint"]
        rows = []
        for k, variant in enumerate(cell.tests):
            out = folder / f"test_{k}"
            shutil.rmtree(out, ignore_errors=True)
            self.progress.update({"stage": "test", "test": k, "tests": len(cell.tests)})
            test_time = self._run(
                cell,
                [
                    "test",
                    *common,
                    *(f"--{key}={cli_value(v)}" for key, v in variant.items()),
                    f"--ckpt_path={checkpoint}",
                    *self._logger(cell, out),
                ],
                folder / f"test_{k}.log",
                lambda: None,
                self.launcher,
            )
            (metrics_path,) = sorted(out.rglob("test_metrics.json"))[-1:]
            rows += rows_of_test(
                cell,
                fit,
                variant,
                json.loads(metrics_path.read_text()),
                self._stored(metrics_path.parent / "test_predictions.parquet"),
                test_time,
                self.version,
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
