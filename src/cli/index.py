"""Index a dataset's raw tree into a video table (CSV) (dfbench index).

Examples:

    dfbench index --dataset ffpp --root /data/FaceForensics++ --out tables/ffpp_c23.csv \\
        --compression c23 --methods Deepfakes Face2Face
    dfbench index --dataset df1 --root /data/DeeperForensics-1.0 --out tables/df1.csv \\
        -o ffpp_root=/data/FaceForensics++
    dfbench index --dataset cdf2 --root /data/Celeb-DF-v2 --out tables/cdf2.csv -o val_fraction=0.1

--compression, --methods, --splits-dir and --no-strict map to the indexer
options of the same names; any other option of a dataset is given as
-o NAME=VALUE (the value is read as JSON when it parses, e.g.
-o val_parts=[49], else as a string). The table is written atomically, and
one line per split summarises it.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from typing import Any

from src.cli.options import VerbParser, output_file


def _option(text: str) -> tuple[str, Any]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        return name.strip(), json.loads(value)
    except json.JSONDecodeError:
        return name.strip(), value


def build_parser() -> VerbParser:
    from src.data.indexers import indexer_options, list_indexers

    epilog = "options of each dataset (-o NAME=VALUE):\n" + "\n".join(
        f"  {name}: {', '.join(indexer_options(name))}" for name in list_indexers()
    )
    parser = VerbParser(
        "index",
        __doc__,
        epilog=epilog + "\n(see each module of src/data/indexers for their meaning)",
    )
    parser.add_argument(
        "--dataset", required=True, choices=list_indexers(), help="which dataset's layout to read"
    )
    parser.add_argument("--root", required=True, help="the dataset's folder as unpacked")
    parser.add_argument("--out", required=True, type=output_file, help="CSV file to write")
    parser.add_argument(
        "--compression", nargs="+", help="FF++ family: raw, c23 and/or c40 (default c23)"
    )
    parser.add_argument(
        "--methods", nargs="+", help="FF++ manipulations (default: the classic four)"
    )
    parser.add_argument("--splits-dir", help="FF++: folder of train/val/test.json")
    parser.add_argument(
        "--no-strict",
        dest="strict",
        action="store_false",
        help="skip (with a warning) listed videos that are missing instead of failing",
    )
    parser.add_argument(
        "-o",
        "--option",
        dest="options",
        action="append",
        type=_option,
        default=[],
        metavar="NAME=VALUE",
        help="any other option of the dataset's indexer",
    )
    return parser


def run(argv: list[str]) -> int:
    """Run dfbench index with ``argv``; a bad tree or option raises (dfbench prints one line)."""
    from src.data.indexers import index_dataset
    from src.data.indexers.command import save_index, split_summary

    args = build_parser().parse_args(argv)
    options: dict[str, Any] = dict(args.options)
    if args.compression:
        options["compression"] = args.compression
    if args.methods:
        options["methods"] = args.methods
    if args.splits_dir:
        options["splits_dir"] = args.splits_dir
    if not args.strict:
        options["strict"] = False
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = index_dataset(args.dataset, args.root, **options)
        finally:
            # What the indexer warned about (skipped videos ...) comes before its error, if any.
            _print_warnings(caught)
    table_path, *skips = save_index(result, args.out)
    for line in split_summary(result.videos):
        print(line)
    print(f"{len(result.videos)} videos written to {table_path}")
    if skips:
        print(
            f"{len(result.skipped)} listed videos skipped (--no-strict), with reasons: {skips[0]}"
        )
    return 0


def _print_warnings(caught: list[warnings.WarningMessage]) -> None:
    for warning in caught:
        print(f"dfbench index: warning: {warning.message}", file=sys.stderr)
