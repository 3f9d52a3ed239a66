"""What starting one fit or test of a benchmark cell costs, by process model.

    .venv/bin/python benchmarks/cell_overhead.py [--children 5] [--models fork worker program]

Every child runs ``dfbench fit -c configs/detectors/xception.yaml -c
configs/data/synthetic.yaml --print_config``: it imports torch, Lightning and the
detectors and resolves a whole fit configuration, then exits, so its wall time is
what a fit or test pays before its first batch. The process models:

* ``fork``: the runner before the worker model (``src/bench/process.py`` at commit
  ``--before``, read with ``git show`` into a temporary module): ``bench`` imports
  ``src.cli.lightning`` itself (its setup), then each child is a fork of ``bench``;
* ``worker``: :class:`src.bench.process.Workers`, each child forked from
  multiprocessing's fork server, which imports ``src.cli.lightning`` when the first
  child starts (so the first child carries that one-off cost);
* ``program``: a new ``python -m src.cli`` per child, as DDP cells start.

Each model runs in a fresh process of this script, so none inherits another's
imports. Printed per model: the setup, the first child, and the median of
``--children`` further children (after one warm-up, ``demo_models.median_ms``), in
seconds, with each median's ratio to the worker's; a cell starts two children (fit
and test). Results also go to ``benchmarks/results/cell_overhead.json``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
#: The last commit whose runner forked ``bench`` for every fit and test.
BEFORE = "9cd4c0c1df73d85b4b9f89e47762d566d9b8f95f"
FIT_CONFIG = [
    "fit",
    "-c",
    "configs/detectors/xception.yaml",
    "-c",
    "configs/data/synthetic.yaml",
    "--print_config",
]
MODELS = ("fork", "worker", "program")


def runner_before(commit: str, folder: Path):  # noqa: ANN201 (a module read from git)
    """``src/bench/process.py`` as it was at ``commit``, imported from a copy in ``folder``."""
    shown = subprocess.run(
        ["git", "show", f"{commit}:src/bench/process.py"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    if shown.returncode != 0:
        sys.exit(f"cell_overhead.py: --before {commit}: {shown.stderr.strip()}")
    path = folder / "process_before.py"
    path.write_text(shown.stdout)
    spec = importlib.util.spec_from_file_location("process_before", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def child_starter(model: str, log: Path, before: str) -> tuple[float, Callable[[], int]]:
    """The one-off setup time of ``model`` and a function that runs one child to its end."""
    from src.bench import process
    from src.cli import main

    env = os.environ | {"PYTHONUNBUFFERED": "1"}
    start = time.perf_counter()
    if model == "fork":
        old = runner_before(before, log.parent)
        importlib.import_module("src.cli.lightning")

        def child() -> int:
            return old.run_child(FIT_CONFIG, log, cwd=REPO, env=env, fork_main=main)

    elif model == "worker":
        workers = process.Workers(main, preload=["src.cli.lightning"])

        def child() -> int:
            return process.run_child(FIT_CONFIG, log, cwd=REPO, env=env, workers=workers)

    else:

        def child() -> int:
            command = [sys.executable, "-m", "src.cli", *FIT_CONFIG]
            return process.run_child(command, log, cwd=REPO, env=env)

    return time.perf_counter() - start, child


def measure(model: str, children: int, before: str) -> dict[str, float]:
    """Setup, first child and median child of ``model``, in seconds (run in a fresh process)."""
    with tempfile.TemporaryDirectory(prefix="dfbench-cells-") as tmp:
        log = Path(tmp) / "child.log"
        setup, child = child_starter(model, log, before)

        def checked_child() -> int:
            code = child()
            if code != 0:
                raise RuntimeError(f"{model} child exited {code}:\n{log.read_text()[-2000:]}")
            return code

        start = time.perf_counter()
        checked_child()
        first = time.perf_counter() - start
        from demo_models import median_ms  # after the setup, which it would shorten (torch)

        milliseconds, _ = median_ms(checked_child, children)
    return {"setup_s": setup, "first_child_s": first, "median_child_s": milliseconds / 1e3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--children", type=int, default=5, help="timed children per model")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--before", default=BEFORE, help="commit of the fork runner")
    parser.add_argument("--one", choices=MODELS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.children, args.before)))
        return
    rows = []
    for model in args.models:
        out = subprocess.run(
            [sys.executable, __file__, "--one", model, "--children", str(args.children)]
            + ["--before", args.before],
            cwd=REPO,
            env=os.environ | {"PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
        )
        if out.returncode != 0:
            sys.exit(f"cell_overhead.py: the {model} model failed:\n{out.stderr[-3000:]}")
        rows.append({"model": model} | json.loads(out.stdout.splitlines()[-1]))
    worker = next((r["median_child_s"] for r in rows if r["model"] == "worker"), None)
    print(f"{'model':<9}{'setup s':>9}{'first child s':>15}{'median child s':>16}{'x worker':>10}")
    for row in rows:
        ratio = row["median_child_s"] / worker if worker else float("nan")
        row["ratio_to_worker"] = ratio
        print(
            f"{row['model']:<9}{row['setup_s']:>9.2f}{row['first_child_s']:>15.2f}"
            f"{row['median_child_s']:>16.2f}{ratio:>10.2f}"
        )
    from src.files import atomic_write_json

    atomic_write_json(RESULTS / "cell_overhead.json", {"children": args.children, "rows": rows})


if __name__ == "__main__":
    main()
