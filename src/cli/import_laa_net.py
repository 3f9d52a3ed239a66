"""Convert the LAA-Net authors' released weights into a dfbench checkpoint (dfbench import-laa-net).

The written file is a Lightning checkpoint that dfbench test, validate and
predict take with --ckpt_path, stacked on configs/detectors/laa_net.yaml with
authors_padding on (the printed command shows how).
"""

from __future__ import annotations

from src.cli.options import VerbParser, existing_file, output_file
from src.cli.trust import add_weights_only_option


def build_parser() -> VerbParser:
    parser = VerbParser("import-laa-net", __doc__)
    parser.add_argument(
        "--weights",
        required=True,
        type=existing_file,
        help="the authors' released .pth file (EfficientNet-B4 LAA-Net)",
    )
    parser.add_argument(
        "--out", required=True, type=output_file, help="Lightning checkpoint to write (.ckpt)"
    )
    add_weights_only_option(parser, "the authors' file")
    return parser


def run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from src.detectors.laa_net.importer import write_checkpoint

    path, count = write_checkpoint(args.weights, args.out, trusted=not args.weights_only)
    print(f"imported {count} tensors -> {path}")
    print(
        "test it with: dfbench test -c configs/data/cross_dataset.yaml -c configs/detectors/laa_net.yaml "
        f"--model.init_args.authors_padding=true --ckpt_path {path}"
    )
    return 0
