"""Run Grad-CAM for every detector of a zoo over every training frame of a data config, fuse
the maps (PRLE stage 1) and store one 8-bit map per frame (dfbench prle-maps).

Resumable: finished frames are kept. Train with the maps by adding
side_data {prle_map: OUT/maps} and the PRLE augmentation (configs/augment/prle.yaml).
"""

from __future__ import annotations

from src.cli.options import VerbParser, existing_file, int_at_least
from src.cli.trust import add_weights_only_option


def build_parser() -> VerbParser:
    parser = VerbParser("prle-maps", __doc__)
    parser.add_argument(
        "--zoo",
        nargs="+",
        required=True,
        type=existing_file,
        help="checkpoints of the trained zoo detectors",
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
    parser.add_argument(
        "--map-size",
        type=int_at_least(8),
        default=256,
        help="side of the stored maps in pixels (default 256)",
    )
    parser.add_argument(
        "--batch-size",
        type=int_at_least(1),
        default=32,
        help="frames per Grad-CAM batch (default 32)",
    )
    parser.add_argument("--device", default="cpu", help="where the zoo runs (cpu, cuda, cuda:1)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_weights_only_option(parser, "the zoo's checkpoints")
    return parser


def run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)

    from src.detectors.base import Detector
    from src.tools.configs import datamodule_from_configs
    from src.tools.prle_maps import MapSettings, build_prle_maps

    datamodule = datamodule_from_configs(args.config)
    frames = datamodule.frames(datamodule.train_tables, args.split)
    zoo = {
        str(path): Detector.from_checkpoint(path, trusted=not args.weights_only)
        for path in args.zoo
    }
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
