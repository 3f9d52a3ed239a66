"""Write a frame table of the cache as a DeepfakeBench JSON index (dfbench export-deepfakebench),
e.g. dfbench export-deepfakebench --cache-dir data/cache --table ffpp_c23 --out ffpp_c23.json

Frame and mask paths in the JSON are relative to the cache folder: give that folder to
DeepfakeBench as its rgb_dir, or to dfbench as --data.init_args.deepfakebench_root to read
the JSON back (same frames, labels and splits). Videos go under DeepfakeBench's names for
their dataset and method (ffpp Deepfakes -> FaceForensics++ / FF-DF); --dataset-name and
--label-key override them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from src.cli.options import VerbParser, output_file


def _label_key(text: str) -> tuple[str, str]:
    method, sep, key = text.partition("=")
    if not sep or not method.strip() or not key.strip():
        raise argparse.ArgumentTypeError(f"expected METHOD=LABEL_KEY, got {text!r}")
    return method.strip(), key.strip()


def build_parser() -> VerbParser:
    parser = VerbParser("export-deepfakebench", __doc__)
    parser.add_argument("--cache-dir", required=True, help="the frame cache holding the table")
    parser.add_argument(
        "--table", required=True, help="name of the frame table (CACHE_DIR/tables/TABLE.parquet)"
    )
    parser.add_argument("--out", required=True, type=output_file, help="JSON file to write")
    parser.add_argument(
        "--dataset-name",
        help="DeepfakeBench dataset name for every video (default: the name of each "
        "video's dataset, e.g. FaceForensics++)",
    )
    parser.add_argument(
        "--label-key",
        dest="label_keys",
        action="append",
        type=_label_key,
        default=[],
        metavar="METHOD=LABEL_KEY",
        help="DeepfakeBench label key of a method's videos (repeatable), e.g. Deepfakes=FF-DF",
    )
    return parser


def _summary(index: dict) -> str:
    """Videos and frames per split of a DeepfakeBench index, as one line."""
    counts: dict[str, list[int]] = {}
    for labels in index.values():
        for splits in labels.values():
            for split, level in splits.items():
                entries = [
                    video
                    for entry in level.values()
                    # A video, or a compression level (c23 ...) holding videos.
                    for video in (
                        [entry] if isinstance(entry.get("frames"), list) else entry.values()
                    )
                ]
                total = counts.setdefault(split, [0, 0])
                total[0] += len(entries)
                total[1] += sum(len(e["frames"]) for e in entries)
    return ", ".join(
        f"{split} {videos} videos / {frames} frames"
        for split, (videos, frames) in sorted(counts.items())
    )


def run(argv: list[str]) -> int:
    """Run dfbench export-deepfakebench; a bad cache, table or output raises (one line)."""
    from src.data.deepfakebench import export_deepfakebench

    args = build_parser().parse_args(argv)
    path = export_deepfakebench(
        args.cache_dir, args.table, args.out, args.dataset_name, dict(args.label_keys) or None
    )
    print(f"{path}: {_summary(json.loads(path.read_text()))}")
    print(f"frame paths are relative to {Path(args.cache_dir).resolve()} (DeepfakeBench's rgb_dir)")
    return 0
