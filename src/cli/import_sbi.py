"""Convert the SBI authors' released weights into a dfbench checkpoint (dfbench import-sbi).

Their files (FFraw.tar, FFc23.tar, or a weights/*.tar of their training) hold
the EfficientNet-B4 detector under "model". The written file is a Lightning
checkpoint that dfbench test, validate and predict take with --ckpt_path,
stacked on configs/detectors/sbi.yaml (the printed command shows how).
"""

from __future__ import annotations

from src.cli.options import VerbParser, existing_file, output_file
from src.cli.trust import add_weights_only_option


def build_parser() -> VerbParser:
    parser = VerbParser("import-sbi", __doc__)
    parser.add_argument(
        "--weights",
        required=True,
        type=existing_file,
        help="the authors' released file (FFraw.tar or FFc23.tar)",
    )
    parser.add_argument(
        "--out", required=True, type=output_file, help="Lightning checkpoint to write (.ckpt)"
    )
    add_weights_only_option(parser, "the authors' file")
    return parser


def run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from src.detectors.sbi import write_checkpoint

    path, count = write_checkpoint(args.weights, args.out, trusted=not args.weights_only)
    print(f"imported {count} tensors -> {path}")
    print(
        "test it with: dfbench test -c configs/data/cross_dataset.yaml -c configs/detectors/sbi.yaml "
        f"--ckpt_path {path}"
    )
    return 0
