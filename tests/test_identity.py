"""Identities come from what runs: cell ids and config hashes of resolved configurations.

A comment, key order or file layout changes no identity; a changed setting
changes exactly the cells it touches; a bench cell's fit records the cell's
own config hash and the code version with ``-dirty``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from src.bench.grid import GridError, load_grid
from src.cli import main
from src.configs import REPO, code_version, config_hash, identity, resolve

SHARED = """\
model:
  class_path: src.detectors.BackboneClassifier
  init_args:
    backbone: test_efficientnet
    pretrained: false
    input_size: 32
    optimizer:
      class_path: torch.optim.Adam
      init_args: {lr: 2.0e-4, weight_decay: 1.0e-5}
trainer:
  max_epochs: 1
"""
#: The same settings, commented, in another key order, partly as dotted keys.
SHARED_REWRITTEN = """\
# The shared settings: a comment changes nothing.
trainer: {max_epochs: 1}   # one epoch
model:
  init_args:
    optimizer:
      init_args: {weight_decay: 1.0e-5, lr: 0.0002}
      class_path: torch.optim.Adam
    input_size: 32
    pretrained: false
  class_path: src.detectors.BackboneClassifier
model.init_args.backbone: test_efficientnet
"""


def write_grid(tmp_path: Path) -> Path:
    """Two entries: ``shared`` reads shared.yaml, ``own`` is a file of its own."""
    (tmp_path / "shared.yaml").write_text(SHARED)
    (tmp_path / "a.yaml").write_text("config: shared.yaml\n")
    (tmp_path / "own.yaml").write_text(SHARED.replace("lr: 2.0e-4", "lr: 1.0e-3"))
    spec = {
        "name": "ids",
        "seeds": [0, 1],
        "profiles": {"demo": {"data": ["configs/data/synthetic.yaml"]}},
        "detectors": [
            {"name": "shared", "configs": [str(tmp_path / "a.yaml")]},
            {"name": "own", "configs": [str(tmp_path / "own.yaml")]},
        ],
    }
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def ids(grid: Path) -> dict[tuple[str, int], str]:
    return {(cell.entry, cell.seed): cell.id for cell in load_grid(grid, "demo")}


def test_comments_key_order_and_layout_change_no_cell_id(tmp_path: Path) -> None:
    grid = write_grid(tmp_path)
    before = ids(grid)
    (tmp_path / "shared.yaml").write_text(SHARED_REWRITTEN)
    assert ids(grid) == before
    # Inlining the included file is another layout of the same configuration.
    (tmp_path / "a.yaml").write_text(SHARED_REWRITTEN)
    assert ids(grid) == before


def test_a_changed_setting_changes_exactly_the_cells_it_touches(tmp_path: Path) -> None:
    grid = write_grid(tmp_path)
    before = ids(grid)
    (tmp_path / "shared.yaml").write_text(SHARED.replace("lr: 2.0e-4", "lr: 3.0e-4"))
    after = ids(grid)
    changed = {key for key in before if before[key] != after[key]}
    assert changed == {("shared", 0), ("shared", 1)}
    # Neither the grid's order nor a new entry moves the others' ids.
    spec = yaml.safe_load(grid.read_text())
    spec["detectors"] = [
        {
            "name": "extra",
            "configs": [str(tmp_path / "own.yaml")],
            "overrides": {"seed_everything": 7},
        },
        *spec["detectors"][::-1],
    ]
    grid.write_text(yaml.safe_dump(spec))
    assert {k: v for k, v in ids(grid).items() if k[0] != "extra"} == after


def test_a_cell_keeps_its_id_when_a_config_is_edited_while_it_runs(tmp_path: Path) -> None:
    grid = write_grid(tmp_path)
    cell = load_grid(grid, "demo")[0]
    first = cell.id
    (tmp_path / "shared.yaml").write_text(SHARED.replace("max_epochs: 1", "max_epochs: 5"))
    assert cell.id == first and cell.config["trainer"]["max_epochs"] == 1


def test_a_code_default_is_part_of_the_identity() -> None:
    args = [
        "-c",
        str(REPO / "configs/data/synthetic.yaml"),
        "-c",
        str(REPO / "configs/detectors/xception.yaml"),
    ]
    config = resolve(args)
    # Not in any file: BackboneClassifier's own default, resolved.
    assert config["model"]["init_args"]["label_smoothing"] == 0.0
    changed = json.loads(json.dumps(config))
    changed["model"]["init_args"]["label_smoothing"] = 0.1
    assert config_hash(changed) != config_hash(config)


def test_bookkeeping_and_the_cache_folder_are_not_identity(tmp_path: Path) -> None:
    """Where a run writes and where its tables lie do not count; the tables' content does."""
    base = [
        "-c",
        str(REPO / "configs/data/ffpp.yaml"),
        "-c",
        str(REPO / "configs/detectors/xception.yaml"),
    ]
    for folder in ("one", "two"):
        tables = tmp_path / folder / "tables"
        tables.mkdir(parents=True)
        (tables / "ffpp_c23.parquet").write_bytes(b"same frames")
    one = resolve([*base, f"--data.init_args.cache_dir={tmp_path / 'one'}"])
    two = resolve(
        [
            *base,
            f"--data.init_args.cache_dir={tmp_path / 'two'}",
            "--trainer.default_root_dir=/elsewhere",
            "--trainer.enable_progress_bar=false",
        ]
    )
    assert config_hash(one) == config_hash(two)
    assert identity(one)["frame_tables"] == {"ffpp_c23": identity(two)["frame_tables"]["ffpp_c23"]}
    (tmp_path / "two/tables/ffpp_c23.parquet").write_bytes(b"other frames")
    assert config_hash(one) != config_hash(
        resolve([*base, f"--data.init_args.cache_dir={tmp_path / 'two'}"])
    )


