"""``dfbench bench``: run a benchmark grid (``benchmarks/*.yaml``; format: docs/grids.md).

Before the first cell starts, every cell's config files, frame tables and
``pretrained:`` weights files are checked, and everything missing is listed at
once; ``--list`` shows the same per cell. ``--set KEY=VALUE`` (every cell) and
``--set DETECTOR:KEY=VALUE`` (one detector of the grid) add options to the
cells, e.g. ``--set xception:model.init_args.pretrained=/weights/xception.pth``.
A PRLE cell (``prle_zoo``) runs after the cells of its zoo, which ``--cell``
adds when they are not done; ``--list`` shows what each PRLE cell needs.

On a Slurm cluster, ``--slurm`` submits the grid as array jobs (the cells,
then the PRLE cells after their zoo, then a job that renders the tables;
``--slurm-opt KEY=VALUE`` for partition, time, GPUs ...; ``--dry-run`` writes
the scripts without submitting), ``--status`` shows each cell's state, and
``--report-only`` renders the tables from the results folder without training
(docs/cluster.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from src.bench.slurm import OPTION_HELP, SlurmError
from src.cli import main


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dfbench bench", description=__doc__)
    parser.add_argument("grid", help="grid file, e.g. benchmarks/cross_dataset.yaml")
    parser.add_argument(
        "--profile", default="demo", help="demo (synthetic data, CPU) or paper (real data)"
    )
    parser.add_argument("--cell", type=int, help="run only this cell (e.g. a SLURM array index)")
    parser.add_argument(
        "--list",
        action="store_true",
        help="list the cells, their status and any missing file, then stop",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="results folder (default: benchmarks/results); the grid writes <out>/<name>/<profile>",
    )
    parser.add_argument("--cache-dir", help="frame cache of the real datasets (paper profile)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="[DETECTOR:]KEY=VALUE",
        help="an option for every cell, or for one grid detector's cells (repeatable; "
        "VALUE is YAML); part of the cells' ids",
    )
    parser.add_argument(
        "--gpus", type=int, default=0, help="GPUs per cell (DDP when more than one)"
    )
    parser.add_argument("--no-wandb", action="store_true", help="CSV logs only, no W&B runs")
    parser.add_argument("--wandb-project", help="W&B project of the runs (default: dfbench)")
    parser.add_argument(
        "--wandb-group", help="W&B group of the runs (default: <grid name>/<profile>)"
    )
    parser.add_argument(
        "--keep-checkpoints",
        action="store_true",
        help="keep every checkpoint of a finished cell (default: the selected one, weights only)",
    )
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of an expected failure"
    )
    cluster = parser.add_argument_group("Slurm (docs/cluster.md)")
    cluster.add_argument(
        "--slurm",
        action="store_true",
        help="submit the grid as Slurm jobs (scripts in <results>/slurm/) instead of running it",
    )
    cluster.add_argument(
        "--slurm-opt",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a Slurm option of the submitted jobs (repeatable): "
        + "; ".join(f"{key}: {what}" for key, what in OPTION_HELP.items()),
    )
    cluster.add_argument(
        "--dry-run", action="store_true", help="with --slurm: write and print the scripts only"
    )
    cluster.add_argument(
        "--report-only",
        action="store_true",
        help="render the tables from the finished cells and name the unfinished ones; train nothing",
    )
    cluster.add_argument(
        "--status",
        action="store_true",
        help="each cell's state, from the results folder and squeue/sacct where present",
    )
    cluster.add_argument(
        "--srun",
        action="store_true",
        help="start each fit and test with srun, as the job's tasks (the --slurm scripts "
        "set it for cells of several GPUs)",
    )
    return parser


def _check_modes(args: argparse.Namespace) -> None:
    """One line for options that do not go together."""
    from src.bench.slurm import SlurmError

    modes = [
        name
        for name, on in (
            ("--slurm", args.slurm),
            ("--report-only", args.report_only),
            ("--status", args.status),
            ("--list", args.list),
        )
        if on
    ]
    if len(modes) > 1:
        raise SlurmError(f"{' and '.join(modes)} do not go together: choose one")
    if modes and args.cell is not None:
        raise SlurmError(f"{modes[0]} is about the whole grid: drop --cell {args.cell}")
    for name, on in (("--dry-run", args.dry_run), ("--slurm-opt", args.slurm_opt)):
        if on and not args.slurm:
            raise SlurmError(f"{name} goes with --slurm")


def _bench_args(args: argparse.Namespace, out: Path) -> list[str]:
    """The ``dfbench bench`` arguments a Slurm job repeats: what makes the cells' identities."""
    repeated = [str(Path(args.grid).resolve()), "--profile", args.profile, "--out", str(out)]
    if args.cache_dir:
        repeated += ["--cache-dir", str(Path(args.cache_dir).resolve())]
    for text in args.set:
        repeated += ["--set", text]
    if args.gpus:
        repeated += ["--gpus", str(args.gpus)]
    for flag, on in (("--no-wandb", args.no_wandb), ("--keep-checkpoints", args.keep_checkpoints)):
        if on:
            repeated.append(flag)
    for flag, value in (
        ("--wandb-project", args.wandb_project),
        ("--wandb-group", args.wandb_group),
    ):
        if value:
            repeated += [flag, value]
    return repeated


