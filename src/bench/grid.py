"""Grid files: which detectors, data, seeds and flags make a benchmark's cells.

A grid file (``benchmarks/*.yaml``)::

    name: cross_dataset
    table: cross_dataset            # shape of the rendered table (src/bench/tables.py)
    train_set: ffpp_c23
    seeds: [0]
    profiles:                       # data (and extra configs) per profile
      paper: {data: [configs/data/cross_dataset.yaml]}
      demo:  {data: [configs/data/cross_dataset_synthetic.yaml], configs: [configs/profiles/demo.yaml]}
      # optional: variants of the data, each a set of overrides (and a train_set
      # label), crossed with every detector, e.g. FF++ c23 and c40:
      #   variants: [{train_set: ffpp_c23, data.init_args.train: [ffpp_c23], ...}, ...]
    trainer: {}                     # --trainer.* overrides for every cell
    detectors:
      - name: laa_net
        configs: [configs/detectors/laa_net.yaml]
        profiles: {demo: [configs/profiles/laa_net_demo.yaml]}   # replaces the profile's configs
        overrides: {model.init_args.use_efpn: false}             # fixed flags
        sweep: {model.init_args.use_heatmap: [true, false]}      # one cell per combination
    tests:                          # test variants of every cell's checkpoint (default: one, clean;
                                    # a profile may give its own list)
      - {}
      - {data.init_args.test_perturbation: {class_path: src.augment.Perturbation, init_args: {name: blur, level: 3}}}

A cell is (detector entry, sweep combination, seed): it is fitted once (the
checkpoint chosen on the training set's validation split) and tested once
per test variant. Its id is a hash of everything that defines it, so a
changed config makes a new cell and an unchanged one is found again.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]


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
        payload = json.dumps(
            [self.profile, contents, self.overrides, self.tests, self.trainer, self.seed],
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
        args += [f"--{key}={cli_value(value)}" for key, value in self.overrides.items()]
        args += [f"--trainer.{key}={cli_value(value)}" for key, value in self.trainer.items()]
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


class GridError(ValueError):
    """A grid file that cannot be expanded; the message names the file and the problem."""


def load_grid(path: str | Path, profile: str) -> list[Cell]:
    """The cells of a grid file for one profile, in a stable order."""
    path = Path(path)
    if not path.is_file():
        raise GridError(f"grid file not found: {path}")
    spec = yaml.safe_load(path.read_text()) or {}
    for key in ("name", "detectors", "profiles"):
        if key not in spec:
            raise GridError(f"{path}: missing '{key}'")
    if profile not in spec["profiles"]:
        raise GridError(f"{path}: no profile {profile!r}; it has {sorted(spec['profiles'])}")
    chosen = spec["profiles"][profile] or {}
    data_configs = list(chosen.get("data", []))
    profile_configs = list(chosen.get("configs", []))
    tests = tuple(chosen.get("tests") or spec.get("tests") or [{}])
    variants = chosen.get("variants") or [{"train_set": spec.get("train_set", "")}]
    cells: list[Cell] = []
    for entry, variant in itertools.product(spec["detectors"], variants):
        variant = dict(variant)
        train_set = str(variant.pop("train_set", spec.get("train_set", "")))
        if "name" not in entry or "configs" not in entry:
            raise GridError(f"{path}: every detector needs 'name' and 'configs', got {entry}")
        extra = (entry.get("profiles") or {}).get(profile, profile_configs)
        sweep = entry.get("sweep") or {}
        keys = list(sweep)
        for values in itertools.product(*(sweep[k] for k in keys)) if keys else [()]:
            overrides = (
                variant | dict(entry.get("overrides") or {}) | dict(zip(keys, values, strict=True))
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
                        configs=tuple([*data_configs, *entry["configs"], *extra]),
                        overrides=overrides,
                        tests=tests,
                        train_set=train_set,
                        trainer=dict(spec.get("trainer") or {}),
                    )
                )
    missing = sorted({c for cell in cells for c in cell.configs if not (REPO / c).is_file()})
    if missing:
        raise GridError(f"{path}: config files not found: {missing}")
    return cells


def table_kind(path: str | Path) -> str:
    """The table shape a grid asks for (``cross_dataset`` by default)."""
    return str((yaml.safe_load(Path(path).read_text()) or {}).get("table", "cross_dataset"))
