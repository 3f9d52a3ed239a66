"""Draw a few real and fake test faces per test set of the data config, each with its true
mask (green), the detector's predicted mask (red), the predicted probability map and the
detector's score (dfbench show-masks). Needs a detector that outputs a mask (ynet)."""

from __future__ import annotations

from src.cli.options import VerbParser, existing_file, int_at_least, output_file


def build_parser() -> VerbParser:
    parser = VerbParser("show-masks", __doc__)
    parser.add_argument(
        "--ckpt-path",
        required=True,
        type=existing_file,
        help="the detector's checkpoint (written by dfbench fit)",
    )
    parser.add_argument(
        "-c", "--config", action="append", required=True, help="data config (YAML); repeatable"
    )
    parser.add_argument("--out", required=True, type=output_file, help="PNG file to write")
    parser.add_argument("--sets", nargs="+", help="test sets to draw (default: all of the config)")
    parser.add_argument(
        "--per-class", type=int_at_least(1), default=2, help="faces per class and set (default 2)"
    )
    parser.add_argument(
        "--seed", type=int_at_least(0), default=0, help="which faces are drawn (default 0)"
    )
    return parser


def run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from src.tools.show_masks import write_mask_samples

    path = write_mask_samples(
        args.ckpt_path, args.config, args.out, args.sets, args.per_class, seed=args.seed
    )
    print(f"mask grid written to {path}")
    return 0
