"""Grid files: which detectors, data, seeds and flags make a benchmark's cells.

The format, with a commented example, is described in ``docs/grids.md``; every
shipped grid is under ``benchmarks/``. In short: a grid names its table shape,
its seeds, per profile the data configs (and optional variants and test
variants), and a list of detectors, each with its configs, fixed
``overrides`` and a ``sweep`` (one cell per combination of values).
:mod:`src.bench.grid_spec` checks the file's structure before it is expanded.

A cell is (detector entry, sweep combination, variant, seed): it is fitted
once (the checkpoint chosen on the training set's validation split) and
tested once per test variant. Its id is a hash of everything that defines it,
so a changed config makes a new cell and an unchanged one is found again.

A detector entry with ``prle_zoo`` (PRLE, "cells that depend on cells") is
trained on the fused Grad-CAM maps of other entries' cells: its cell holds
those zoo cells (same variant and seed), adds ``configs/augment/prle.yaml``
last, and its id covers the zoo; :attr:`Cell.maps_key` names the map folder
that every PRLE cell with the same zoo and training data shares (the runner
builds it, :mod:`src.bench.runner`).

Command-line overrides (``dfbench bench --set KEY=VALUE`` for every cell,
``--set DETECTOR:KEY=VALUE`` for one detector entry of the grid) join the
cell's overrides after the grid's own, so they are part of its id and hash:
a cell run with other weights is another cell.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from src.bench.grid_spec import DETECTOR_NAME, OPTION_KEY, GridError, check_grid

REPO = Path(__file__).resolve().parents[2]
#: What a PRLE cell stacks last: the removal augmentation that reads the maps.
PRLE_CONFIG = "configs/augment/prle.yaml"
#: Data options that do not change which training frames exist, so not the maps either
#: (the test sets, loading, augmentations and the side data the maps become).
NOT_MAP_DATA = tuple(
    f"data.init_args.{name}"
    for name in (
        "test",
        "batch_size",
        "num_workers",
        "train_augment",
        "pair_transform",
        "pseudo_fake",
        "side_data",
    )
)


@dataclass(frozen=True)
class Cell:
    """One training run of a grid and the tests of its checkpoint."""

    index: int
    benchmark: str
    profile: str
    detector: str
    seed: int
    configs: tuple[str, ...]
    overrides: dict[str, Any]
    tests: tuple[dict[str, Any], ...]
    train_set: str
    trainer: dict[str, Any] = field(default_factory=dict)
    #: The grid's name of the detector entry (``detector`` adds the sweep values).
    entry: str = ""
    #: Which of the profile's variants (train sets) the cell belongs to.
    variant: int = 0
    #: The profile's data configs (what ``dfbench prle-maps`` reads the frames from).
    data_configs: tuple[str, ...] = ()
    #: PRLE: the cells whose checkpoints make this cell's maps (fitted first).
    zoo: tuple[Cell, ...] = ()
    #: PRLE: ``dfbench prle-maps`` options (``fusion``, ``map_size``, ``batch_size``).
    map_options: dict[str, Any] = field(default_factory=dict)

    @property
    def flags(self) -> dict[str, Any]:
        """The overrides that distinguish this cell (ablation switches, methods ...)."""
        return {key.split(".")[-1]: value for key, value in sorted(self.overrides.items())}

    @property
    def config_hash(self) -> str:
        contents = [
            (
                path.relative_to(REPO).as_posix() if path.is_relative_to(REPO) else str(path),
                path.read_text(),
            )
            for config in self.configs
            for path in config_chain(REPO / config)
        ]
        defining: list[Any] = [
            self.profile,
            contents,
            self.overrides,
            self.tests,
            self.trainer,
            self.seed,
        ]
        if self.zoo:  # only then: the ids of cells without a zoo stay as they were
            defining.append({"maps": self.maps_key})
        payload = json.dumps(defining, sort_keys=True, default=str)
        return hashlib.sha1(payload.encode()).hexdigest()[:10]

    @property
    def map_data_overrides(self) -> dict[str, Any]:
        """The cell's data options that decide its training frames (and so its maps)."""
        return {
            key: value
            for key, value in sorted(self.overrides.items())
            if key.startswith("data.") and not key.startswith(NOT_MAP_DATA)
        }

    @property
    def maps_key(self) -> str | None:
        """The PRLE map folder's name: a hash of the zoo, the training data and the map options.

        Two PRLE cells with the same zoo cells (by their config hashes, which
        cover their configs, data, seed and overrides), the same training data
        and the same options share one folder; the folder's path (and the cache
        directory's) is not part of it, so a moved results folder keeps its maps.
        """
        if not self.zoo:
            return None
        contents = [
            path.read_text() for config in self.data_configs for path in config_chain(REPO / config)
        ]
        payload = json.dumps(
            [
                [member.config_hash for member in self.zoo],
                contents,
                self.map_data_overrides,
                self.map_options,
            ],
            sort_keys=True,
            default=str,
        )
        return hashlib.sha1(payload.encode()).hexdigest()[:10]

    @property
    def id(self) -> str:
        """``<index>-<detector>-s<seed>-<hash>``, safe as a folder name."""
        name = re.sub(r"[^A-Za-z0-9_=.-]+", "", self.detector.replace(", ", "-"))[:60]
        return f"{self.index:03d}-{name}-s{self.seed}-{self.config_hash}"

    def fit_args(self) -> list[str]:
        args = []
        for config in self.configs:
            args += ["-c", str(REPO / config)]
        # The grid's trainer options first: a cell's own overrides (and --set) win.
        args += [f"--trainer.{key}={cli_value(value)}" for key, value in self.trainer.items()]
        args += [f"--{key}={cli_value(value)}" for key, value in self.overrides.items()]
        return [*args, f"--seed_everything={self.seed}"]