def _submit(runner, args: argparse.Namespace, options) -> int:  # noqa: ANN001 (lazy imports)
    from src.bench import slurm

    out = (args.out or runner.root.parents[1]).resolve()
    scripts = slurm.write_scripts(
        runner.cells,
        lambda cell: runner.status(cell)["status"],
        runner.root,
        _bench_args(args, out),
        options,
        args.gpus,
    )
    if not scripts:
        print(f"every cell of {args.grid} ({args.profile}) is done: nothing to submit")
        return 0
    jobs = {s.name: f"<{s.name} job>" for s in scripts}
    for script in scripts:
        print(f"# {script.path}")
        print(f"# submitted with: {' '.join(slurm.sbatch_command(script, jobs))}")
        print(script.text)
    if args.dry_run:
        print(f"dry run: {len(scripts)} script(s) written, nothing submitted")
        return 0
    slurm.submit(scripts, runner.root, print)
    print(f"follow the cells with: dfbench bench {args.grid} --profile {args.profile} --status")
    return 0


def _status(runner, chosen) -> int:  # noqa: ANN001 (lazy imports)
    from src.bench.lock import cell_in_use
    from src.bench.slurm import cell_state, read_record, scheduler_states

    record = read_record(runner.root)
    tasks = scheduler_states(record)
    print(f"cells of {chosen[0].benchmark}, profile {chosen[0].profile} (results: {runner.root})")
    if record:
        listed = ", ".join(f"{name} {job}" for name, job in record["jobs"].items())
        print(f"Slurm jobs of the last --slurm submission: {listed}")
    for cell in chosen:
        state = cell_state(
            runner.status(cell), tasks.get(cell.index), cell_in_use(runner.root, cell.id)
        )
        print(f"{cell.index:4d}  {cell.id}  {state}")
    return 0


def _render(runner, args: argparse.Namespace, group: str | None) -> None:  # noqa: ANN001
    """Collect the finished cells' rows into ``results.csv`` and render the tables."""
    from src.bench.grid import table_kind
    from src.bench.report import report

    report(
        runner.collect(),
        runner.root,
        table_kind(args.grid),
        wandb=not args.no_wandb,
        wandb_project=args.wandb_project,
        wandb_group=group,
    )


def _report_only(runner, args: argparse.Namespace, group: str | None) -> int:  # noqa: ANN001
    _render(runner, args, group)
    unfinished = [
        (cell, runner.status(cell))
        for cell in runner.cells
        if runner.status(cell)["status"] != "done"
    ]
    for cell, status in unfinished:
        error = str(status.get("error", "")).strip().splitlines()
        why = f": {error[0]}" if error else ""
        print(f"cell {cell.index} {cell.id}: {status['status']}{why}")
    if unfinished:
        print(
            f"{len(unfinished)} of {len(runner.cells)} cell(s) did not finish; "
            "their rows are missing from the tables (--status, and their status.json)"
        )
        return 1
    print(f"all {len(runner.cells)} cells finished")
    return 0


def _list(runner, chosen) -> int:  # noqa: ANN001 (lazy imports)
    from src.bench.lock import cell_in_use
    from src.bench.preflight import missing_files
    from src.bench.prle_maps import maps_folder, maps_state

    print(f"cells of {chosen[0].benchmark}, profile {chosen[0].profile} (results: {runner.root})")
    problems = 0
    for cell in chosen:
        status = runner.status(cell)
        state = status["status"]
        if state == "running" and not cell_in_use(runner.root, cell.id):
            state = "stopped"  # its process died; a re-run continues it
        print(f"{cell.index:4d}  {state:11s}  {cell.id}")
        if cell.zoo:
            zoo = ", ".join(f"{z.index} ({runner.status(z)['status']})" for z in cell.zoo)
            folder = maps_folder(runner.root, cell).relative_to(runner.root)
            print(f"{'':19s}needs zoo cells {zoo}")
            print(f"{'':19s}needs PRLE maps {folder} ({maps_state(runner.root, cell)})")
        if status["status"] == "done":
            continue
        last = runner.cell_dir(cell) / "checkpoints" / "last.ckpt"
        if last.is_file() and not (runner.cell_dir(cell) / "fit.json").is_file():
            print(f"{'':19s}its fit resumes from {last.relative_to(runner.root)}")
        for item in missing_files(cell):
            print(f"{'':19s}missing {item}")
            problems += 1
    print(
        f"{problems} missing file(s): bench would stop before the first cell"
        if problems
        else "every file the unfinished cells need is there"
    )
    return 0


