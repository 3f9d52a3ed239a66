"""``python -m src.cli``: the ``dfbench`` command (the benchmark runner launches cells this way)."""

import sys

from src.cli import main

sys.exit(main())
