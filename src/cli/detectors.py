"""List the registered detectors with their input contracts and dense outputs (dfbench detectors).

Whatever is registered is listed: every module under src/detectors is imported
with the package, so a new detector module shows up here by itself.
"""

from __future__ import annotations

from src.cli.options import VerbParser


def build_parser() -> VerbParser:
    parser = VerbParser("detectors", __doc__)
    parser.add_argument(
        "--params", action="store_true", help="also build each one and count its parameters"
    )
    return parser


def run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from src.detectors import build_detector, list_detectors
    from src.detectors.registry import registry_entry

    for name in list_detectors():
        entry = registry_entry(name)
        model = build_detector(name, pretrained=False)
        contract = model.input_contract
        line = (
            f"{name:<18} {entry.obj.__name__:<20} input {contract.input_size[0]}x{contract.input_size[1]} "
            f"mean {contract.mean} std {contract.std}"
        )
        dense = [
            f"{d.name} ({'scored against the ' + d.target.name if d.scored else 'not scored'})"
            for d in model.declared_dense_outputs()
        ]
        if dense:
            line += f"  dense: {', '.join(dense)}"
        if args.params:
            line += f"  {sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters"
        print(line)
    return 0
