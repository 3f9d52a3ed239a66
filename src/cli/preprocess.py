"""``dfbench preprocess``: a video table (CSV from ``dfbench index``) -> frame cache."""

from __future__ import annotations

import argparse
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    from src.data.preprocess import PreprocessConfig

    parser = argparse.ArgumentParser(prog="dfbench preprocess", description=__doc__)
    parser.add_argument("--index", required=True, help="video table CSV written by `dfbench index`")
    parser.add_argument("--cache", required=True, help="root of the frame cache")
    parser.add_argument("--name", help="frame table name (default: the index file's stem)")
    parser.add_argument("--train-frames", type=int, default=32, help="frames per training video")
    parser.add_argument(
        "--eval-frames", type=int, default=32, help="frames per validation/test video"
    )
    parser.add_argument(
        "--crop-scale",
        type=float,
        default=PreprocessConfig.crop_scale,
        help="side of the square face crop over the face box's longer side "
        f"(default {PreprocessConfig.crop_scale})",
    )
    parser.add_argument(
        "--all-faces", action="store_true", help="keep every face >= half the largest"
    )
    parser.add_argument(
        "--detect-size",
        type=int,
        default=PreprocessConfig.detect_size,
        help="shorter side, in pixels, of the frame the face detector sees "
        f"(default {PreprocessConfig.detect_size})",
    )
    parser.add_argument("--splits", nargs="+", help="only these splits (default: all)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def run(argv: list[str]) -> int:
    import pandas as pd

    from src.data.preprocess import PreprocessConfig, preprocess

    parser = build_parser()
    args = parser.parse_args(argv)
    index = Path(args.index)
    if not index.is_file():
        parser.error(f"video table not found: {index}")
    videos = pd.read_csv(index, keep_default_na=False)
    if args.splits:
        videos = videos[videos["split"].isin(args.splits)]
    config = PreprocessConfig(
        frames={"train": args.train_frames, "val": args.eval_frames, "test": args.eval_frames},
        crop_scale=args.crop_scale,
        keep_all_faces=args.all_faces,
        detect_size=args.detect_size,
    )
    result = preprocess(
        videos, args.cache, args.name or index.stem, config, progress=not args.no_progress
    )
    print(
        f"{len(result.frames)} face frames from {result.frames['video_key'].nunique()} videos "
        f"({result.processed} processed, {result.skipped} already done) -> {result.table_path}"
    )
    if not result.failures.empty:
        unreadable = int((result.failures["frame_idx"] < 0).sum())
        print(
            f"{len(result.failures)} failures ({unreadable} unreadable videos, "
            f"{len(result.failures) - unreadable} frames) listed in {result.failures_path}"
        )
    return 0
