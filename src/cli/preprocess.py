"""Extract evenly spaced face frames, landmarks and masks of a video table into the frame cache
(dfbench preprocess).

The video table is the CSV written by dfbench index; the frames land in
CACHE_DIR as lossless PNG crops with one frame table, named by --table, that
the data configs list (data.init_args.train / test). Re-running skips videos
that are done and redoes half-written ones.

Many processes or nodes share the work with --shard I/N (shard I of N,
numbered from 0 like Slurm array task ids; each writes its own videos and a
part of the table), then one --merge-shards N, with the same other options,
writes the frame table, equal to a single run's:

  dfbench preprocess --index dfdc.csv --cache-dir /scratch/cache --shard $SLURM_ARRAY_TASK_ID/64
  dfbench preprocess --index dfdc.csv --cache-dir /scratch/cache --merge-shards 64
"""

from __future__ import annotations

import argparse
import os
import shlex
from typing import TYPE_CHECKING

from src.cli.options import VerbParser, existing_file, float_above, int_at_least

if TYPE_CHECKING:
    from src.data.shards import Shard


def build_parser() -> VerbParser:
    from src.data.preprocess import PreprocessConfig

    parser = VerbParser("preprocess", __doc__)
    parser.add_argument(
        "--index",
        required=True,
        type=existing_file,
        help="video table CSV written by dfbench index",
    )
    parser.add_argument("--cache-dir", required=True, help="the frame cache to write into")
    parser.add_argument(
        "--table",
        help="name of the frame table to write (default: the index file's name without .csv)",
    )
    parser.add_argument(
        "--train-frames",
        type=int_at_least(1),
        default=32,
        help="frames per training video (default 32)",
    )
    parser.add_argument(
        "--eval-frames",
        type=int_at_least(1),
        default=32,
        help="frames per validation/test video (default 32)",
    )
    parser.add_argument(
        "--crop-scale",
        type=float_above(0),
        default=PreprocessConfig.crop_scale,
        help="side of the square face crop over the face box's longer side "
        f"(default {PreprocessConfig.crop_scale})",
    )
    parser.add_argument(
        "--all-faces", action="store_true", help="keep every face at least half the largest's size"
    )
    parser.add_argument(
        "--detect-size",
        type=int_at_least(1),
        default=PreprocessConfig.detect_size,
        help="shorter side, in pixels, of the frame the face detector sees "
        f"(default {PreprocessConfig.detect_size})",
    )
    parser.add_argument(
        "--splits", nargs="+", help="only these splits: train, val and/or test (default: all)"
    )
    parser.add_argument(
        "--content-hash",
        action="store_true",
        help="identify source videos by their SHA-256 (slower) instead of size and "
        "modification time",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    sharding = parser.add_mutually_exclusive_group()
    sharding.add_argument(
        "--shard",
        metavar="I/N",
        type=_shard,
        help="preprocess only shard I of N (0 .. N-1; a video's shard is a hash of its key) "
        "and write that shard's part of the table; merge with --merge-shards N",
    )
    sharding.add_argument(
        "--merge-shards",
        metavar="N",
        type=int_at_least(1),
        help="write the frame table from the N finished shards (same other options as "
        "the shards); refuses, naming them, when shards are missing or unfinished",
    )
    return parser


def _shard(text: str) -> Shard:
    from src.data.shards import Shard, ShardError

    try:
        return Shard.parse(text)
    except ShardError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def run(argv: list[str]) -> int:
    from src.data.preprocess import PreprocessConfig, merge_shards, preprocess
    from src.data.tables import load_video_table

    args = build_parser().parse_args(argv)
    videos = load_video_table(args.index)
    if args.splits:
        videos = videos[videos["split"].isin(args.splits)]
    config = PreprocessConfig(
        frames={"train": args.train_frames, "val": args.eval_frames, "test": args.eval_frames},
        crop_scale=args.crop_scale,
        keep_all_faces=args.all_faces,
        detect_size=args.detect_size,
    )
    table = args.table or args.index.stem
    if args.merge_shards:
        result = merge_shards(
            videos,
            args.cache_dir,
            table,
            args.merge_shards,
            config,
            content_hash=args.content_hash,
            command=_repeatable(args, table),
        )
        print(f"merged {args.merge_shards} shards:", end=" ")
    else:
        result = preprocess(
            videos,
            args.cache_dir,
            table,
            config,
            progress=not args.no_progress,
            content_hash=args.content_hash,
            command=_repeatable(args, table),
            shard=args.shard,
        )
    for key, why in result.redone:
        print(f"{key}: redone, its cache was damaged ({why})")
    shard = f"shard {args.shard}: " if args.shard else ""
    print(
        f"{shard}{len(result.frames)} face frames from {result.frames['video_key'].nunique()} "
        f"videos ({result.processed} processed, {result.updated} re-indexed, {result.skipped} "
        f"already done) -> {result.table_path}"
    )
    if not result.failures.empty:
        unreadable = int((result.failures["frame_idx"] < 0).sum())
        print(
            f"{shard}{len(result.failures)} failures ({unreadable} unreadable videos, "
            f"{len(result.failures) - unreadable} frames) listed in {result.failures_path}"
        )
    if args.shard:
        print(
            f"once all {args.shard.count} shards are done, write the table with the same "
            f"command and --merge-shards {args.shard.count} instead of --shard"
        )
    return 0


def sharded_command_lines(argv: list[str], count: int) -> tuple[str, str]:
    """The two shell lines of a sharded run, for a batch script: a shard and the merge.

    The shard line takes its number from ``$SLURM_ARRAY_TASK_ID`` (expanded by
    the shell): run it as an array of ``count`` tasks (``--array=0-<count-1>``),
    and the merge line after the array (``--dependency=afterany:<array job>``:
    when a shard failed, the merge fails too, naming it).

    Args:
        argv: the options of one ``dfbench preprocess`` (a ``--shard`` or
            ``--merge-shards`` among them is replaced); paths become absolute,
            since a batch job may start in another folder, and progress bars
            are turned off for the job logs.
        count: the number of shards.
    """
    from src.data.shards import Shard

    Shard(0, count)  # refuses a count below 1
    args = build_parser().parse_args(argv)
    line = shlex.join([*_repeatable(args, args.table or args.index.stem), "--no-progress"])
    return f'{line} --shard "$SLURM_ARRAY_TASK_ID/{count}"', f"{line} --merge-shards {count}"


def _repeatable(args: argparse.Namespace, table: str) -> list[str]:
    """The command line that makes this table again, from any folder: absolute paths,
    every setting spelled out (the defaults may change)."""
    command = [
        "dfbench",
        "preprocess",
        "--index",
        os.path.abspath(args.index),
        "--cache-dir",
        os.path.abspath(os.path.expanduser(args.cache_dir)),
        "--table",
        table,
        "--train-frames",
        str(args.train_frames),
        "--eval-frames",
        str(args.eval_frames),
        "--crop-scale",
        str(args.crop_scale),
        "--detect-size",
        str(args.detect_size),
    ]
    if args.all_faces:
        command.append("--all-faces")
    if args.splits:
        command += ["--splits", *args.splits]
    if args.content_hash:
        command.append("--content-hash")
    return command
