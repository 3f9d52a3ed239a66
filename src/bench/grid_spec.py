"""The grid file's structure: which keys it may hold and what each must be.

:func:`check_grid` runs before a grid is expanded, so that a typo fails at
once, with one line that names the file, the key, the value found and what
is allowed, instead of a confusing error several cells (or hours) later:
``seeds: zero`` would otherwise iterate over characters, ``detectors: xception``
over letters, and a misspelt top-level key would simply be ignored. The format
itself is described in ``docs/grids.md``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from src.errors import ConfigError, UnsafeNameError
from src.files import check_path_name

#: Table shapes a grid's ``table:`` may name (the builders of :mod:`src.bench.report`).
TABLE_KINDS = ("cross_dataset", "in_dataset", "cross_manipulation", "robustness")
TOP_LEVEL_KEYS = (
    "name",
    "table",
    "train_set",
    "seeds",
    "profiles",
    "trainer",
    "detectors",
    "tests",
)
PROFILE_KEYS = ("data", "configs", "variants", "tests", "detectors")
DETECTOR_KEYS = ("name", "configs", "profiles", "overrides", "sweep", "prle_zoo", "prle_maps")
#: ``prle_maps:`` options of a PRLE entry: ``dfbench prle-maps`` flags and the type of each.
PRLE_MAP_OPTIONS: dict[str, type] = {"fusion": str, "map_size": int, "batch_size": int}
#: A detector name: it becomes part of folder names and of ``--set NAME:KEY=VALUE``.
DETECTOR_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
#: A LightningCLI option as a dotted path, e.g. ``model.init_args.use_efpn``. No list
#: indices (``augments.0``): LightningCLI cannot set one item of a list; give the whole value.
OPTION_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


class GridError(ConfigError):
    """A grid file (or an option about it) that cannot be used; one line naming the problem."""


def _kind(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return type(value).__name__


def _fail(path: Path, key: str, value: Any, allowed: str) -> GridError:
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return GridError(f"{path}: {key} is {shown} ({_kind(value)}); it must be {allowed}")


def _text(path: Path, key: str, value: Any, example: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise _fail(path, key, value, f"non-empty text, e.g. {example}")


def _text_list(path: Path, key: str, value: Any, example: str) -> None:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _fail(path, key, value, f"a list of file names, e.g. [{example}]")


def _options(path: Path, key: str, value: Any, example: str) -> None:
    """A mapping of LightningCLI options (dotted keys) to values."""
    if not isinstance(value, Mapping):
        raise _fail(path, key, value, f"a mapping of options to values, e.g. {{{example}}}")
    for option in value:
        if not isinstance(option, str) or not OPTION_KEY.fullmatch(option):
            raise _fail(
                path, f"a key of {key}", option, "a dotted option name, e.g. model.init_args.x"
            )


def _option_list(path: Path, key: str, value: Any, example: str) -> None:
    if not isinstance(value, list):
        raise _fail(path, key, value, f"a list of option mappings, e.g. [{{}}, {{{example}}}]")
    for k, item in enumerate(value):
        _options(path, f"{key}[{k}]", item, example)


def _unknown_keys(path: Path, where: str, spec: Mapping, allowed: tuple[str, ...]) -> None:
    for key in spec:
        if key not in allowed:
            raise GridError(
                f"{path}: unknown key {key!r}{where}; allowed: {', '.join(allowed)} "
                "(see docs/grids.md)"
            )


def _check_profile_detectors(path: Path, profiles: Mapping, detectors: list) -> None:
    """``profiles.<p>.detectors``: names of the grid, each PRLE entry with its zoo."""
    zoos = {entry["name"]: entry.get("prle_zoo") or [] for entry in detectors}
    for name, profile in profiles.items():
        chosen = (profile or {}).get("detectors")
        if chosen is None:
            continue
        key = f"profiles.{name}.detectors"
        _text_list(path, key, chosen, "xception")
        unknown = [d for d in chosen if d not in zoos]
        if unknown:
            raise _fail(path, key, unknown[0], f"a detector of the grid ({', '.join(zoos)})")
        for detector in chosen:
            missing = [z for z in zoos[detector] if z not in chosen]
            if missing:
                raise _fail(
                    path, key, chosen, f"a list that holds {detector}'s PRLE zoo ({missing[0]})"
                )


def _check_profiles(path: Path, profiles: Any) -> None:
    if not isinstance(profiles, Mapping) or not profiles:
        raise _fail(path, "profiles", profiles, "a mapping of profile names, e.g. {demo: {...}}")
    for name, profile in profiles.items():
        key = f"profiles.{name}"
        try:  # the results folder is <out>/<grid name>/<profile>
            check_path_name(name, "profile name")
        except UnsafeNameError as error:
            raise GridError(f"{path}: {error}") from None
        if profile is None:
            continue
        if not isinstance(profile, Mapping):
            raise _fail(path, key, profile, "a mapping with data, configs, variants or tests")
        _unknown_keys(path, f" in {key}", profile, PROFILE_KEYS)
        for files in ("data", "configs"):
            if files in profile:
                _text_list(path, f"{key}.{files}", profile[files], "configs/data/ffpp.yaml")
        if "variants" in profile:
            variants = profile["variants"]
            if not isinstance(variants, list) or not variants:
                raise _fail(path, f"{key}.variants", variants, "a non-empty list of mappings")
            for k, variant in enumerate(variants):
                where = f"{key}.variants[{k}]"
                options = dict(variant) if isinstance(variant, Mapping) else variant
                if isinstance(options, dict) and "train_set" in options:
                    _text(path, f"{where}.train_set", options.pop("train_set"), "ffpp_c23")
                _options(path, where, options, "train_set: ffpp_c40, data.init_args.train: [x]")
        if "tests" in profile:
            _option_list(path, f"{key}.tests", profile["tests"], "data.init_args.test: [cdf2]")


def _check_detector(path: Path, k: int, entry: Any, profiles: Mapping) -> str:
    key = f"detectors[{k}]"
    if not isinstance(entry, Mapping):
        raise _fail(path, key, entry, "a mapping with name and configs")
    _unknown_keys(path, f" in {key}", entry, DETECTOR_KEYS)
    for required in ("name", "configs"):
        if required not in entry:
            raise GridError(f"{path}: {key} has no {required!r}; every detector needs one")
    name = entry["name"]
    if not isinstance(name, str) or not DETECTOR_NAME.fullmatch(name):
        raise _fail(path, f"{key}.name", name, "a name of letters, digits, '_', '.' or '-'")
    key = f"detectors[{k}] ({name})"
    _text_list(path, f"{key}.configs", entry["configs"], "configs/detectors/xception.yaml")
    if entry.get("profiles") is not None and not isinstance(entry["profiles"], Mapping):
        raise _fail(path, f"{key}.profiles", entry["profiles"], "a mapping of profile to configs")
    for profile, files in (entry.get("profiles") or {}).items():
        if profile not in profiles:
            raise _fail(path, f"{key}.profiles", profile, f"one of {', '.join(map(str, profiles))}")
        _text_list(path, f"{key}.profiles.{profile}", files, "configs/profiles/demo.yaml")
    if entry.get("overrides") is not None:
        _options(path, f"{key}.overrides", entry["overrides"], "model.init_args.use_efpn: false")
    sweep = entry.get("sweep")
    if sweep is not None:
        _options(path, f"{key}.sweep", sweep, "model.init_args.use_heatmap: [true, false]")
        for option, values in sweep.items():
            if not isinstance(values, list) or not values:
                raise _fail(
                    path,
                    f"{key}.sweep.{option}",
                    values,
                    "a non-empty list of values, one cell each, e.g. [true, false]",
                )
    return name


def _check_zoos(path: Path, detectors: list[Mapping]) -> None:
    """``prle_zoo`` names plain entries of the same grid (one cell per variant and seed)."""
    by_name = {entry["name"]: entry for entry in detectors}
    for k, entry in enumerate(detectors):
        key = f"detectors[{k}] ({entry['name']})"
        if "prle_maps" in entry and "prle_zoo" not in entry:
            raise GridError(f"{path}: {key} has prle_maps but no prle_zoo to build them from")
        if "prle_zoo" not in entry:
            continue
        zoo = entry["prle_zoo"]
        if (
            not isinstance(zoo, list)
            or not zoo
            or not all(isinstance(name, str) for name in zoo)
            or len(set(zoo)) != len(zoo)
        ):
            raise _fail(
                path, f"{key}.prle_zoo", zoo, "a list of distinct detector names of this grid"
            )
        for name in zoo:
            member = by_name.get(name)
            if member is None or member is entry:
                others = ", ".join(n for n in by_name if n != entry["name"])
                raise _fail(path, f"{key}.prle_zoo", name, f"another detector's name: {others}")
            if "prle_zoo" in member:
                raise _fail(
                    path, f"{key}.prle_zoo", name, "a detector without a prle_zoo of its own"
                )
            if member.get("sweep"):
                raise _fail(
                    path, f"{key}.prle_zoo", name, "a detector without a sweep (one cell per seed)"
                )
        options = entry.get("prle_maps")
        if options is None:
            continue
        if not isinstance(options, Mapping):
            raise _fail(path, f"{key}.prle_maps", options, "a mapping, e.g. {fusion: average}")
        for option, value in options.items():
            kind = PRLE_MAP_OPTIONS.get(option)
            if kind is None:
                raise _fail(
                    path,
                    f"a key of {key}.prle_maps",
                    option,
                    f"one of {', '.join(PRLE_MAP_OPTIONS)}",
                )
            if not isinstance(value, kind) or isinstance(value, bool):
                wanted = "text, e.g. average" if kind is str else "a whole number, e.g. 256"
                raise _fail(path, f"{key}.prle_maps.{option}", value, wanted)


def check_grid(spec: Any, path: str | Path) -> None:
    """Raise :class:`GridError` unless ``spec`` (a parsed grid file) has the documented structure.

    Args:
        spec: the file's YAML content.
        path: the file, as the message should name it.
    """
    path = Path(path)
    if not isinstance(spec, Mapping):
        raise _fail(path, "the file", spec, "a mapping with name, profiles and detectors")
    _unknown_keys(path, "", spec, TOP_LEVEL_KEYS)
    for required in ("name", "profiles", "detectors"):
        if required not in spec:
            raise GridError(f"{path}: missing {required!r} (see docs/grids.md)")
    _text(path, "name", spec["name"], "cross_dataset")
    try:  # the results folder is <out>/<name>/<profile>
        check_path_name(spec["name"], "name")
    except UnsafeNameError as error:
        raise GridError(f"{path}: {error}") from None
    if "table" in spec and spec["table"] not in TABLE_KINDS:
        raise _fail(path, "table", spec["table"], f"one of {', '.join(TABLE_KINDS)}")
    if "train_set" in spec:
        _text(path, "train_set", spec["train_set"], "ffpp_c23")
    if "seeds" in spec:
        seeds = spec["seeds"]
        integers = isinstance(seeds, list) and all(
            isinstance(s, int) and not isinstance(s, bool) for s in seeds
        )
        if not integers or not seeds or len(set(seeds)) != len(seeds):
            raise _fail(path, "seeds", seeds, "a list of distinct integers, e.g. [0, 1, 2]")
    _check_profiles(path, spec["profiles"])
    if spec.get("trainer") is not None:
        _options(path, "trainer", spec["trainer"], "max_epochs: 20")
    if spec.get("tests") is not None:
        _option_list(path, "tests", spec["tests"], "data.init_args.test: [cdf2]")
    detectors = spec["detectors"]
    if not isinstance(detectors, list) or not detectors:
        raise _fail(path, "detectors", detectors, "a non-empty list of {name, configs} mappings")
    names: list[str] = []
    for k, entry in enumerate(detectors):
        name = _check_detector(path, k, entry, spec["profiles"])
        if name in names:
            raise GridError(f"{path}: detector name {name!r} is used twice; names must be unique")
        names.append(name)
    _check_zoos(path, detectors)
    _check_profile_detectors(path, spec["profiles"], detectors)
