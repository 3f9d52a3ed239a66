"""``dfbench bench GRID --slurm``: a grid as Slurm jobs, and ``--status`` of its cells.

Three sbatch scripts are written under ``<results root>/slurm/`` and submitted
with ``sbatch --parsable`` (``--dry-run`` writes and prints them only):

* ``cells.sbatch``: one array job of the unfinished cells that need no other
  cell, one task per cell whose array index *is* the cell's index, running
  ``dfbench bench GRID --profile P --cell $SLURM_ARRAY_TASK_ID`` (``%N``
  throttle with ``throttle=N``);
* ``prle.sbatch``: the unfinished PRLE cells (``prle_zoo``), an array that
  starts once the zoo cells it needs have succeeded
  (``--dependency=afterok:<cells job>_<index>...``, ``--kill-on-invalid-dep=yes``
  so that a failed zoo cancels it instead of leaving it queued forever); the
  first task of a zoo builds its maps, as a ``--cell`` run does;
* ``report.sbatch``: after both (``--dependency=afterany:...``), ``bench
  --report-only`` renders the tables from the cells' results and names the
  cells that did not finish.

Every job runs in the repository folder with this interpreter, so the
results and the repository must be on a file system the nodes share. Each
task logs to ``slurm/logs/<job>-<array job id>_<index>.out``; the job ids are
kept in ``slurm/jobs.json`` for ``--status``.

A cell that asks for N GPUs (``gpus=N``) gets ``--ntasks-per-node=N`` and N
GPUs; ``bench --cell`` itself runs once, in the batch step, and starts each fit
and test through ``srun`` (``bench --srun``), so that they run as the job's N
tasks and Lightning's SLURM environment takes its world size and ranks from
Slurm. The runner, which keeps the cell's status, lock, resume point and
checkpoints, stays one process.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from src.configs import REPO
from src.errors import DFBenchError
from src.files import atomic_write_json, atomic_write_text

#: The command a job runs (``dfbench`` of this source tree, with this interpreter).
JOB_COMMAND = [sys.executable, "-m", "src.cli"]
#: ``--slurm-opt`` keys that become one ``#SBATCH`` option each.
SBATCH_OPTIONS = {
    "partition": "--partition",
    "account": "--account",
    "time": "--time",
    "cpus": "--cpus-per-task",
    "mem": "--mem",
    "constraint": "--constraint",
    "qos": "--qos",
    "signal": "--signal",
}
#: Every ``--slurm-opt`` key and what it means (the error for an unknown key lists them).
OPTION_HELP = {
    "partition": "partition (queue) of every job",
    "account": "account charged",
    "time": "time limit of each cell's task, e.g. 12:00:00",
    "gpus": "GPUs per cell (the same as bench --gpus); N > 1 runs N tasks through srun",
    "cpus": "CPUs per task (--cpus-per-task)",
    "mem": "memory per node, e.g. 64G",
    "constraint": "node features, e.g. a100",
    "qos": "quality of service",
    "throttle": "at most this many cells of an array at once (%N)",
    "signal": "e.g. USR1@120: a signal before the time limit (sbatch --signal)",
    "requeue": "true: the cells' jobs may be requeued (sbatch --requeue)",
    "extra": "one more '#SBATCH' line, e.g. extra=--mail-type=END (repeatable)",
}
if TYPE_CHECKING:
    from src.bench.grid import Cell

_JOB_ID = re.compile(r"^(\d+)(;\S+)?$")


class SlurmError(DFBenchError):
    """A bad ``--slurm-opt``, or ``sbatch`` refused a script; one line saying which."""


@dataclass
class SlurmOptions:
    """What ``--slurm-opt KEY=VALUE`` set (see :data:`OPTION_HELP`)."""

    sbatch: dict[str, str] = field(default_factory=dict)
    gpus: int | None = None
    throttle: int | None = None
    requeue: bool = False
    extra: list[str] = field(default_factory=list)


def _positive(key: str, value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise SlurmError(f"--slurm-opt {key}={value}: expected a whole number of at least 1")
    return int(value)


def parse_options(texts: Sequence[str]) -> SlurmOptions:
    """``--slurm-opt`` values (``KEY=VALUE``) as :class:`SlurmOptions`.

    Raises:
        SlurmError: an unknown key, a missing ``=``, a bad number or flag, or a
            value with a newline.
    """
    options = SlurmOptions()
    for text in texts:
        key, equals, value = text.partition("=")
        if not equals or key not in OPTION_HELP:
            raise SlurmError(
                f"--slurm-opt {text!r}: expected KEY=VALUE with KEY one of {', '.join(OPTION_HELP)}"
            )
        if not value or "\n" in value:
            raise SlurmError(f"--slurm-opt {text!r}: the value is empty or has a newline")
        if key == "gpus":
            options.gpus = _positive(key, value)
        elif key == "throttle":
            options.throttle = _positive(key, value)
        elif key == "requeue":
            if value.lower() not in ("true", "false"):
                raise SlurmError(f"--slurm-opt {text!r}: expected requeue=true or requeue=false")
            options.requeue = value.lower() == "true"
        elif key == "extra":
            options.extra.append(value.removeprefix("#SBATCH").strip())
        else:
            options.sbatch[key] = value
    return options


def _array(indices: Sequence[int], throttle: int | None) -> str:
    listed = ",".join(str(i) for i in indices)
    return f"{listed}%{throttle}" if throttle else listed


@dataclass(frozen=True)
class Script:
    """One sbatch script: its name, where it is written, its text and its dependency."""

    name: str
    path: Path
    text: str
    #: What ``--dependency`` it needs, from the job ids of the scripts before it.
    depends: Callable[[dict[str, str]], str | None] = lambda jobs: None
    #: The cells it runs (by index); empty for the report.
    cells: tuple[int, ...] = ()


def _header(
    job_name: str, log: Path, options: SlurmOptions, *, cell_job: bool, gpus: int
) -> list[str]:
    lines = ["#!/bin/bash", f"#SBATCH --job-name={job_name}", f"#SBATCH --output={log}"]
    for key, flag in SBATCH_OPTIONS.items():
        value = options.sbatch.get(key)
        # The report job renders tables: a signal or GPU nodes are of no use to it.
        if value is not None and (cell_job or key not in ("signal", "constraint")):
            lines.append(f"#SBATCH {flag}={value}")
    if cell_job:
        lines.append("#SBATCH --nodes=1")
        lines.append(f"#SBATCH --ntasks-per-node={max(gpus, 1)}")
        if gpus:
            lines.append(f"#SBATCH --gres=gpu:{gpus}")
        if options.requeue:
            lines.append("#SBATCH --requeue")
    else:
        lines += ["#SBATCH --ntasks=1", "#SBATCH --no-requeue"]
    lines += [f"#SBATCH {line}" for line in options.extra]
    return lines


def write_scripts(
    cells: Sequence[Cell],
    status: Callable[[Cell], str],
    root: Path,
    bench_args: Sequence[str],
    options: SlurmOptions,
    gpus: int,
) -> list[Script]:
    """Write the grid's sbatch scripts under ``root/slurm``; returns them in submission order.

    Args:
        cells: the grid's cells (:func:`src.bench.grid.load_grid`).
        status: a cell's state in the results folder (``done`` ones get no task).
        root: the benchmark's results root.
        bench_args: the arguments of ``dfbench bench`` that every job repeats
            (grid, profile, ``--out``, ``--set`` ...: what makes the cells' identities).
        options: the ``--slurm-opt`` values.
        gpus: GPUs per cell.
    """
    folder = root / "slurm"
    logs = folder / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    todo = [c for c in cells if status(c) != "done"]
    plain = [c.index for c in todo if not c.zoo]
    prle = [c for c in todo if c.zoo]
    name = f"dfbench-{cells[0].benchmark}-{cells[0].profile}"
    bench = shlex.join([*JOB_COMMAND, "bench", *bench_args])
    body = ["set -euo pipefail", f"cd {shlex.quote(str(REPO))}"]
    cell_command = f"exec {bench} --cell $SLURM_ARRAY_TASK_ID"
    if gpus > 1:
        cell_command += " --srun"
    scripts = []

    def cell_script(kind: str, indices: list[int], depends: Callable) -> Script:
        lines = _header(
            f"{name}-{kind}", logs / f"{kind}-%A_%a.out", options, cell_job=True, gpus=gpus
        )
        lines.append(f"#SBATCH --array={_array(indices, options.throttle)}")
        if kind == "prle":
            lines.append("#SBATCH --kill-on-invalid-dep=yes")
        text = "\n".join([*lines, "", *body, cell_command, ""])
        path = folder / f"{kind}.sbatch"
        return Script(kind, path, text, depends, tuple(indices))

    if plain:
        scripts.append(cell_script("cells", plain, lambda jobs: None))
    if prle:
        # Only the zoo cells submitted now: a zoo cell done earlier needs no waiting for.
        zoo = sorted({z.index for c in prle for z in c.zoo if z.index in plain})

        def after_zoo(jobs: dict[str, str]) -> str | None:
            if not zoo:
                return None
            return "afterok:" + ":".join(f"{jobs['cells']}_{i}" for i in zoo)

        scripts.append(cell_script("prle", [c.index for c in prle], after_zoo))
    if scripts:
        before = [s.name for s in scripts]

        def after_all(jobs: dict[str, str]) -> str:
            return "afterany:" + ":".join(jobs[n] for n in before)

        lines = _header(f"{name}-report", logs / "report-%j.out", options, cell_job=False, gpus=0)
        text = "\n".join([*lines, "", *body, f"exec {bench} --report-only", ""])
        scripts.append(Script("report", folder / "report.sbatch", text, after_all))
    for script in scripts:
        atomic_write_text(script.path, script.text)
    return scripts


def sbatch_command(script: Script, jobs: dict[str, str]) -> list[str]:
    """The ``sbatch`` command line that submits ``script`` after the jobs in ``jobs``."""
    depends = script.depends(jobs)
    return [
        "sbatch",
        "--parsable",
        *([f"--dependency={depends}"] if depends else []),
        str(script.path),
    ]


def submit(scripts: Sequence[Script], root: Path, say: Callable[[str], None]) -> dict[str, str]:
    """Submit the scripts in order with ``sbatch --parsable``; returns and records the job ids.

    Raises:
        SlurmError: ``sbatch`` is not installed or refused a script (its message).
    """
    if shutil.which("sbatch") is None:
        raise SlurmError("--slurm: sbatch is not on PATH (run on a Slurm login node, or --dry-run)")
    jobs: dict[str, str] = {}
    for script in scripts:
        command = sbatch_command(script, jobs)
        done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
        match = _JOB_ID.match(done.stdout.strip())
        if done.returncode != 0 or not match:
            why = (done.stderr.strip() or done.stdout.strip()).splitlines()
            raise SlurmError(
                f"sbatch refused {script.path}: {why[-1] if why else f'exit {done.returncode}'}"
                + (f" (jobs submitted before it: {', '.join(jobs.values())})" if jobs else "")
            )
        jobs[script.name] = match.group(1)
        say(f"submitted {script.name}: job {jobs[script.name]}  ({shlex.join(command)})")
    record = {
        "jobs": jobs,
        "cells": {str(i): jobs[s.name] for s in scripts for i in s.cells},
    }
    atomic_write_json(root / "slurm" / "jobs.json", record)
    return jobs


# --------------------------------------------------------------------------- status


def _run_quietly(command: list[str]) -> str | None:
    """A Slurm client's output, or None where it is missing or fails (no accounting ...)."""
    if shutil.which(command[0]) is None:
        return None
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


@dataclass(frozen=True)
class TaskState:
    """What the scheduler says of one cell's task."""

    state: str
    reason: str = ""
    restarts: int = 0


def scheduler_states(record: dict[str, Any]) -> dict[int, TaskState]:
    """Each submitted cell's task as ``squeue`` (queued, running) or ``sacct`` (ended) shows it."""
    jobs = sorted(set(record.get("cells", {}).values()))
    if not jobs:
        return {}
    states: dict[int, TaskState] = {}
    ended = _run_quietly(
        ["sacct", "--noheader", "--parsable2", "--format=JobID,State", f"--jobs={','.join(jobs)}"]
    )
    for line in (ended or "").splitlines():
        job_task, _, state = line.partition("|")
        job, _, task = job_task.partition("_")
        if task.isdigit() and record["cells"].get(task) == job:
            states[int(task)] = TaskState(state.split()[0] if state else "")
    queued = _run_quietly(
        [
            "squeue",
            "--noheader",
            "--array",
            f"--jobs={','.join(jobs)}",
            "--Format=ArrayJobID:|,ArrayTaskID:|,State:|,RestartCnt:|,Reason:",
        ]
    )
    for line in (queued or "").splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) != 5 or not parts[1].isdigit():
            continue
        job, task, state, restarts, reason = parts
        if record["cells"].get(task) == job:
            count = int(restarts) if restarts.isdigit() else 0
            states[int(task)] = TaskState(state, "" if reason == "None" else reason, count)
    return states


