"""Convert the LAA-Net authors' released weights into a dfbench checkpoint (``dfbench import-laa-net``)."""

from __future__ import annotations

import argparse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dfbench import-laa-net", description=__doc__)
    parser.add_argument("--checkpoint", required=True, help="the authors' released .pth file")
    parser.add_argument("--out", required=True, help="Lightning checkpoint to write (.ckpt)")
    return parser


def run(argv: list[str]) -> int:
    from src.detectors.laa_net.importer import write_checkpoint

    args = build_parser().parse_args(argv)
    path, count = write_checkpoint(args.checkpoint, args.out)
    print(f"imported {count} tensors -> {path}")
    print(
        "test it with: dfbench test -c configs/data/cross_dataset.yaml -c configs/detectors/laa_net.yaml "
        f"--model.init_args.authors_padding=true --ckpt_path {path}"
    )
    return 0
