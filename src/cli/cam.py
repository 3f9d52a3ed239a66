"""Draw real and fake test faces with a trained detector's Grad-CAM map laid over them and its
score, one row per test set of the data config (dfbench cam)."""

from __future__ import annotations

from src.cli.options import VerbParser, checkpoint_picture_parser
from src.cli.trust import add_weights_only_option


def build_parser() -> VerbParser:
    parser = checkpoint_picture_parser("cam", __doc__, per_class=3)
    add_weights_only_option(parser)
    return parser


def run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from src.tools.cam import write_cam_grid
    from src.tools.configs import datamodule_from_configs

    datamodule = datamodule_from_configs(args.config)
    path = write_cam_grid(
        args.ckpt_path,
        datamodule,
        args.out,
        args.sets,
        args.per_class,
        seed=args.seed,
        trusted=not args.weights_only,
    )
    print(f"Grad-CAM grid written to {path}")
    return 0
