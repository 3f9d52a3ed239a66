"""``dfbench cam``: a trained detector's Grad-CAM maps over a few test faces, as one picture."""

from __future__ import annotations

import argparse


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="dfbench cam",
        description="Draw real and fake test faces with the detector's Grad-CAM map laid over "
        "them and its score, one row per test set of the data config.",
    )
    parser.add_argument("--ckpt", required=True, help="the detector's checkpoint")
    parser.add_argument(
        "-c", "--config", action="append", required=True, help="data config (YAML); repeatable"
    )
    parser.add_argument("--out", required=True, help="PNG file to write")
    parser.add_argument("--sets", nargs="+", help="test sets to draw (default: all of the config)")
    parser.add_argument("--per-class", type=int, default=3, help="faces per class and set")
    parser.add_argument("--seed", type=int, default=0, help="which faces are drawn")
    args = parser.parse_args(argv)
    if args.per_class < 1:
        parser.error("--per-class must be >= 1")

    from src.tools.cam import write_cam_grid
    from src.tools.configs import datamodule_from_configs

    datamodule = datamodule_from_configs(args.config)
    path = write_cam_grid(
        args.ckpt, datamodule, args.out, args.sets, args.per_class, seed=args.seed
    )
    print(f"Grad-CAM grid written to {path}")
    return 0
