"""Draw real / SBI / BI fakes with their masks for a few training faces (dfbench show-augment)."""

from __future__ import annotations

from src.cli.options import VerbParser, int_at_least, output_file


def build_parser() -> VerbParser:
    parser = VerbParser("show-augment", __doc__)
    parser.add_argument(
        "--table",
        required=True,
        help="frame table: a name in the cache (as given to dfbench preprocess) or a .parquet path",
    )
    parser.add_argument(
        "--cache-dir", default="data/cache", help="the frame cache (default data/cache)"
    )
    parser.add_argument("--out", required=True, type=output_file, help="PNG file to write")
    parser.add_argument(
        "--rows",
        type=int_at_least(1),
        default=4,
        help="real training faces to draw, one per row (default 4)",
    )
    parser.add_argument(
        "--seed",
        type=int_at_least(0),
        default=0,
        help="seed of the face sample and the fakes (default 0)",
    )
    return parser


def run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from src.tools.show_augment import COLUMNS, write_augment_grid

    path, rows = write_augment_grid(args.table, args.cache_dir, args.out, args.rows, seed=args.seed)
    print(f"{rows} faces x {len(COLUMNS)} columns written to {path}")
    return 0
