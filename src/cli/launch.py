"""How the processes of a run were started (srun, torchrun, Lightning, or one process).

* **One run folder for all ranks.** Lightning's own launcher (``--trainer.devices
  2`` in a plain process) starts the other ranks itself and hands them the
  first one's run and session (src/cli/runs.py). Ranks started by ``srun`` or
  ``torchrun`` start on their own, possibly seconds apart, so a time stamp
  would give each its own folder. Every rank of such a launch derives the same
  name instead from what the launcher gives all of them identically
  (:func:`launch_name`): ``slurm<job>.<step>`` (array tasks:
  ``slurm<array job>_<task>.<step>``) or ``torchrun-<run id>``, with
  ``-restart<n>`` once Slurm requeued the job or torchrun restarted the
  workers. It names the session folder (``fit-slurm4242.0``) and, for a fit
  without ``--run_name`` or ``--ckpt_path``, the run.
* **srun task layout.** Lightning maps Slurm tasks to devices per node: it
  needs ``--ntasks-per-node`` equal to ``--trainer.devices`` and ``--nodes``
  equal to ``--trainer.num_nodes``, and otherwise raises on every rank with a
  long traceback. :func:`slurm_layout_error` says the same in one line,
  before Lightning starts; only the first task prints it.
* **The "srun is available but not used" hint.** Lightning prints it whenever
  Slurm's ``srun`` is on the PATH and the process was not started by it. It
  is silenced (:func:`silence_srun_hint`) unless the process runs inside a
  Slurm allocation, was not started by srun, and asks for several devices or
  nodes: the one case where the hint may be the fix.
"""

from __future__ import annotations

import os
import re
import socket
import warnings
from typing import Any

from lightning_fabric.plugins.environments import SLURMEnvironment
from lightning_fabric.utilities.warnings import PossibleUserWarning

from src.cli.runs import slug

_SRUN_HINT = r"The `srun` command is available on your system but is not used"


class ReportedByFirstTask(Exception):  # noqa: N818 (not an error of this task's own)
    """A launch error that the first task prints; the others exit with the same status, silently."""


def _count(value: Any) -> int | None:
    """A device or node count as given (2, "2", [0, 1]); None when Lightning decides ("auto")."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, list | tuple):
        return len(value)
    if isinstance(value, str) and "," in value:
        return len([part for part in value.split(",") if part.strip()])
    return None


def _leading_int(value: str | None) -> int | None:
    """Slurm counts such as ``2`` or ``2(x3)`` (the same count on three nodes)."""
    match = re.match(r"\s*(\d+)", value or "")
    return int(match.group(1)) if match else None


def started_by_srun() -> bool:
    """Whether Lightning will take this process for one task of an srun launch."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PossibleUserWarning)
        return SLURMEnvironment.detect()


def launch_name() -> str | None:
    """The name every process of one srun or torchrun launch derives alike (None: not one)."""
    env = os.environ
    if started_by_srun() and (_leading_int(env.get("SLURM_NTASKS")) or 1) > 1:
        job = env.get("SLURM_JOB_ID", "0")
        if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
            job = f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
        step = env.get("SLURM_STEP_ID", env.get("SLURM_STEPID", "0"))
        name, restarts = f"slurm{job}.{step}", env.get("SLURM_RESTART_COUNT", "0")
    elif "TORCHELASTIC_RUN_ID" in env and (_leading_int(env.get("WORLD_SIZE")) or 1) > 1:
        run_id = env["TORCHELASTIC_RUN_ID"]
        if run_id == "none":
            # torchrun's default id, the same for every launch: the workers of one node share
            # their agent, its parent. Several nodes need torchrun --rdzv-id (docs/cluster.md).
            run_id = f"{socket.gethostname()}-{os.getppid()}"
        name, restarts = f"torchrun-{run_id[:13]}", env.get("TORCHELASTIC_RESTART_COUNT", "0")
    else:
        return None
    return slug(name + (f"-restart{restarts}" if restarts not in ("", "0") else ""))


def slurm_layout_error(devices: Any, num_nodes: Any) -> str | None:
    """One line on an srun task layout Lightning cannot use with these trainer settings."""
    if not started_by_srun():
        return None
    env = os.environ
    tasks = _leading_int(env.get("SLURM_NTASKS")) or 1
    nodes = _leading_int(env.get("SLURM_NNODES")) or 1
    per_node = _leading_int(env.get("SLURM_NTASKS_PER_NODE"))
    wanted_devices, wanted_nodes = _count(devices), _count(num_nodes) or 1
    if per_node is None and tasks > 1:
        spread = max(tasks // nodes, 1)
        return (
            f"srun started {tasks} tasks with --ntasks (-n) but no --ntasks-per-node, which "
            f"Lightning needs: start one task per device with srun -N {nodes} "
            f"--ntasks-per-node={spread} (and --trainer.devices {spread})"
        )
    if per_node is not None and wanted_devices is not None and per_node != wanted_devices:
        return (
            f"--trainer.devices {wanted_devices}, but srun started {per_node} task(s) per node: "
            f"give --trainer.devices {per_node}, or start srun with "
            f"--ntasks-per-node={wanted_devices} (one task per device)"
        )
    if nodes != wanted_nodes:
        return (
            f"--trainer.num_nodes {wanted_nodes}, but the Slurm job has {nodes} node(s): give "
            f"--trainer.num_nodes {nodes}, or start srun with --nodes={wanted_nodes}"
        )
    return None


def silence_srun_hint(devices: Any, num_nodes: Any) -> None:
    """Drop Lightning's srun hint wherever dfbench already knows how processes start."""
    several = (_count(devices) or 2) > 1 or (_count(num_nodes) or 1) > 1
    if "SLURM_JOB_ID" in os.environ and several and not started_by_srun():
        return
    warnings.filterwarnings("ignore", message=_SRUN_HINT, category=PossibleUserWarning)
