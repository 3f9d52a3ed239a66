"""Draw real and fake test faces with a trained detector's Grad-CAM map laid over them and its
score, one row per test set of the data config (dfbench cam)."""

from __future__ import annotations

from src.cli.options import VerbParser, existing_file, int_at_least, output_file


def build_parser() -> VerbParser:
    parser = VerbParser("cam", __doc__)
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
        "--per-class",
        type=int_at_least(1),
        default=3,
        help="faces per class and test set (default 3)",
    )
    parser.add_argument(
        "--seed", type=int_at_least(0), default=0, help="which faces are drawn (default 0)"
    )
    return parser


def run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from src.tools.cam import write_cam_grid
    from src.tools.configs import datamodule_from_configs

    datamodule = datamodule_from_configs(args.config)
    path = write_cam_grid(
        args.ckpt_path, datamodule, args.out, args.sets, args.per_class, seed=args.seed
    )
    print(f"Grad-CAM grid written to {path}")
    return 0