def cell_state(status: dict[str, Any], task: TaskState | None, in_use: bool) -> str:
    """One line of a cell's state from its ``status.json``, its task and its lock.

    The results folder says what a cell's own run recorded (done, failed with
    the error, interrupted); the scheduler says what happened outside it
    (queued and why, requeued, killed at the time limit).
    """
    state = status["status"]
    requeued = max(task.restarts if task else 0, int(status.get("requeues", 0)))
    note = f", requeued {requeued} time(s)" if requeued else ""
    if state == "done":
        return "done" + note
    if state == "failed":
        reason = str(status.get("error", "")).strip().splitlines()
        return f"failed: {reason[0] if reason else 'no reason recorded'}{note}"
    if task is not None and task.state == "PENDING":
        return f"queued ({task.reason})" if task.reason else "queued"
    if task is not None and task.state in ("RUNNING", "COMPLETING", "CONFIGURING"):
        return "running" + note
    if state == "running" and in_use:
        return "running" + note
    if task is not None and task.state:
        # Ended without recording done or failed: killed (time limit, memory) or cancelled.
        return f"{'stopped' if state == 'running' else state} (Slurm: {task.state}){note}"
    if state == "running":
        return "stopped (its process died; a re-run continues it)"
    if state == "interrupted":
        return f"interrupted by {status.get('signal', 'a signal')}; a re-run continues it"
    return "not started"


def read_record(root: Path) -> dict[str, Any]:
    """``slurm/jobs.json`` of the last ``--slurm`` submission, or an empty record."""
    path = root / "slurm" / "jobs.json"
    return json.loads(path.read_text()) if path.is_file() else {}
