"""Grid files: structure checks, command-line overrides, --cell, and the checks before a run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from src.bench.grid import GridError, Override, load_grid, parse_override, pick_cell
from src.bench.preflight import Missing, PreflightError, cell_ranges, check_cells, missing_files

ROOT = Path(__file__).resolve().parents[1]
BASE = {
    "name": "tiny",
    "train_set": "synthetic",
    "seeds": [0],
    # LAA-Net trains on pseudo-fakes of the frame cache's reals (DeepfakeDataModule).
    "profiles": {"demo": {"data": ["configs/data/cross_dataset_synthetic.yaml"]}},
    "detectors": [
        {"name": "xception", "configs": ["configs/detectors/xception.yaml"]},
        {
            "name": "laa_net",
            "configs": ["configs/detectors/laa_net.yaml"],
            "sweep": {"model.init_args.use_efpn": [True, False]},
        },
    ],
}


#: Configs a cell can run with (a grid's cells are resolved when it is loaded).
RUNNABLE = ["configs/data/cross_dataset_synthetic.yaml", "configs/detectors/xception.yaml"]


def write(tmp_path: Path, spec: object, name: str = "grid.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(spec))
    return path


def with_(change: dict) -> dict:
    return {**BASE, **change}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            with_({"seeds": "zero"}),
            "seeds is 'zero' (text); it must be a list of distinct integers",
        ),
        (with_({"seeds": [0, True]}), "seeds is [0, True] (a list); it must be a list of distinct"),
        (with_({"seeds": [1, 1]}), "seeds is [1, 1] (a list); it must be a list of distinct"),
        (
            with_({"detectors": "xception"}),
            "detectors is 'xception' (text); it must be a non-empty",
        ),
        (with_({"detector": []}), "unknown key 'detector'; allowed: name, table, train_set"),
        (with_({"table": "cross"}), "table is 'cross' (text); it must be one of cross_dataset,"),
        (with_({"name": ""}), "name is '' (text); it must be non-empty text"),
        (with_({"trainer": [1]}), "trainer is [1] (a list); it must be a mapping of options"),
        (with_({"tests": {"a": 1}}), "tests is {'a': 1} (a mapping); it must be a list of option"),
        (
            with_({"detectors": [{"name": "x", "configs": "a.yaml"}]}),
            "detectors[0] (x).configs is 'a.yaml' (text); it must be a list of file names",
        ),
        (
            with_({"detectors": [{"name": "x", "configs": [], "swep": {}}]}),
            "unknown key 'swep' in detectors[0]; allowed: name, configs, profiles",
        ),
        (
            with_({"detectors": [{"name": "x", "configs": [], "sweep": {"model.a": 0.1}}]}),
            "detectors[0] (x).sweep.model.a is 0.1 (a number); it must be a non-empty list",
        ),
        (
            with_({"detectors": [{"name": "x", "configs": [], "sweep": {"model a": [1]}}]}),
            "a key of detectors[0] (x).sweep is 'model a' (text); it must be a dotted option",
        ),
        (
            with_({"detectors": [{"configs": []}]}),
            "detectors[0] has no 'name'; every detector needs one",
        ),
        (
            with_({"detectors": [{"name": "a:b", "configs": []}]}),
            "detectors[0].name is 'a:b' (text); it must be a name of letters",
        ),
        (
            with_({"detectors": [{"name": "x", "configs": []}, {"name": "x", "configs": []}]}),
            "detector name 'x' is used twice",
        ),
        (
            with_({"detectors": [{"name": "x", "configs": [], "profiles": {"paper": []}}]}),
            "detectors[0] (x).profiles is 'paper' (text); it must be one of demo",
        ),
        (
            with_({"profiles": {"demo": {"data": "configs/data/synthetic.yaml"}}}),
            "profiles.demo.data is 'configs/data/synthetic.yaml' (text); it must be a list",
        ),
        (
            with_({"profiles": {"demo": {"variants": [{"train_set": 3}]}}}),
            "profiles.demo.variants[0].train_set is 3 (a number); it must be non-empty text",
        ),
        (
            with_({"profiles": {"demo": {"dat": []}}}),
            "unknown key 'dat' in profiles.demo; allowed: data, configs, variants, tests, detectors",
        ),
        (
            with_({"profiles": {"demo": {"detectors": ["xcepton"]}}}),
            "profiles.demo.detectors is 'xcepton' (text); it must be a detector of the grid",
        ),
        ({k: v for k, v in BASE.items() if k != "profiles"}, "missing 'profiles'"),
        (["a", "list"], "the file is ['a', 'list'] (a list); it must be a mapping"),
    ],
)
def test_malformed_grid_fails_with_one_line(tmp_path: Path, spec: object, message: str) -> None:
    path = write(tmp_path, spec)
    with pytest.raises(GridError) as error:
        load_grid(path, "demo")
    text = str(error.value)
    assert text.startswith(f"{path}: ") and message in text, text
    assert "\n" not in text


def test_grid_that_is_not_yaml(tmp_path: Path) -> None:
    path = tmp_path / "grid.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(GridError, match=r"grid.yaml: not valid YAML \("):
        load_grid(path, "demo")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("trainer.max_epochs=2", Override("trainer.max_epochs", 2)),
        ("model.init_args.use_efpn=false", Override("model.init_args.use_efpn", False)),
        ("data.init_args.test=[cdf2, dfd]", Override("data.init_args.test", ["cdf2", "dfd"])),
        ("model.init_args.drop_rate=", Override("model.init_args.drop_rate", None)),
        (
            "xception:model.init_args.pretrained=/weights/x:1.pth",
            Override("model.init_args.pretrained", "/weights/x:1.pth", "xception"),
        ),
        ("a.b={x: 1}", Override("a.b", {"x": 1})),
        ("a.b=1e-3", Override("a.b", "1e-3")),  # YAML 1.1 text; the cell passes it unchanged
        ("a.b=1.0e-3", Override("a.b", 1.0e-3)),
    ],
)
def test_parse_override(text: str, expected: Override) -> None:
    assert parse_override(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("trainer.max_epochs", "expected KEY=VALUE or DETECTOR:KEY=VALUE"),
        ("=3", "expected KEY=VALUE"),
        ("model init=3", "expected KEY=VALUE"),
        ("a b:model.x=3", "'a b' is not a detector name"),
        ("model.x=[1, 2", "the value is not valid YAML"),
    ],
)
def test_parse_override_errors(text: str, message: str) -> None:
    with pytest.raises(GridError, match=re.escape(message)):
        parse_override(text)


def test_sets_reach_every_cell_or_one_detector(tmp_path: Path) -> None:
    path = write(tmp_path, BASE)
    plain = load_grid(path, "demo")
    sets = [
        parse_override("trainer.max_epochs=2"),
        parse_override("xception:model.init_args.pretrained=/weights/xception.pth"),
        parse_override("xception:trainer.max_epochs=5"),  # the detector's own wins
    ]
    cells = load_grid(path, "demo", sets)
    assert [c.detector for c in cells] == [c.detector for c in plain]
    xception, *laa_net = cells
    assert xception.entry == "xception" and {c.entry for c in laa_net} == {"laa_net"}
    assert xception.overrides == {
        "trainer.max_epochs": 5,
        "model.init_args.pretrained": "/weights/xception.pth",
    }
    assert all(
        c.overrides == {"model.init_args.use_efpn": efpn, "trainer.max_epochs": 2}
        for c, efpn in zip(laa_net, (True, False), strict=True)
    )
    # They are part of the cells' identity, and come last on the command line.
    assert all(a.id != b.id for a, b in zip(plain, cells, strict=True))
    args = xception.fit_args()
    assert args[-3:] == [
        "--trainer.max_epochs=5",
        "--model.init_args.pretrained=/weights/xception.pth",
        "--seed_everything=0",
    ]
    assert load_grid(path, "demo", sets)[0].id == xception.id  # stable


def test_a_profile_runs_its_subset_of_detectors(tmp_path: Path) -> None:
    spec = {
        "name": "tiny",
        "profiles": {
            "demo": {"detectors": ["a", "b", "prle_a"]},
            "all": None,
        },
        "detectors": [
            {"name": "a", "configs": RUNNABLE},
            {"name": "b", "configs": RUNNABLE},
            {"name": "prle_a", "configs": RUNNABLE, "prle_zoo": ["a", "b"]},
            {"name": "prle_b", "configs": RUNNABLE, "prle_zoo": ["a", "b"]},
        ],
    }
    demo = load_grid(write(tmp_path, spec), "demo")
    assert [c.detector for c in demo] == ["a", "b", "prle_a"]
    assert [z.detector for z in demo[2].zoo] == ["a", "b"]
    assert len(load_grid(write(tmp_path, spec), "all")) == 4
    spec["profiles"]["paper"] = {"detectors": ["prle_b", "a"]}  # b is missing
    with pytest.raises(GridError, match=r"must be a list that holds prle_b's PRLE zoo \(b\)"):
        load_grid(write(tmp_path, spec), "paper")


def test_set_errors(tmp_path: Path) -> None:
    path = write(tmp_path, BASE)
    with pytest.raises(GridError, match=r"has no detector 'xcepton'; it has xception, laa_net"):
        load_grid(path, "demo", [parse_override("xcepton:model.init_args.drop_rate=0.1")])
    with pytest.raises(GridError, match="would replace the sweep of detector 'laa_net'"):
        load_grid(path, "demo", [parse_override("model.init_args.use_efpn=true")])
    # Scoped to the other detector, the same key is fine.
    load_grid(path, "demo", [parse_override("xception:model.init_args.drop_rate=0.1")])


def test_cell_out_of_range(tmp_path: Path) -> None:
    path = write(tmp_path, BASE)
    cells = load_grid(path, "demo")
    assert pick_cell(cells, 2, path) is cells[2]
    for index in (3, -1):
        with pytest.raises(GridError) as error:
            pick_cell(cells, index, path)
        assert str(error.value) == (
            f"--cell {index} is out of range: {path} has cells 0 to 2 in profile 'demo' "
            "(see --list)"
        )


def test_cell_ranges() -> None:
    assert cell_ranges([5, 0, 1, 2, 7, 8]) == "0-2, 5, 7-8"
    assert cell_ranges([3]) == "3"


def frame_table_grid(tmp_path: Path) -> Path:
    """Two detectors on a data config that names frame tables in a cache under tmp_path."""
    data = tmp_path / "data.yaml"
    data.write_text(
        yaml.safe_dump(
            {
                "data": {
                    "class_path": "src.data.DeepfakeDataModule",
                    "init_args": {"cache_dir": str(tmp_path / "cache"), "train": ["ffpp"]},
                }
            }
        )
    )
    # A file that reads another through `config:` and sets a dotted key.
    (tmp_path / "test_sets.yaml").write_text(
        "config: data.yaml\ndata.init_args.test: [ffpp, cdf2]\n"
    )
    weights = tmp_path / "weights.pth"
    spec = with_(
        {
            "profiles": {"paper": {"data": [str(tmp_path / "test_sets.yaml")]}},
            "detectors": [
                {
                    "name": "xception",
                    "configs": ["configs/detectors/xception.yaml"],
                    "overrides": {"model.init_args.pretrained": str(weights)},
                },
                {"name": "vgg", "configs": ["configs/detectors/vgg16.yaml"]},
            ],
        }
    )
    return write(tmp_path, spec)


def test_preflight_lists_everything_missing_at_once(tmp_path: Path) -> None:
    grid = frame_table_grid(tmp_path)
    # A config file that does not exist stops the grid before anything resolves, all named.
    spec = yaml.safe_load(grid.read_text())
    spec["detectors"][1]["configs"].append("configs/nope.yaml")
    broken = write(tmp_path, spec, "broken.yaml")
    with pytest.raises(GridError) as missing_config:
        load_grid(broken, "paper")
    assert str(missing_config.value) == (
        f"{broken}: 1 config file(s) missing: configs/nope.yaml (detector vgg)"
    )
    cells = load_grid(grid, "paper")
    cache = tmp_path / "cache" / "tables"
    assert missing_files(cells[0]) == [
        Missing("frame table", str(cache / "cdf2.parquet")),
        Missing("frame table", str(cache / "ffpp.parquet")),
        Missing("weights", str(tmp_path / "weights.pth")),
    ]
    assert missing_files(cells[1]) == [
        Missing("frame table", str(cache / "cdf2.parquet")),
        Missing("frame table", str(cache / "ffpp.parquet")),
    ]
    with pytest.raises(PreflightError) as error:
        check_cells(cells)
    text = str(error.value)
    assert "\n" not in text and text.startswith("nothing was run: 3 file(s) missing: ")
    assert f"frame table {cache / 'cdf2.parquet'} (cells 0-1); " in text
    assert f"weights {tmp_path / 'weights.pth'} (cell 0)" in text
    assert isinstance(error.value, GridError)

    # Present files are not listed; --cache-dir replaces the config's cache.
    cache.mkdir(parents=True)
    for name in ("ffpp", "cdf2"):
        (cache / f"{name}.parquet").touch()
    (tmp_path / "weights.pth").touch()
    assert missing_files(cells[0]) == []
    elsewhere = tmp_path / "other"
    moved = load_grid(grid, "paper", extra_args=[f"--data.init_args.cache_dir={elsewhere}"])
    assert missing_files(moved[0]) == [
        Missing("frame table", str(elsewhere / "tables" / "cdf2.parquet")),
        Missing("frame table", str(elsewhere / "tables" / "ffpp.parquet")),
    ]
    check_cells(cells[:1])  # nothing missing: no error


def test_synthetic_data_needs_no_tables(tmp_path: Path) -> None:
    in_memory = {"demo": {"data": ["configs/data/synthetic.yaml"]}}
    spec = with_({"profiles": in_memory, "detectors": BASE["detectors"][:1]})
    for cell in load_grid(write(tmp_path, spec), "demo"):
        assert missing_files(cell) == []


def test_docs_example_grid_is_valid(tmp_path: Path) -> None:
    """The commented example in docs/grids.md is a grid that expands as the page says."""
    text = (ROOT / "docs" / "grids.md").read_text()
    example = re.search(r"```yaml\n(.*?)```", text, re.S).group(1)
    path = tmp_path / "example.yaml"
    path.write_text(example)
    cells = load_grid(path, "demo")
    stated = re.search(r"expands to (\d+) cells in the demo profile", text)
    assert stated and len(cells) == int(stated.group(1))
    assert load_grid(path, "paper")


def test_bench_list_shows_the_checks_per_cell(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from src.cli.bench import run

    grid = frame_table_grid(tmp_path)
    args = [str(grid), "--profile", "paper", "--out", str(tmp_path / "out"), "--no-wandb"]
    weights = "/nowhere/xception.pth"
    listing = [*args, "--list", "--set", f"xception:model.init_args.pretrained={weights}"]
    assert run(listing) == 0
    lines = capsys.readouterr().out.splitlines()
    assert (
        lines[0] == f"cells of tiny, profile paper (results: {tmp_path / 'out' / 'tiny' / 'paper'})"
    )
    assert re.fullmatch(r"   0  pending      xception-s0-[0-9a-f]{10}", lines[1])
    assert lines[2:5] == [
        f"{'':19s}missing frame table {tmp_path / 'cache' / 'tables' / 'cdf2.parquet'}",
        f"{'':19s}missing frame table {tmp_path / 'cache' / 'tables' / 'ffpp.parquet'}",
        f"{'':19s}missing weights {weights}",  # the --set replaced the grid's weights
    ]
    assert lines[-1] == "5 missing file(s): bench would stop before the first cell"
    # Without --list, nothing runs and everything is named at once.
    with pytest.raises(PreflightError, match=r"^nothing was run: 3 file\(s\) missing: "):
        run(args)
    assert not (tmp_path / "out" / "tiny" / "paper" / "cells").exists()
    with pytest.raises(GridError, match=r"--cell 2 is out of range: .* has cells 0 to 1"):
        run([*args, "--cell", "2"])
    # A cell whose fit was interrupted after an epoch says where it will resume.
    last = tmp_path / "out" / "tiny" / "paper" / "cells" / lines[1].split()[-1] / "checkpoints"
    last.mkdir(parents=True)
    (last / "last.ckpt").touch()
    capsys.readouterr()
    assert run(listing) == 0
    assert capsys.readouterr().out.splitlines()[2] == (
        f"{'':19s}its fit resumes from cells/{lines[1].split()[-1]}/checkpoints/last.ckpt"
    )


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (
            "just words\n",
            "a config file is a YAML mapping of sections (model, data, trainer ...), not str",
        ),
        ("a: [1, 2\n", "not a YAML file (while parsing a flow sequence)"),
    ],
)
def test_a_config_that_is_not_a_yaml_mapping_is_named(
    tmp_path: Path, content: str, problem: str
) -> None:
    """It ended in AttributeError: 'str' object has no attribute 'get'."""
    notes = tmp_path / "notes.txt"
    notes.write_text(content)
    spec = with_({"detectors": [{"name": "x", "configs": [*RUNNABLE, str(notes)]}]})
    grid = write(tmp_path, spec)
    with pytest.raises(GridError) as error:
        load_grid(grid, "demo")
    assert str(error.value).startswith(f"{grid}: detector 'x': {notes}: {problem}")
