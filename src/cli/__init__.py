"""The dfbench command: one table of verbs, each run by its own module.

dfbench fit | validate | test | predict are LightningCLI subcommands (see
src/cli/lightning.py). Every other verb is a module of this package whose
run(argv) -> exit code parses the verb's options and calls library functions
that take plain arguments. Adding a verb is one row of VERBS and one module::

    "index": Verb("index", "write a dataset's video table (CSV) from its official layout"),

A verb's module is imported only when the verb runs, so dfbench --help imports
neither torch nor Lightning and answers at once.

Expected failures (the suite's own error types and OS errors on the user's
paths: see src/errors.py) end with one line on stderr, "dfbench VERB: message",
and exit status 2; --debug anywhere on the command line shows the traceback
instead. Anything else is a bug: its traceback is printed, followed by a line
that says so, and the exit status is 1.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from dataclasses import dataclass

from src.errors import ConfigError, expected_error, one_line

#: Exit status when the reader of our output went away (``dfbench ... | head``):
#: 128 + SIGPIPE, what a shell reports for a Unix tool killed by that signal.
EXIT_BROKEN_PIPE = 141
#: Exit status of an expected failure (a usage error, as argparse uses).
EXIT_USAGE = 2
#: Exit status of an unexpected failure (a bug), as an uncaught exception gives.
EXIT_BUG = 1
#: The flag that shows the traceback of an expected failure; every verb accepts it.
DEBUG_FLAG = "--debug"


@dataclass(frozen=True)
class Verb:
    """One ``dfbench`` verb.

    Attributes:
        module: module of this package whose ``run(argv)`` runs the verb.
        help: one line for ``dfbench --help``.
        lightning: a LightningCLI subcommand: ``run`` gets the verb's name as
            ``argv[0]``, the way LightningCLI expects it.
    """

    module: str
    help: str
    lightning: bool = False


VERBS: dict[str, Verb] = {
    "fit": Verb("lightning", "train a detector (checkpoint chosen on the validation split)", True),
    "validate": Verb("lightning", "evaluate trained weights on the validation split", True),
    "test": Verb(
        "lightning",
        "evaluate trained weights on every test set; print and save frame/video metrics",
        True,
    ),
    "predict": Verb(
        "lightning", "score every frame and video with trained weights; write CSV files", True
    ),
    "bench": Verb("bench", "run a benchmark grid (benchmarks/*.yaml) and render its tables"),
    "detectors": Verb("detectors", "list the registered detectors and their input contracts"),
    "import-laa-net": Verb(
        "import_laa_net", "convert the LAA-Net authors' released weights into a dfbench checkpoint"
    ),
    "import-recce": Verb(
        "import_recce", "convert the RECCE authors' trained weights into a dfbench checkpoint"
    ),
    "export-deepfakebench": Verb(
        "export_deepfakebench", "write a frame table of the cache as a DeepfakeBench JSON index"
    ),
    "index": Verb("index", "write a dataset's video table (CSV) from its official layout"),
    "prle-maps": Verb(
        "prle_maps", "PRLE stage 1: a zoo's fused Grad-CAM maps of every training frame"
    ),
    "cam": Verb("cam", "draw Grad-CAM overlays of a trained detector on a few test faces"),
    "preprocess": Verb(
        "preprocess",
        "extract evenly spaced face frames, landmarks and masks into the frame cache",
    ),
    "show-masks": Verb("show_masks", "draw a detector's predicted and true masks on test faces"),
    "show-augment": Verb(
        "show_augment", "draw real / SBI / BI fakes with their masks for a few training faces"
    ),
    "synth": Verb("synth", "write small synthetic copies of every dataset's on-disk layout"),
}


class UsageError(ConfigError):
    """A command line that cannot run as given; the message names the option and the problem."""


def version() -> str:
    """The installed package's version (``unknown`` when run from a source tree)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed_version

    try:
        return installed_version("dfbench")
    except PackageNotFoundError:
        return "unknown"


def print_help() -> None:
    width = max(map(len, VERBS)) + 2
    print("usage: dfbench COMMAND [options]   (dfbench COMMAND --help for its options)\n")
    print("Lightning commands (stack configs with -c; see configs/):")
    for name, verb in VERBS.items():
        if verb.lightning:
            print(f"  {name:<{width}} {verb.help}")
    print("\ndfbench commands:")
    for name in sorted(name for name, verb in VERBS.items() if not verb.lightning):
        print(f"  {name:<{width}} {VERBS[name].help}")
    print("\noptions:")
    print(f"  {'-h, --help':<{width}} show this help")
    print(f"  {'-V, --version':<{width}} show the version")
    print(f"  {DEBUG_FLAG:<{width}} (with any command) show the traceback of an expected failure")


def _dispatch(argv: list[str]) -> int:
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print_help()
        return 0
    if argv[0] in {"-V", "--version"}:
        print(f"dfbench {version()}")
        return 0
    verb = VERBS.get(argv[0])
    if verb is None:
        print(f"dfbench: unknown command {argv[0]!r}\n", file=sys.stderr)
        print_help()
        return EXIT_USAGE
    module = importlib.import_module(f"{__name__}.{verb.module}")
    return module.run(argv if verb.lightning else argv[1:])


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the exit's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real file descriptor (captured output)
        pass


def main(argv: list[str] | None = None) -> int:
    """Run ``dfbench`` with ``argv`` (default: the command line); returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = DEBUG_FLAG in argv
    argv = [arg for arg in argv if arg != DEBUG_FLAG]
    try:
        try:
            code = _dispatch(argv)
        finally:
            # Inside the try: a closed pipe surfaces here, not as a traceback at exit.
            sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except Exception as error:
        verb = f" {argv[0]}" if argv and argv[0] in VERBS else ""
        if debug:
            raise
        if not expected_error(error):
            traceback.print_exc()
            print(
                f"dfbench{verb}: this is a bug in dfbench, not a problem with your input "
                f"({type(error).__name__}); please report it with the traceback above",
                file=sys.stderr,
            )
            return EXIT_BUG
        print(f"dfbench{verb}: {one_line(error)}", file=sys.stderr)
        return EXIT_USAGE
    return code
