"""Draw a few real and fake test faces per test set of the data config, each with its true
mask (green), the detector's predicted mask (red), the predicted probability map and the
detector's score (dfbench show-masks). Needs a detector that outputs a mask (ynet)."""

from __future__ import annotations

from src.cli.options import VerbParser, checkpoint_picture_parser
from src.cli.trust import add_weights_only_option


def build_parser() -> VerbParser:
    parser = checkpoint_picture_parser("show-masks", __doc__, per_class=2)
    add_weights_only_option(parser)
    return parser


def run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from src.tools.show_masks import write_mask_samples

    path = write_mask_samples(
        args.ckpt_path,
        args.config,
        args.out,
        args.sets,
        args.per_class,
        seed=args.seed,
        trusted=not args.weights_only,
    )
    print(f"mask grid written to {path}")
    return 0
