"""--weights_only, the option by which a user marks a checkpoint file as trusted (argparse verbs).

Spelt as the Lightning verbs spell it (``dfbench test ... --weights_only false``),
so one hint fits every verb: a file that holds more than tensors and plain
values is refused (src.checkpoint_files), and loads with --weights_only false.
"""

from __future__ import annotations

import argparse

from src.cli.options import VerbParser


def true_or_false(text: str) -> bool:
    """An argparse ``type`` for ``true`` or ``false`` (in any case)."""
    value = text.strip().lower()
    if value not in {"true", "false"}:
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return value == "true"


def add_weights_only_option(parser: VerbParser, files: str = "the checkpoint") -> None:
    """Add ``--weights_only {true,false}`` (default true) to a verb that loads ``files``."""
    parser.add_argument(
        "--weights_only",
        type=true_or_false,
        default=True,
        metavar="{true,false}",
        help=f"load only tensors and plain values from {files} (default true); false loads "
        "whatever a file holds, which can run code named in it: only for files you trust",
    )
