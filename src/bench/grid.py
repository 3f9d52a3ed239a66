"""Grid files: which detectors, data, seeds and flags make a benchmark's cells.

The format, with a commented example, is described in ``docs/grids.md``; every
shipped grid is under ``benchmarks/``. In short: a grid names its table shape,
its seeds, per profile the data configs (and optional variants and test
variants), and a list of detectors, each with its configs, fixed
``overrides`` and a ``sweep`` (one cell per combination of values).
:mod:`src.bench.grid_spec` checks the file's structure before it is expanded.

A cell is (detector entry, sweep combination, variant, seed): it is fitted
once (the checkpoint chosen on the training set's validation split) and
tested once per test variant. When the grid is loaded, every cell's fit
configuration is resolved as ``dfbench fit`` resolves it (:mod:`src.configs`)
and hashed (:attr:`Cell.config_hash`); its id is that hash with the test
variants. Comments, key order and file layout change no id; a changed
setting changes the ids of exactly the cells it reaches, so an unchanged
cell is found again and a changed one is a new cell.

A detector entry with ``prle_zoo`` (PRLE, "cells that depend on cells") is
trained on the fused Grad-CAM maps of other entries' cells: its cell holds
those zoo cells (same variant and seed), adds ``configs/augment/prle.yaml``
last, and its configuration names its map folder, :attr:`Cell.maps_key`
(:func:`map_folder_key`: the zoo's config hashes, the training frames and
the map options), which every PRLE cell with the same zoo and training data
shares (the runner builds it, :mod:`src.bench.runner`).

Command-line overrides (``dfbench bench --set KEY=VALUE`` for every cell,
``--set DETECTOR:KEY=VALUE`` for one detector entry of the grid) join the
cell's overrides after the grid's own, so they are part of its configuration:
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
from src.configs import REPO, config_hash, identity, resolve

#: What a PRLE cell stacks last: the removal augmentation that reads the maps.
PRLE_CONFIG = "configs/augment/prle.yaml"
#: Data options that do not change which training frames exist, so not the maps either
#: (the test sets, loading, augmentations and the side data the maps become).
NOT_MAP_DATA = frozenset(
    {
        "test",
        "batch_size",
        "eval_batch_size",
        "num_workers",
        "pin_memory",
        "train_augment",
        "pair_transform",
        "pseudo_fake",
        "test_perturbation",
        "side_data",
    }
)


@dataclass(frozen=True)
class Cell:
    """One training run of a grid and the tests of its checkpoint.

    Its identity is computed once, when the grid is loaded (:func:`load_grid`),
    from the cell's resolved configuration (:mod:`src.configs`): editing a
    config file while a grid runs does not change a cell that exists.
    """

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
    #: PRLE: the cells whose checkpoints make this cell's maps (fitted first).
    zoo: tuple[Cell, ...] = ()
    #: PRLE: ``dfbench prle-maps`` options (``fusion``, ``map_size``, ``batch_size``).
    map_options: dict[str, Any] = field(default_factory=dict)
    #: Arguments of this run (``--cache-dir``, ``--gpus``) that every fit and test gets.
    extra_args: tuple[str, ...] = ()
    #: The fit's resolved configuration (:func:`src.configs.resolve`).
    config: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    #: :func:`src.configs.config_hash` of the fit's configuration: what its run records.
    config_hash: str = ""
    #: PRLE: the map folder's name (see :func:`maps_key`).
    maps_key: str | None = None

    @property
    def flags(self) -> dict[str, Any]:
        """The overrides that distinguish this cell (ablation switches, methods ...)."""
        return {key.split(".")[-1]: value for key, value in sorted(self.overrides.items())}

    @property
    def id(self) -> str:
        """``<detector>-s<seed>-<hash>``: a hash of the fit's configuration and the tests.

        Safe as a folder name; independent of the cell's position in the grid.
        """
        name = re.sub(r"[^A-Za-z0-9_=.-]+", "", self.detector.replace(", ", "-"))[:60]
        payload = json.dumps([self.config_hash, self.tests], sort_keys=True, default=str)
        return f"{name}-s{self.seed}-{hashlib.sha1(payload.encode()).hexdigest()[:10]}"

    def fit_args(self) -> list[str]:
        args = []
        for config in self.configs:
            args += ["-c", str(REPO / config)]
        # The grid's trainer options first: a cell's own overrides (and --set) win.
        args += [f"--trainer.{key}={cli_value(value)}" for key, value in self.trainer.items()]
        args += [f"--{key}={cli_value(value)}" for key, value in self.overrides.items()]
        return [*args, f"--seed_everything={self.seed}", *self.extra_args]


def side_data_value(maps_key: str, folder: Path | str = "prle_maps") -> dict[str, str]:
    """The ``data.init_args.side_data`` that hands a PRLE cell its maps (``<folder>/<key>/maps``)."""
    return {"prle_map": str(Path(folder) / maps_key / "maps")}


def frames_data(config: dict[str, Any]) -> dict[str, Any]:
    """The ``data`` section of a resolved config reduced to what decides the training frames.

    Left out: the test sets, loading, augmentations and side data (:data:`NOT_MAP_DATA`).
    """
    data = config.get("data") or {}
    init_args = data.get("init_args") or {}
    return {
        "class_path": data.get("class_path"),
        "init_args": {k: v for k, v in init_args.items() if k not in NOT_MAP_DATA},
    }


def map_folder_key(config: dict[str, Any], zoo: Sequence[Cell], map_options: dict[str, Any]) -> str:
    """A PRLE map folder's name: a hash of the zoo, the training frames and the map options.

    Two PRLE cells with the same zoo cells (by their config hashes), training
    frames (:func:`frames_data`, tables by content) and options share one
    folder; the results and cache folders' paths are not part of it, so a moved
    results folder keeps its maps.
    """
    defining = [
        [member.config_hash for member in zoo],
        identity({"data": frames_data(config)}),
        map_options,
    ]
    payload = json.dumps(defining, sort_keys=True, default=str)
    return hashlib.sha1(payload.encode()).hexdigest()[:10]


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


def load_grid(
    path: str | Path,
    profile: str,
    sets: Sequence[Override] = (),
    extra_args: Sequence[str] = (),
) -> list[Cell]:
    """The cells of a grid file for one profile, in a stable order, with their identities.

    Args:
        path: the grid file.
        profile: one of its profiles (``demo``, ``paper`` ...).
        sets: command-line overrides (:func:`parse_override`), added to the
            cells' overrides (and so to their configurations).
        extra_args: options every fit and test of this run gets (``--cache-dir``,
            ``--gpus``); they are part of what runs, so of the cells' identities.

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
                        map_options=dict(entry.get("prle_maps") or {}),
                        extra_args=tuple(extra_args),
                    )
                )
    _check_configs_exist(cells, path)
    return _identified(cells, {e["name"]: e.get("prle_zoo") or [] for e in entries}, path)