def run(argv: list[str]) -> int:
    from src.bench.process import Interrupted, Workers
    from src.bench.slurm import parse_options

    args = _parser().parse_args(argv)
    _check_modes(args)
    options = parse_options(args.slurm_opt)
    if options.gpus is not None:
        if args.gpus and args.gpus != options.gpus:
            raise SlurmError(
                f"--gpus {args.gpus} and --slurm-opt gpus={options.gpus} disagree: give one"
            )
        args.gpus = options.gpus
    trains = not (args.list or args.slurm or args.status or args.report_only)
    workers = None
    if args.gpus <= 1 and trains and not args.srun:
        # Each fit and test starts from a process that imports what they all need once;
        # started now, it does so while this process imports its own modules.
        workers = Workers(main, preload=["src.cli.lightning"])
        workers.start_server()
    from src.bench.grid import (
        Cell,
        load_grid,
        parse_override,
        pick_cell,
        with_dependencies,
    )
    from src.bench.lock import BenchLock
    from src.bench.preflight import check_cells
    from src.bench.runner import DEFAULT_RESULTS, Runner
    from src.configs import REPO

    sets = [parse_override(text) for text in args.set]
    # Cells run in the repository folder: a relative cache is the caller's.
    cache_dir = str(Path(args.cache_dir).resolve()) if args.cache_dir else None
    extra = [f"--data.init_args.cache_dir={cache_dir}"] if cache_dir else []
    if args.gpus:
        extra += ["-c", str(REPO / "configs/trainer/gpu.yaml"), f"--trainer.devices={args.gpus}"]
        if args.gpus > 1:
            extra += ["--trainer.strategy=ddp"]
    cells = load_grid(args.grid, args.profile, sets, extra)
    chosen = [pick_cell(cells, args.cell, args.grid)] if args.cell is not None else cells
    logger_args = None
    group = None
    if not args.no_wandb:
        from src.bench.wandb_report import cell_logger_args, default_group

        group = args.wandb_group or default_group(cells[0].benchmark, cells[0].profile)

        def logger_args(cell: Cell, save_dir: Path) -> list[str]:
            return cell_logger_args(
                cell.benchmark,
                cell.id,
                cell.detector,
                [cell.train_set],
                save_dir,
                project=args.wandb_project,
                group=group,
            )

    runner = Runner(
        cells,
        args.out or DEFAULT_RESULTS,
        logger_args,
        args.keep_checkpoints,
        wandb_group=group,
        map_device="cuda" if args.gpus else "cpu",
    )
    if args.list:
        return _list(runner, chosen)
    if args.status:
        return _status(runner, chosen)
    if args.report_only:
        return _report_only(runner, args, group)
    if args.slurm:
        from src.bench.preflight import PreflightError

        # Before anything is queued: a missing table should not fail cell 7 the next morning.
        try:
            check_cells([c for c in runner.cells if runner.status(c)["status"] != "done"])
        except PreflightError as missing:
            if not args.dry_run:
                raise
            print(f"warning (a submission would stop here): {missing}")
        return _submit(runner, args, options)
    if args.srun:
        # In a Slurm job of several tasks: they are the cell's DDP ranks, one srun step
        # per fit and test; the runner itself is one process.
        runner.launcher = ("srun", "--kill-on-bad-exit=1")
    needed = [c for c in with_dependencies(chosen) if runner.status(c)["status"] != "done"]
    check_cells(needed)
    lock_cell = chosen[0].id if args.cell is not None else None
    # A --cell run of a PRLE cell also trains the zoo cells not done yet: it locks them too.
    also = [c.id for c in needed if lock_cell and c.id != lock_cell]
    runner.workers = workers
    with BenchLock(runner.root, lock_cell, say=runner.progress.say, also=also) as lock:
        runner.lock_fds = lock.fds
        try:
            code = runner.run(args.cell)
        except Interrupted as stop:
            runner.progress.say(f"stopped by {stop.name}; re-run the same command to resume")
            return stop.exit_code
        _render(runner, args, group)
    return code