def test_a_grid_with_a_bad_option_fails_naming_the_detector(tmp_path: Path) -> None:
    grid = write_grid(tmp_path)
    spec = yaml.safe_load(grid.read_text())
    spec["detectors"][1]["overrides"] = {"model.init_args.drop_rat": 0.1}
    grid.write_text(yaml.safe_dump(spec))
    with pytest.raises(GridError, match=r"detector 'own'.*drop_rat.*did you mean drop_rate"):
        load_grid(grid, "demo")


def test_a_cell_fit_records_the_cell_config_hash_and_code_version(tmp_path: Path) -> None:
    grid = write_grid(tmp_path)
    cell = load_grid(grid, "demo")[0]
    tiny = [
        "--data.init_args.train_videos=4",
        "--data.init_args.val_videos=4",
        "--data.init_args.test_videos=4",
        "--data.init_args.frames_per_video=1",
        "--data.init_args.batch_size=4",
    ]
    # The cell's own arguments, made tiny: its hash is the hash of these resolved.
    expected = config_hash(resolve([*cell.fit_args(), *tiny]))
    # What the runner adds (where it writes, progress) is bookkeeping.
    runner_args = [
        f"--trainer.default_root_dir={tmp_path / 'cell'}",
        f"--checkpoint.dirpath={tmp_path / 'cell/checkpoints'}",
        "--trainer.enable_progress_bar=false",
        '--trainer.callbacks+={"class_path": "src.bench.progress.ProgressFile", '
        f'"init_args": {{"path": "{tmp_path / "progress.json"}"}}}}',
    ]
    assert main(["fit", *cell.fit_args(), *tiny, *runner_args]) == 0
    (hparams,) = (tmp_path / "cell").rglob("fit-*/hparams.yaml")
    record = yaml.safe_load(hparams.read_text())["dfbench"]
    assert record["config_hash"] == expected
    assert record["code_version"] == code_version()
    assert code_version().endswith("-dirty") == bool(
        __import__("subprocess")
        .run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
        )
        .stdout.strip()
    )