def _check_configs_exist(cells: Sequence[Cell], grid: Path) -> None:
    """Raise one :class:`GridError` naming every config file the cells stack that is missing."""
    needed_by: dict[str, list[str]] = {}
    for cell in cells:
        for config in cell.configs:
            if not (REPO / config).is_file():
                entries = needed_by.setdefault(config, [])
                if cell.entry not in entries:
                    entries.append(cell.entry)
    if needed_by:
        listed = "; ".join(
            f"{config} (detector{'s' if len(names) > 1 else ''} {', '.join(names)})"
            for config, names in needed_by.items()
        )
        raise GridError(f"{grid}: {len(needed_by)} config file(s) missing: {listed}")


def _resolved(cell: Cell, grid: Path) -> dict[str, Any]:
    try:
        return resolve(cell.fit_args())
    except GridError:
        raise
    except ValueError as error:  # the resolver's one-line error, said of this cell
        raise GridError(f"{grid}: detector {cell.entry!r}: {error}") from None


def _identified(cells: list[Cell], zoos: dict[str, list[str]], grid: Path) -> list[Cell]:
    """Resolve every cell's configuration and hash it; a PRLE cell gets its zoo and map key."""
    plain: dict[int, Cell] = {}
    for cell in cells:
        if not zoos[cell.entry]:
            config = _resolved(cell, grid)
            plain[cell.index] = dataclasses.replace(
                cell, config=config, config_hash=config_hash(config)
            )
    # A zoo member has no sweep (grid_spec): one cell per entry, variant and seed.
    members = {(c.entry, c.variant, c.seed): c for c in plain.values()}
    identified = []
    for cell in cells:
        if not zoos[cell.entry]:
            identified.append(plain[cell.index])
            continue
        zoo = tuple(members[(name, cell.variant, cell.seed)] for name in zoos[cell.entry])
        config = _resolved(cell, grid)
        key = map_folder_key(config, zoo, cell.map_options)
        # What the runner adds (src.bench.prle_maps.side_data_arg): the map folder, by its key.
        config["data"]["init_args"]["side_data"] = side_data_value(key)
        identified.append(
            dataclasses.replace(
                cell, zoo=zoo, config=config, config_hash=config_hash(config), maps_key=key
            )
        )
    return identified


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
