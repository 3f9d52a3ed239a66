"""Convert the RECCE authors' trained weights into a dfbench checkpoint (dfbench import-recce).

The authors' file is their trainer's best_model_STEP.bin / latest_model.bin
(weights under "model") or the state dict alone, as their inference.py takes
it. The written file is a Lightning checkpoint that dfbench test, validate
and predict take with --ckpt_path, stacked on configs/detectors/recce.yaml
(the printed command shows how).
"""

from __future__ import annotations

from src.cli.options import VerbParser, existing_file, output_file
from src.cli.trust import add_weights_only_option


def build_parser() -> VerbParser:
    parser = VerbParser("import-recce", __doc__)
    parser.add_argument(
        "--weights",
        required=True,
        type=existing_file,
        help="the authors' .bin file (their trainer's checkpoint) or state dict",
    )
    parser.add_argument(
        "--out", required=True, type=output_file, help="Lightning checkpoint to write (.ckpt)"
    )
    add_weights_only_option(parser, "the authors' file")
    return parser


def run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from src.detectors.recce_importer import write_checkpoint

    written = write_checkpoint(args.weights, args.out, trusted=not args.weights_only)
    weights = written.weights
    if weights.unused:
        left_out = ", ".join(weights.unused)
        print(f"left out {left_out}: timm's ImageNet classifier, which their forward never uses")
    if weights.classes == 2:
        print("their two-class head became one logit, class 1 - class 0 (sigmoid = softmax[1])")
    print(f"imported {written.tensors} tensors -> {written.path}")
    print(
        "test it with: dfbench test -c configs/data/cross_dataset.yaml -c configs/detectors/recce.yaml "
        f"--ckpt_path {written.path}"
    )
    return 0
