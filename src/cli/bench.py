"""``dfbench bench``: run a benchmark grid (see ``benchmarks/*.yaml``)."""

from __future__ import annotations

import argparse
from pathlib import Path


def run(argv: list[str]) -> int:
    from src.bench.grid import REPO, Cell, GridError, load_grid, table_kind
    from src.bench.runner import DEFAULT_RESULTS, Runner

    parser = argparse.ArgumentParser(prog="dfbench bench", description=__doc__)
    parser.add_argument("grid", help="grid file, e.g. benchmarks/cross_dataset.yaml")
    parser.add_argument(
        "--profile", default="demo", help="demo (synthetic data, CPU) or paper (real data)"
    )
    parser.add_argument("--cell", type=int, help="run only this cell (e.g. a SLURM array index)")
    parser.add_argument(
        "--list", action="store_true", help="list the cells and their status, then stop"
    )
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="results folder")
    parser.add_argument("--cache-dir", help="frame cache of the real datasets (paper profile)")
    parser.add_argument(
        "--gpus", type=int, default=0, help="GPUs per cell (DDP when more than one)"
    )
    parser.add_argument("--no-wandb", action="store_true", help="CSV logs only, no W&B runs")
    parser.add_argument(
        "--keep-checkpoints",
        action="store_true",
        help="keep every checkpoint of a finished cell (default: the selected one, weights only)",
    )
    args = parser.parse_args(argv)
    try:
        cells = load_grid(args.grid, args.profile)
    except GridError as error:
        parser.error(str(error))
    extra = [f"--data.init_args.cache_dir={args.cache_dir}"] if args.cache_dir else []
    if args.gpus:
        extra += ["-c", str(REPO / "configs/trainer/gpu.yaml"), f"--trainer.devices={args.gpus}"]
        if args.gpus > 1:
            extra += ["--trainer.strategy=ddp"]
    logger_args = None
    if not args.no_wandb:
        from src.bench.wandb_report import cell_logger_args

        def logger_args(cell: Cell, save_dir: Path) -> list[str]:
            return cell_logger_args(
                cell.benchmark, cell.id, cell.detector, [cell.train_set], save_dir
            )

    runner = Runner(cells, args.results, extra, logger_args, args.keep_checkpoints)
    if args.list:
        for cell in cells:
            print(f"{cell.index:3d}  {runner.status(cell)['status']:8s}  {cell.id}")
        return 0
    code = runner.run(args.cell)
    from src.bench.report import report

    report(runner.collect(), runner.root, table_kind(args.grid), wandb=not args.no_wandb)
    return code