def config_chain(path: Path) -> list[Path]:
    """A config file and every file it reads through ``config:`` (the included file first).

    A baseline's file names only its backbone and reads the shared settings
    from ``baseline.yaml``: a change there must change the cell's hash too.
    A file that does not exist stands for itself (the grid reports it).
    """
    chain: list[Path] = []
    while path.is_file() and path not in chain:
        chain.insert(0, path)
        included = (yaml.safe_load(path.read_text()) or {}).get("config")
        if not isinstance(included, str):
            break
        path = (path.parent / included).resolve()
    return chain


def cli_value(value: Any) -> str:
    """A YAML value as LightningCLI reads it on the command line."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


@dataclass(frozen=True)
class Override:
    """One ``--set`` of the command line: an option for every cell, or for one detector's."""

    key: str
    value: Any
    detector: str | None = None

    def __str__(self) -> str:
        scope = f"{self.detector}:" if self.detector else ""
        return f"--set {scope}{self.key}={cli_value(self.value)}"


def parse_override(text: str) -> Override:
    """``KEY=VALUE`` or ``DETECTOR:KEY=VALUE``; the value is read as YAML (``true``, ``[1, 2]``).

    Raises:
        GridError: if the text has no ``=``, or the key or detector name is malformed.
    """
    left, equals, raw = text.partition("=")
    detector, _, key = left.rpartition(":")
    if not equals or not OPTION_KEY.fullmatch(key):
        raise GridError(
            f"--set {text!r}: expected KEY=VALUE or DETECTOR:KEY=VALUE, "
            "e.g. xception:model.init_args.pretrained=/weights/xception.pth"
        )
    if detector and not DETECTOR_NAME.fullmatch(detector):
        raise GridError(f"--set {text!r}: {detector!r} is not a detector name")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as error:
        problem = str(error).splitlines()[0]
        raise GridError(f"--set {text!r}: the value is not valid YAML ({problem})") from None
    return Override(key, value, detector or None)


def _applied(entry: dict[str, Any], sets: Sequence[Override]) -> dict[str, Any]:
    """The ``--set`` options of one detector entry: every cell's first, then its own (they win)."""
    chosen = [o for o in sets if o.detector is None] + [
        o for o in sets if o.detector == entry["name"]
    ]
    options = {o.key: o.value for o in chosen}
    swept = sorted(set(options) & set(entry.get("sweep") or {}))
    if swept:
        raise GridError(
            f"--set {swept[0]} would replace the sweep of detector {entry['name']!r}; "
            "change the sweep in the grid file instead"
        )
    return options


