"""``dfbench show-masks``: a localising detector's predicted masks beside the true ones."""

from __future__ import annotations

import argparse


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="dfbench show-masks",
        description="Draw a few real and fake test faces per test set of the data config, each "
        "with its true mask (green), the detector's predicted mask (red), the predicted "
        "probability map and the detector's score. Needs a detector that outputs a mask "
        "(ynet).",
    )
    parser.add_argument("--ckpt", required=True, help="the detector's checkpoint")
    parser.add_argument(
        "-c", "--config", action="append", required=True, help="data config (YAML); repeatable"
    )
    parser.add_argument("--out", required=True, help="PNG file to write")
    parser.add_argument("--sets", nargs="+", help="test sets to draw (default: all of the config)")
    parser.add_argument("--per-class", type=int, default=2, help="faces per class and set")
    parser.add_argument("--seed", type=int, default=0, help="which faces are drawn")
    args = parser.parse_args(argv)
    if args.per_class < 1:
        parser.error("--per-class must be >= 1")

    from src.tools.show_masks import write_mask_samples

    path = write_mask_samples(
        args.ckpt, args.config, args.out, args.sets, args.per_class, seed=args.seed
    )
    print(f"mask grid written to {path}")
    return 0
