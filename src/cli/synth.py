"""Write small synthetic copies of every dataset's on-disk layout (real mp4 videos of faces) for
tests and demos (dfbench synth); with --prepare, also index and preprocess them."""

from __future__ import annotations

import time
from pathlib import Path

from src.cli.options import VerbParser, int_at_least


def build_parser() -> VerbParser:
    from src.synthetic.writer import ALL, SIZES

    parser = VerbParser("synth", __doc__)
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument(
        "--datasets", nargs="+", choices=ALL, default=list(ALL), help="datasets to write"
    )
    parser.add_argument("--seed", type=int_at_least(0), default=0, help="random seed (default 0)")
    parser.add_argument("--size", choices=SIZES, default="default", help="size preset")
    parser.add_argument(
        "--prepare",
        action="store_true",
        help="also index and preprocess every dataset into the frame cache OUT/cache",
    )
    parser.add_argument(
        "--frames",
        type=int_at_least(1),
        default=None,
        help="with --prepare: frames per video (default: every frame of a training video, "
        "up to 8, and 2 per validation/test video)",
    )
    return parser


def run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.out.exists() and not args.out.is_dir():
        raise NotADirectoryError(f"--out {args.out} is a file; give a folder to write into")
    start = time.perf_counter()
    if args.prepare:
        from src.synthetic.prepare import prepare_synthetic

        results = prepare_synthetic(args.out, args.datasets, args.size, args.seed, args.frames)
        for name, result in results.items():
            print(
                f"{name:6s} {len(result.frames):5d} faces, {len(result.failures)} failures -> {result.table_path}"
            )
        print(f"done in {time.perf_counter() - start:.1f} s")
        return 0
    from src.synthetic.layouts import synthesize

    roots = synthesize(args.out, args.datasets, seed=args.seed, size=args.size)
    for name, root in roots.items():
        print(f"{name:6s} {root}")
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0
