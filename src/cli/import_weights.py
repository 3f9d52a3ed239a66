"""What the import-* verbs share: read an authors' file, write a dfbench checkpoint, say how to test it.

Each verb module (``import_laa_net``, ``import_recce``, ``import_sbi``) keeps
its own docstring (its ``--help``) and names its converter; the converter takes
``(weights, out, trusted=...)`` and returns the written path and the number of
tensors, and optionally a list of notes to print.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from src.cli.options import VerbParser, existing_file, output_file
from src.cli.trust import add_weights_only_option

#: ``(weights, out, trusted=...) -> (path, tensors)`` or ``(path, tensors, notes)``.
Converter = Callable[..., tuple]


@dataclass(frozen=True)
class ImportVerb:
    """One import verb: its name, help, converter (``"module:function"``) and test command.

    Attributes:
        name: the verb, e.g. ``import-laa-net``.
        doc: its help text (the verb module's docstring).
        weights_help: what ``--weights`` takes.
        converter: ``"package.module:function"``, imported when the verb runs.
        test_args: what follows ``dfbench test -c configs/data/cross_dataset.yaml`` to
            evaluate the written checkpoint.
    """

    name: str
    doc: str | None
    weights_help: str
    converter: str
    test_args: str

    def build_parser(self) -> VerbParser:
        parser = VerbParser(self.name, self.doc)
        parser.add_argument("--weights", required=True, type=existing_file, help=self.weights_help)
        parser.add_argument(
            "--out", required=True, type=output_file, help="Lightning checkpoint to write (.ckpt)"
        )
        add_weights_only_option(parser, "the authors' file")
        return parser

    def run(self, argv: list[str]) -> int:
        args = self.build_parser().parse_args(argv)
        module, function = self.converter.split(":")
        convert: Converter = getattr(importlib.import_module(module), function)
        path, tensors, *notes = convert(args.weights, args.out, trusted=not args.weights_only)
        for note in notes[0] if notes else []:
            print(note)
        print(f"imported {tensors} tensors -> {path}")
        print(
            "test it with: dfbench test -c configs/data/cross_dataset.yaml "
            f"{self.test_args} --ckpt_path {path}"
        )
        return 0
