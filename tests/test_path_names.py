"""Every name that becomes a path component is checked in one place (src.files.check_path_name).

Grid names and profile names (``<out>/<grid>/<profile>``), run names
(``runs/<detector>/<data>/<run>``), frame table names
(``<cache>/tables/<name>.parquet``) and grid detector names (cell ids) are
refused when they could lead a write outside their folder.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from src.bench.grid import GridError, load_grid
from src.cli import main
from src.cli.runs import checked_run_name
from src.data.datamodule import resolve_table
from src.errors import DFBenchError
from src.files import check_path_name

BAD = {
    "../../..": "contains a path separator",
    "..": "starts with '.'",
    ".hidden": "starts with '.'",
    "a/b": "contains a path separator",
    "a\\b": "contains a path separator",
    "tab\there": "contains a control character",
    "": "is empty",
    "x" * 256: "is longer than 255 bytes",
}


@pytest.mark.parametrize("name", list(BAD), ids=lambda n: repr(n[:12]))
def test_names_that_leave_their_folder_are_refused_everywhere(name: str, tmp_path: Path) -> None:
    problem = BAD[name]
    with pytest.raises(DFBenchError, match=problem):
        check_path_name(name, "a name")
    with pytest.raises(DFBenchError, match=rf"--run_name .*{problem}"):
        checked_run_name(name)
    if name:  # an empty table name is no table at all
        with pytest.raises(DFBenchError):
            resolve_table(name, tmp_path)
    spec = {
        "name": name,
        "profiles": {"demo": {"data": ["configs/data/synthetic.yaml"]}},
        "detectors": [{"name": "xception", "configs": ["configs/detectors/xception.yaml"]}],
    }
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump(spec))
    with pytest.raises(GridError):
        load_grid(grid, "demo")
    spec["name"], spec["profiles"] = "fine", {name: spec["profiles"]["demo"]}
    grid.write_text(yaml.safe_dump(spec))
    with pytest.raises(GridError):
        load_grid(grid, name)


def test_plain_names_pass_as_given() -> None:
    for name in ("cross_dataset", "exp-1_lr=2e-4", "ffpp_c23", "Ünïcode name", "x" * 255):
        assert check_path_name(name, "a name") == name


def test_a_grid_named_up_the_tree_writes_nothing_outside_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "a" / "b" / "out"
    spec = {
        "name": "../../..",
        "profiles": {"demo": {"data": ["configs/data/synthetic.yaml"]}},
        "detectors": [{"name": "xception", "configs": ["configs/detectors/xception.yaml"]}],
    }
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump(spec))
    before = sorted(tmp_path.rglob("*"))
    assert main(["bench", str(grid), "--out", str(out), "--no-wandb"]) == 2
    assert sorted(tmp_path.rglob("*")) == before
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert (
        line
        == f"dfbench bench: {grid}: name '../../..' contains a path separator; give one plain name"
    )
