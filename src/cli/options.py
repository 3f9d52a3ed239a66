"""What every argparse verb shares: a parser that fails in one line, typed options with ranges.

A value outside its range fails at parse time with the option, the value and
what is allowed (``argument --eval-frames: expected an integer >= 1, got -3``),
instead of a traceback from deep inside the library later on.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from src.cli import DEBUG_FLAG, UsageError

# reST markup that docstrings use and a terminal shows raw: ``code``, :role:`~a.b.Name`,
# :role:`text <target>`.
_ROLE = re.compile(r":[a-z]+(?::[a-z]+)?:`(~?)([^`<]*?)(?:\s*<[^>]*>)?`")
_LITERAL = re.compile(r"``(.+?)``", re.DOTALL)  # help lines wrap inside literals


def plain_text(text: str) -> str:
    """``text`` without reST markup: ``x`` -> x, :class:`~a.B` -> B, :mod:`a.b` -> a.b."""

    def role(match: re.Match[str]) -> str:
        short, target = match.groups()
        return target.rsplit(".", 1)[-1] if short else target

    return _LITERAL.sub(r"\1", _ROLE.sub(role, text))


class PlainHelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Help as written (examples keep their lines), reST markup removed."""

    def format_help(self) -> str:
        return plain_text(super().format_help())


class VerbParser(argparse.ArgumentParser):
    """The parser of a dfbench verb.

    A parse error raises :class:`~src.cli.UsageError`, which ``dfbench`` prints
    as one line (``dfbench VERB: argument --x: ...``) instead of argparse's
    usage block; ``--help`` and ``--debug`` are listed with the options.
    """

    def __init__(self, verb: str, description: str, **kwargs) -> None:  # noqa: ANN003
        kwargs.setdefault("formatter_class", PlainHelpFormatter)
        # A renamed or misspelled option must fail, not match a longer one by its prefix.
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(prog=f"dfbench {verb}", description=description, **kwargs)
        self.add_argument(
            DEBUG_FLAG,
            action="store_true",
            help="show the traceback of an expected failure (a bad option, a missing file ...)",
        )

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (dfbench {self.prog.split()[-1]} --help lists the options)")


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse ``type`` for integers >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected an integer >= {minimum}, got {text!r}"
            ) from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def float_above(minimum: float) -> Callable[[str], float]:
    """An argparse ``type`` for finite numbers > ``minimum``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a number > {minimum}, got {text!r}"
            ) from None
        if not value > minimum or value == float("inf"):
            raise argparse.ArgumentTypeError(f"expected a finite number > {minimum}, got {text}")
        return value

    parse.__name__ = f"number > {minimum}"
    return parse


def output_file(text: str) -> Path:
    """An argparse ``type`` for a file to write: not an existing folder, not ending in a slash."""
    path = Path(text).expanduser()
    if path.is_dir() or text.endswith(("/", "\\")):
        raise argparse.ArgumentTypeError(f"{text} is a folder; give the path of a file to write")
    return path


def existing_file(text: str) -> Path:
    """An argparse ``type`` for a file to read."""
    path = Path(text).expanduser()
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder, not a file")
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"file not found: {text}")
    return path


def checkpoint_picture_parser(verb: str, description: str, per_class: int) -> VerbParser:
    """The parser of a verb that draws a trained detector's view of a few test faces."""
    parser = VerbParser(verb, description)
    parser.add_argument(
        "--ckpt-path",
        required=True,
        type=existing_file,
        help="the detector's checkpoint (written by dfbench fit)",
    )
    parser.add_argument(
        "-c", "--config", action="append", required=True, help="data config (YAML); repeatable"
    )
    parser.add_argument("--out", required=True, type=output_file, help="PNG file to write")
    parser.add_argument("--sets", nargs="+", help="test sets to draw (default: all of the config)")
    parser.add_argument(
        "--per-class",
        type=int_at_least(1),
        default=per_class,
        help=f"faces per class and test set (default {per_class})",
    )
    parser.add_argument(
        "--seed", type=int_at_least(0), default=0, help="which faces are drawn (default 0)"
    )
    return parser
