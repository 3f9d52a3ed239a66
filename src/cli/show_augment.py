"""Draw real / SBI / BI fakes with their masks for a few training faces (``dfbench show-augment``)."""

from __future__ import annotations

import argparse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dfbench show-augment", description=__doc__)
    parser.add_argument(
        "--dataset", required=True, help="frame table name (or .parquet path) in the cache"
    )
    parser.add_argument(
        "--cache", default="data/cache", help="the frame cache (default data/cache)"
    )
    parser.add_argument("--out", required=True, help="PNG file to write")
    parser.add_argument(
        "--rows", type=int, default=4, help="real training faces to draw, one per row (default 4)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the face sample and the fakes (default 0)"
    )
    return parser


def run(argv: list[str]) -> int:
    from src.tools.show_augment import COLUMNS, write_augment_grid

    args = build_parser().parse_args(argv)
    path, rows = write_augment_grid(args.dataset, args.cache, args.out, args.rows, seed=args.seed)
    print(f"{rows} faces x {len(COLUMNS)} columns written to {path}")
    return 0
