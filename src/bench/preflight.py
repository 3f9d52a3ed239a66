"""Checks made before a grid's first cell starts: every file its cells will read exists.

A paper run is hours of GPU time per cell; a frame table that was never
preprocessed, or a weights file on another disk, should not surface as the
failure of cell 7 the next morning. For every cell, :func:`missing_files`
reads what its stacked configs and overrides say (a plain merge of the YAML
files, enough to find a few values; LightningCLI's full parse happens in the
cell) and lists:

* config files (and the files they read through ``config:``) that do not exist;
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

import yaml

from src.bench.grid import REPO, Cell, GridError
from src.data.datamodule import resolve_table

#: The data module whose ``train``/``val``/``test`` name frame tables in ``cache_dir``
#: (by class name, as a config may give it in full or short).
FRAME_TABLE_MODULE = "DeepfakeDataModule"
#: Where DeepfakeDataModule looks when the config names no cache folder (its default).
DEFAULT_CACHE_DIR = "data/cache"


@dataclass(frozen=True, order=True)
class Missing:
    """A file a cell needs that is not there."""

    kind: str  # "config", "frame table" or "weights"
    path: str

    def __str__(self) -> str:
        return f"{self.kind} {self.path}"


class PreflightError(GridError):
    """Files that cells need are missing; nothing was run."""


def _set_dotted(config: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    node = config
    for name in parents:
        child = node.get(name)
        if not isinstance(child, dict):
            child = node[name] = {}
        node = child
    _merge_into(node, {last: value})


def _merge_into(base: dict[str, Any], update: Mapping[str, Any]) -> None:
    for key, value in update.items():
        if "." in key:
            _set_dotted(base, key, value)
        elif isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge_into(base[key], value)
        elif isinstance(value, Mapping):
            base[key] = {}
            _merge_into(base[key], value)
        else:
            base[key] = value


def read_config(path: Path, missing: list[Missing], seen: tuple[Path, ...] = ()) -> dict:
    """A config file merged over the files it reads through ``config:`` (nested, dotted keys set).

    Files that do not exist are appended to ``missing`` and read as empty.
    """
    if not path.is_file():
        missing.append(Missing("config", _shown(path)))
        return {}
    spec = yaml.safe_load(path.read_text()) or {}
    merged: dict[str, Any] = {}
    included = spec.pop("config", None)
    for name in [included] if isinstance(included, str) else included or []:
        target = (path.parent / name).resolve()
        if target not in seen:
            _merge_into(merged, read_config(target, missing, (*seen, path)))
    _merge_into(merged, spec)
    return merged


def _shown(path: Path) -> str:
    return path.relative_to(REPO).as_posix() if path.is_relative_to(REPO) else str(path)


def cell_config(cell: Cell, missing: list[Missing]) -> dict[str, Any]:
    """What a cell's stacked configs and overrides amount to (a plain YAML merge)."""
    merged: dict[str, Any] = {}
    for config in cell.configs:
        _merge_into(merged, read_config(REPO / config, missing))
    _merge_into(merged, {f"trainer.{key}": value for key, value in cell.trainer.items()})
    _merge_into(merged, cell.overrides)
    return merged


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


def _frame_tables(data: Mapping[str, Any], cache_dir: str | None) -> list[Path]:
    if str(data.get("class_path", "")).split(".")[-1] != FRAME_TABLE_MODULE:
        return []
    args = data.get("init_args") or {}
    folder = cache_dir or args.get("cache_dir") or DEFAULT_CACHE_DIR
    names = [*(args.get("train") or []), *(args.get("val") or []), *(args.get("test") or [])]
    return [resolve_table(str(name), folder) for name in dict.fromkeys(names)]


def missing_files(cell: Cell, cache_dir: str | Path | None = None) -> list[Missing]:
    """The files ``cell`` needs that do not exist, sorted.

    Args:
        cell: a grid cell.
        cache_dir: the frame cache given on the command line (``--cache-dir``),
            which replaces the data config's.
    """
    missing: list[Missing] = []
    config = cell_config(cell, missing)
    folder = str(cache_dir) if cache_dir is not None else None
    for table in _frame_tables(config.get("data") or {}, folder):
        if not (REPO / table).is_file():  # an absolute table path stays as it is
            missing.append(Missing("frame table", _shown(REPO / table)))
    for weights in _weights(config.get("model") or {}):
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


def check_cells(cells: Sequence[Cell], cache_dir: str | Path | None = None) -> None:
    """Raise :class:`PreflightError` listing, in one line, every file the cells miss.

    Each missing file is named once, with the cells that need it.
    """
    needed_by: dict[Missing, list[int]] = {}
    for cell in cells:
        for item in missing_files(cell, cache_dir):
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
