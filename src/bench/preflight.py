"""Checks made before a grid's first cell starts: every file its cells will read exists.

A paper run is hours of GPU time per cell; a frame table that was never
preprocessed, or a weights file on another disk, should not surface as the
failure of cell 7 the next morning. For every cell, :func:`missing_files`
reads its resolved configuration (:mod:`src.configs`, resolved when the grid
was loaded, so config files that do not exist or do not parse have failed
already, naming the file) and lists:

* the frame tables of the data config (``train``, ``val``, ``test`` of a
  :class:`~src.data.DeepfakeDataModule`) that are not in its cache folder;
* weights files named by a ``pretrained:`` option (text rather than
  ``true``/``false``) that do not exist.

Relative paths are read from the repository folder, where every cell runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from src.bench.grid import Cell, GridError
from src.configs import REPO, frame_tables


@dataclass(frozen=True, order=True)
class Missing:
    """A file a cell needs that is not there."""

    kind: str  # "frame table" or "weights"
    path: str

    def __str__(self) -> str:
        return f"{self.kind} {self.path}"


class PreflightError(GridError):
    """Files that cells need are missing; nothing was run."""


def _shown(path: Path) -> str:
    return path.relative_to(REPO).as_posix() if path.is_relative_to(REPO) else str(path)


def _weights(config: Any) -> Iterable[str]:
    """Every text value of a ``pretrained`` option, at any depth."""
    if isinstance(config, Mapping):
        for key, value in config.items():
            if key == "pretrained" and isinstance(value, str) and value.strip():
                yield value
            else:
                yield from _weights(value)
    elif isinstance(config, list):
        for item in config:
            yield from _weights(item)


def missing_files(cell: Cell) -> list[Missing]:
    """The files ``cell`` needs that do not exist, sorted."""
    missing: list[Missing] = []
    for table in frame_tables(cell.config).values():
        if not (REPO / table).is_file():  # an absolute table path stays as it is
            missing.append(Missing("frame table", _shown(REPO / table)))
    for weights in _weights(cell.config.get("model") or {}):
        if not (REPO / weights).is_file():
            missing.append(Missing("weights", _shown(REPO / weights)))
    return sorted(set(missing))


def cell_ranges(indexes: Sequence[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``"0-2, 5"``."""
    runs: list[list[int]] = []
    for index in sorted(set(indexes)):
        if runs and index == runs[-1][1] + 1:
            runs[-1][1] = index
        else:
            runs.append([index, index])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def check_cells(cells: Sequence[Cell]) -> None:
    """Raise :class:`PreflightError` listing, in one line, every file the cells miss.

    Each missing file is named once, with the cells that need it.
    """
    needed_by: dict[Missing, list[int]] = {}
    for cell in cells:
        for item in missing_files(cell):
            needed_by.setdefault(item, []).append(cell.index)
    if not needed_by:
        return
    listed = "; ".join(
        f"{item} (cell{'s' if len(indexes) > 1 else ''} {cell_ranges(indexes)})"
        for item, indexes in sorted(needed_by.items())
    )
    hint = ""
    if any(item.kind == "frame table" for item in needed_by):
        hint += (
            "; frame tables come from `dfbench index` + `dfbench preprocess`, or pass --cache-dir"
        )
    raise PreflightError(
        f"nothing was run: {len(needed_by)} file(s) missing: {listed}{hint} "
        "(--list shows them per cell)"
    )
