"""Every documented command composition parses, and its configs land where they should.

The compositions are the ``dfbench fit|validate|test|predict`` commands written in
README.md and in the configs' comments, and the cells of every grid the Makefile
and ``benchmarks/`` run. Each is parsed in-process with ``--print_config``; the
printed configuration is checked against values written out by hand below (the
shared baseline settings and each baseline's backbone, each data config's cache,
tables and loading), against the literal values of any other config file (later
files win), and against the command's own ``--key=value`` overrides.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from src.bench.grid import cli_value, load_grid
from src.cli import main

ROOT = Path(__file__).resolve().parents[1]
LIGHTNING_VERBS = ("fit", "validate", "test", "predict")

BASELINE = {
    "model.class_path": "src.detectors.BackboneClassifier",
    "model.init_args.pretrained": True,
    "model.init_args.drop_rate": 0.2,
    "model.init_args.optimizer.class_path": "torch.optim.Adam",
    "model.init_args.optimizer.init_args.lr": 2.0e-4,
    "model.init_args.optimizer.init_args.weight_decay": 1.0e-5,
    "trainer.max_epochs": 20,
}
BACKBONES = {
    "baseline": "legacy_xception",
    "xception": "legacy_xception",
    "efficientnet_b4": "tf_efficientnet_b4",
    "resnet50": "resnet50",
    "vgg16": "vgg16",
}
# (train tables, test tables) of each real data config; a synthetic copy's tables
# have the same names except FF++ c23, whose copy is "ffpp".
TABLES = {
    "cdf2": (["cdf2"], ["cdf2"]),
    "df1": (["df1"], ["df1"]),
    "dfd": ([], ["dfd"]),
    "dfdc": (["dfdc"], ["dfdc"]),
    "dfdcp": (["dfdcp"], ["dfdcp"]),
    "dfw": (["dfw"], ["dfw"]),
    "ffpp": (["ffpp_c23"], ["ffpp_c23"]),
    "ffpp_c40": (["ffpp_c40"], ["ffpp_c40"]),
    "cross_dataset": (["ffpp_c23"], ["ffpp_c23", "cdf2", "dfd", "dfdc", "dfw"]),
}


def data_expectations(
    name: str, cache: str, batch_size: int, workers: int, frames: int = 8
) -> dict[str, Any]:
    train, test = TABLES[name]
    if cache != "data/cache":
        train, test = ([t.replace("ffpp_c23", "ffpp") for t in tables] for tables in (train, test))
    return {
        "data.class_path": "src.data.DeepfakeDataModule",
        "data.init_args.cache_dir": cache,
        "data.init_args.train": train,
        "data.init_args.test": test,
        "data.init_args.train_frames_per_video": frames,
        "data.init_args.batch_size": batch_size,
        "data.init_args.num_workers": workers,
    }


DEMO_TRAINING = ("ffpp", "cross_dataset")
EXPECTED: dict[str, dict[str, Any]] = {
    **{
        f"configs/detectors/{name}.yaml": BASELINE | {"model.init_args.backbone": backbone}
        for name, backbone in BACKBONES.items()
    },
    **{
        f"configs/data/{name}.yaml": data_expectations(name, "data/cache", 32, 4) for name in TABLES
    },
    **{
        f"configs/data/{name}_synthetic.yaml": data_expectations(
            name, "data/synthetic/cache", 16, 0
        )
        for name in TABLES
        if name not in ("ffpp_c40", *DEMO_TRAINING)
    },
    # The synthetic FF++ the demos train on: 3-frame videos, every frame every epoch.
    **{
        f"configs/data/{name}_synthetic.yaml": data_expectations(
            name, "data/synthetic/cache", 32, 0, frames=3
        )
        for name in DEMO_TRAINING
    },
    "configs/data/synthetic.yaml": {"data.class_path": "src.synthetic.SyntheticFaceDataModule"},
    "configs/data/folder.yaml": {"data.class_path": "src.data.folder.FolderDataModule"},
    "configs/profiles/demo.yaml": {
        "model.init_args.pretrained": False,
        "model.init_args.input_size": 64,
        "trainer.accelerator": "cpu",
        "trainer.max_epochs": 2,
        "data.init_args.batch_size": 8,
        "data.init_args.eval_batch_size": 64,
        "model.init_args.optimizer.init_args.lr": 1.0e-3,
        "model.init_args.lr_scheduler.class_path": "src.detectors.training.WarmupDecay",
    },
    "configs/trainer/gpu.yaml": {"trainer.accelerator": "gpu", "trainer.precision": "16-mixed"},
}


def literal_values(path: Path) -> dict[str, Any]:
    """The scalar (and scalar-list) values a config file sets, by dotted key.

    Follows ``config:`` (the included file first, then the file's own keys).
    Lists of mappings are skipped: the printed configuration fills them with
    defaults.
    """
    spec = yaml.safe_load(path.read_text()) or {}
    values = literal_values(path.parent / spec.pop("config")) if "config" in spec else {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix}.{key}" if prefix else key, item)
        elif not (isinstance(value, list) and any(isinstance(v, dict) for v in value)):
            values[prefix] = value

    walk("", spec)
    return values


def is_placeholder(token: str) -> bool:
    return "..." in token or re.search(r"/[A-Z]\.yaml$", token) is not None


def documented_commands(path: Path) -> list[list[str]]:
    """``dfbench VERB ...`` commands in a text file (continued lines joined, comments cut)."""
    text = path.read_text().replace("\\\n", " ")
    commands = []
    for match in re.finditer(rf"dfbench ({'|'.join(LIGHTNING_VERBS)}) ([^`#\n]*)", text):
        argv = shlex.split(match.group(0))[1:]
        if not any(is_placeholder(token) for token in argv):
            commands.append(argv)
    return commands


def grid_commands() -> list[tuple[list[str], int]]:
    """``fit`` commands that give every grid override value at least once.

    The cells of one config stack differ only in overrides (flags, methods,
    perturbations ...), so the k-th command of a stack takes the k-th distinct
    value of every override key (cycling through shorter lists). Returned with
    k, so that the first command of each stack runs in the fast suite and the
    rest with the slow tests.
    """
    makefile_grids = set(re.findall(r"benchmarks/\w+\.yaml", (ROOT / "Makefile").read_text()))
    grids = sorted({*(ROOT / g for g in makefile_grids), *ROOT.glob("benchmarks/*.yaml")})
    stacks: dict[tuple[str, ...], dict[str, list[str]]] = {}
    for grid in grids:
        for profile in yaml.safe_load(grid.read_text())["profiles"]:
            for cell in load_grid(grid, profile):
                values = stacks.setdefault(cell.configs, {})
                for overrides in (cell.overrides, *cell.tests):
                    for key, value in overrides.items():
                        seen = values.setdefault(key, [])
                        if cli_value(value) not in seen:
                            seen.append(cli_value(value))
    commands = []
    for configs, values in stacks.items():
        argv = ["fit", *(arg for config in configs for arg in ("-c", config))]
        for k in range(max((len(v) for v in values.values()), default=1)):
            chosen = [f"--{key}={v[k % len(v)]}" for key, v in values.items()]
            commands.append(([*argv, *chosen], k))
    return commands


def compositions(first_only: bool) -> list[tuple[str, list[str]]]:
    """(where it is documented, argv) of every composition, or of the fast subset."""
    found: list[tuple[str, list[str]]] = []
    if first_only:
        for source in [ROOT / "README.md", *sorted(ROOT.glob("configs/**/*.yaml"))]:
            where = source.relative_to(ROOT).as_posix()
            found += [(where, argv) for argv in documented_commands(source)]
    found += [("benchmarks", argv) for argv, k in grid_commands() if (k == 0) == first_only]
    unique: dict[str, tuple[str, list[str]]] = {}
    for source, argv in found:
        unique.setdefault(shlex.join(argv[1:]), (source, argv))
    return list(unique.values())


def expected_values(argv: list[str]) -> dict[str, Any]:
    """What the printed configuration must hold: configs in order, then overrides."""
    expected: dict[str, Any] = {}
    args = iter(argv[1:])
    for arg in args:
        if arg in ("-c", "--config"):
            config = next(args)
            assert (ROOT / config).is_file(), f"documented config {config} does not exist"
            values = EXPECTED.get(config) or literal_values(ROOT / config)
            # A config that names another class drops what earlier ones set for the old one.
            for key in [k for k in values if k.endswith(".class_path")]:
                stale = key.removesuffix("class_path") + "init_args."
                expected = {k: v for k, v in expected.items() if not k.startswith(stale)}
            expected |= values
        elif arg.startswith("--"):
            key, _, value = arg[2:].partition("=")
            if not _:
                value = next(args)
            if key != "ckpt_path":
                expected[key] = yaml.safe_load(value)
    return expected


def lookup(config: dict[str, Any], dotted: str) -> Any:
    value: Any = config
    for part in dotted.split("."):
        assert isinstance(value, dict) and part in value, f"{dotted} is not in the configuration"
        value = value[part]
    return value


def command_id(value: Any) -> str:
    return value if isinstance(value, str) else shlex.join(value)


def check_printed_config(argv: list[str], source: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--print_config"])
    printed = capsys.readouterr()
    assert exit_info.value.code == 0, f"{source}: {shlex.join(argv)}\n{printed.err[-2000:]}"
    config = yaml.safe_load(printed.out)
    for key, value in expected_values(argv).items():
        got = lookup(config, key)
        assert got == pytest.approx(value) if isinstance(value, float) else got == value, (
            f"{source}: {shlex.join(argv)}: {key} = {got!r}, expected {value!r}"
        )


@pytest.mark.parametrize(("source", "argv"), compositions(first_only=True), ids=command_id)
def test_documented_command_parses(
    source: str, argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(ROOT)
    check_printed_config(argv, source, capsys)


@pytest.mark.slow
@pytest.mark.parametrize(("source", "argv"), compositions(first_only=False), ids=command_id)
def test_every_grid_override_value_parses(
    source: str, argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(ROOT)
    check_printed_config(argv, source, capsys)


def test_every_baseline_and_data_config_has_expectations() -> None:
    """A new data config, or a baseline file gone missing, must show up here."""
    for name in BACKBONES:
        assert (ROOT / f"configs/detectors/{name}.yaml").is_file(), name
    data = {f"configs/data/{p.name}" for p in (ROOT / "configs/data").glob("*.yaml")}
    assert data == {k for k in EXPECTED if k.startswith("configs/data/")}
