"""The PRLE map step of a grid: one map folder per zoo and training data, built once.

A PRLE cell (a grid entry with ``prle_zoo``) trains on the fused Grad-CAM
maps of its zoo cells' checkpoints. The runner fits the zoo cells first, then
builds the maps with ``dfbench prle-maps`` into
``<results root>/prle_maps/<Cell.maps_key>/`` and trains the PRLE cell with
``--data.init_args.side_data={prle_map: <that folder>/maps}``. Every PRLE cell
with the same zoo, training data and map options finds the same folder, so the
maps are built once and shared.

The build is a step of its own: ``prle-maps`` keeps finished frames, so a
killed build resumes where it stopped, and ``done.json`` is written only once
the training split is mapped; a folder without it is built (finished) again.
Only the training frames are mapped: the DataModule gives side data to the
training set alone (validation and test frames are never augmented).

A partly built folder found at another place (a moved results folder)
resumes too: the checkpoint paths ``prle-maps`` recorded are updated first.
``data.yaml`` in the folder holds the cell's resolved data options that decide
its training frames, with the cache folder of this run. It is rewritten before
each build, so a moved results folder or cache is picked up; neither path is
part of the folder's name.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import yaml

from src.bench.grid import Cell, cli_value, frames_data, side_data_value
from src.files import atomic_write_json, atomic_write_text

#: The splits mapped (the DataModule reads maps for its training set only).
SPLITS = ("train",)
DONE = "done.json"


def maps_folder(root: Path, cell: Cell) -> Path:
    """Where a PRLE cell's maps are built (PRLE cells only)."""
    if cell.maps_key is None:
        raise ValueError(f"cell {cell.id} has no prle_zoo, so no PRLE maps")
    return root / "prle_maps" / cell.maps_key


def maps_state(root: Path, cell: Cell) -> str:
    """``built``, ``partly built`` (a build was stopped: it resumes) or ``to build``."""
    folder = maps_folder(root, cell)
    if (folder / DONE).is_file():
        return "built"
    return "partly built" if (folder / "maps").is_dir() else "to build"


def side_data_arg(root: Path, cell: Cell) -> str:
    """The fit argument that hands the maps to the DataModule (as prle.yaml reads them)."""
    value = side_data_value(maps_folder(root, cell).name, root / "prle_maps")
    return f"--data.init_args.side_data={json.dumps(value)}"


def write_data_config(folder: Path, cell: Cell) -> Path:
    """``data.yaml``: the cell's resolved data options that decide its training frames."""
    path = folder / "data.yaml"
    folder.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(
        path,
        "# Written by dfbench bench before each PRLE map build: the cell's resolved data\n"
        "# options that decide its training frames (this run's cache folder included).\n"
        + yaml.safe_dump({"data": frames_data(cell.config)}, sort_keys=True),
    )


def adopt_moved_folder(folder: Path, checkpoints: list[Path]) -> None:
    """Let ``prle-maps`` finish a partly built folder whose results folder has moved.

    ``prle-maps`` records its zoo by the checkpoint paths it was given and
    refuses a folder made with another zoo. The folder's name already pins
    the zoo cells (by their config hashes), so paths that differ only because
    the results folder moved name the same checkpoints: the record is updated.
    """
    path = folder / "settings.json"
    if not path.is_file():
        return
    settings = json.loads(path.read_text())
    zoo = [str(checkpoint) for checkpoint in checkpoints]
    if settings.get("zoo") != zoo:
        atomic_write_json(path, settings | {"zoo": zoo})


def build_args(
    cell: Cell, checkpoints: list[Path], folder: Path, data_config: Path, split: str, device: str
) -> list[str]:
    """``dfbench prle-maps`` arguments for one split of a PRLE cell's maps."""
    args = ["prle-maps", "--zoo", *map(str, checkpoints), "-c", str(data_config)]
    args += ["--out", str(folder), "--split", split, "--device", device, "--no-progress"]
    for option, value in sorted(cell.map_options.items()):
        args.append(f"--{option.replace('_', '-')}={cli_value(value)}")
    return args


def check_built(folder: Path, split: str) -> int:
    """The number of frames mapped, or a RuntimeError if any frame of ``split`` failed.

    A frame without a map would stop the PRLE fit at that frame, so a build
    with failures is not marked done: the failures table says why.
    """
    failures = pd.read_csv(folder / "failures.csv")
    if len(failures):
        first = failures.iloc[0]
        raise RuntimeError(
            f"PRLE maps: {len(failures)} {split} frame(s) failed (first: {first['crop_path']}: "
            f"{first['reason']}); see {folder / 'failures.csv'}"
        )
    return len(pd.read_parquet(folder / "index.parquet"))


def mark_built(folder: Path, cell: Cell, counts: dict[str, int]) -> None:
    atomic_write_json(
        folder / DONE,
        {
            "zoo": [member.id for member in cell.zoo],
            "data": frames_data(cell.config),
            "options": cell.map_options,
            "frames": counts,
        },
    )