def load_grid(path: str | Path, profile: str, sets: Sequence[Override] = ()) -> list[Cell]:
    """The cells of a grid file for one profile, in a stable order.

    Args:
        path: the grid file.
        profile: one of its profiles (``demo``, ``paper`` ...).
        sets: command-line overrides (:func:`parse_override`), added to the
            cells' overrides (and so to their ids).

    Raises:
        GridError: if the file is missing or malformed, the profile unknown, or
            a ``--set`` names a detector the grid does not have.
    """
    path = Path(path)
    if not path.is_file():
        raise GridError(f"grid file not found: {path}")
    try:
        spec = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise GridError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
    check_grid(spec, path)
    if profile not in spec["profiles"]:
        raise GridError(f"{path}: no profile {profile!r}; it has {sorted(spec['profiles'])}")
    names = [entry["name"] for entry in spec["detectors"]]
    for override in sets:
        if override.detector is not None and override.detector not in names:
            raise GridError(
                f"{override}: {path} has no detector {override.detector!r}; "
                f"it has {', '.join(names)}"
            )
    chosen = spec["profiles"][profile] or {}
    data_configs = list(chosen.get("data", []))
    profile_configs = list(chosen.get("configs", []))
    tests = tuple(chosen.get("tests") or spec.get("tests") or [{}])
    variants = chosen.get("variants") or [{"train_set": spec.get("train_set", "")}]
    # A profile may run a subset of the grid's detectors (the demo's time budget).
    entries = [
        entry
        for entry in spec["detectors"]
        if chosen.get("detectors") is None or entry["name"] in chosen["detectors"]
    ]
    cells: list[Cell] = []
    for entry, (variant_index, variant) in itertools.product(entries, enumerate(variants)):
        variant = dict(variant)
        train_set = str(variant.pop("train_set", spec.get("train_set", "")))
        extra = (entry.get("profiles") or {}).get(profile, profile_configs)
        sweep = entry.get("sweep") or {}
        keys = list(sweep)
        from_command_line = _applied(entry, sets)
        for values in itertools.product(*(sweep[k] for k in keys)) if keys else [()]:
            overrides = (
                variant
                | dict(entry.get("overrides") or {})
                | dict(zip(keys, values, strict=True))
                | from_command_line
            )
            suffix = "".join(
                f"_{k.split('.')[-1]}={cli_value(v)}" for k, v in zip(keys, values, strict=True)
            )
            for seed in spec.get("seeds", [0]):
                cells.append(
                    Cell(
                        index=len(cells),
                        benchmark=str(spec["name"]),
                        profile=profile,
                        detector=f"{entry['name']}{suffix}",
                        seed=int(seed),
                        configs=tuple(
                            [*data_configs, *entry["configs"], *extra]
                            + ([PRLE_CONFIG] if entry.get("prle_zoo") else [])
                        ),
                        overrides=overrides,
                        tests=tests,
                        train_set=train_set,
                        trainer=dict(spec.get("trainer") or {}),
                        entry=entry["name"],
                        variant=variant_index,
                        data_configs=tuple(data_configs),
                        map_options=dict(entry.get("prle_maps") or {}),
                    )
                )
    return _with_zoos(cells, {e["name"]: e.get("prle_zoo") or [] for e in entries})


def _with_zoos(cells: list[Cell], zoos: dict[str, list[str]]) -> list[Cell]:
    """Give each PRLE cell its zoo: the named entries' cells of the same variant and seed."""
    plain = {(cell.entry, cell.variant, cell.seed): cell for cell in cells if not zoos[cell.entry]}
    return [
        dataclasses.replace(
            cell,
            zoo=tuple(plain[(name, cell.variant, cell.seed)] for name in zoos[cell.entry]),
        )
        if zoos[cell.entry]
        else cell
        for cell in cells
    ]


def with_dependencies(chosen: Sequence[Cell]) -> list[Cell]:
    """``chosen`` with every PRLE cell's zoo cells added before it (once each)."""
    ordered: dict[str, Cell] = {}
    for cell in chosen:
        for needed in (*cell.zoo, cell):
            ordered.setdefault(needed.id, needed)
    return list(ordered.values())


def pick_cell(cells: Sequence[Cell], index: int, grid: str | Path) -> Cell:
    """Cell ``index`` of a grid (``--cell``), or a :class:`GridError` naming the valid range."""
    if not 0 <= index < len(cells):
        profile = cells[0].profile if cells else "?"
        raise GridError(
            f"--cell {index} is out of range: {grid} has cells 0 to {len(cells) - 1} "
            f"in profile {profile!r} (see --list)"
        )
    return cells[index]


def table_kind(path: str | Path) -> str:
    """The table shape a grid asks for (``cross_dataset`` by default)."""
    return str((yaml.safe_load(Path(path).read_text()) or {}).get("table", "cross_dataset"))
