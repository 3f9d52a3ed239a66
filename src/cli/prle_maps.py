"""``dfbench prle-maps``: PRLE stage 1, a zoo's fused Grad-CAM maps of every training frame."""

from __future__ import annotations

import argparse


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="dfbench prle-maps",
        description="Run Grad-CAM for every detector of a zoo over every training frame of a "
        "data config, fuse the maps (PRLE stage 1) and store one 8-bit map per frame. "
        "Resumable: finished frames are kept. Train with the maps by adding "
        "side_data {prle_map: OUT/maps} and the PRLE augmentation (configs/augment/prle.yaml).",
    )
    parser.add_argument(
        "--zoo", nargs="+", required=True, help="checkpoints of the trained zoo detectors"
    )
    parser.add_argument(
        "-c", "--config", action="append", required=True, help="data config (YAML); repeatable"
    )
    parser.add_argument("--out", required=True, help="map folder to write (or finish)")
    parser.add_argument(
        "--split", default="train", help="split of the training tables to map (default train)"
    )
    parser.add_argument(
        "--fusion",
        default="neighbouring",
        help="fusion strategy (paper Table V; default neighbouring)",
    )
    parser.add_argument("--map-size", type=int, default=256, help="side of the stored maps in px")
    parser.add_argument("--batch-size", type=int, default=32, help="frames per Grad-CAM batch")
    parser.add_argument("--device", default="cpu", help="where the zoo runs (cpu, cuda, cuda:1)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.batch_size < 1 or args.map_size < 8:
        parser.error("--batch-size must be >= 1 and --map-size >= 8")

    from src.detectors.base import Detector
    from src.tools.configs import datamodule_from_configs
    from src.tools.prle_maps import MapSettings, build_prle_maps

    datamodule = datamodule_from_configs(args.config)
    frames = datamodule.frames(datamodule.train_tables, args.split)
    zoo = {path: Detector.from_checkpoint(path) for path in args.zoo}
    result = build_prle_maps(
        zoo,
        frames,
        datamodule.cache_dir,
        args.out,
        MapSettings(fusion=args.fusion, map_size=args.map_size),
        batch_size=args.batch_size,
        device=args.device,
        progress=not args.no_progress,
    )
    speed = ", ".join(f"{name}: {s:.1f} s" for name, s in result.seconds_per_member.items())
    print(
        f"{len(result.index)} maps in {result.out_dir} ({result.built} built, {result.skipped} "
        f"kept); {len(result.failures)} failures (failures.csv); Grad-CAM time {speed}"
    )
    return 0
