"""PRLE cells in a grid: the zoo first, the maps once per zoo and data, resuming, ``--list``.

The runner's ``dfbench`` is replaced by a small script that does what each verb
leaves on disk (a checkpoint, test metrics, a map folder) and records every
call, so that the order of the steps and what each one was given can be checked
in a few seconds. The real fit and map build are covered by their own tests.
"""

from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path

import pytest
import torch
import yaml

from src.bench import runner as runner_module
from src.bench.grid import PRLE_CONFIG, GridError, load_grid, parse_override, with_dependencies
from src.bench.prle_maps import maps_folder, maps_state
from src.bench.process import Interrupted
from src.bench.progress import ProgressLine
from src.bench.runner import Runner

FAKE_DFBENCH = r"""
import json, os, shutil, signal, sys, time
from pathlib import Path

args = sys.argv[1:]
verb = args[0]
cell = json.loads(os.environ["DFBENCH_RUN_META"])["cell"]
with open(os.environ["FAKE_CALLS"], "a") as calls:
    calls.write(json.dumps({"verb": verb, "cell": cell, "args": args}) + "\n")


def option(prefix):
    return next(a[len(prefix):] for a in args if a.startswith(prefix))


if verb == "fit":
    folder = Path(option("--checkpoint.dirpath="))
    folder.mkdir(parents=True)
    shutil.copy(os.environ["FAKE_CHECKPOINT"], folder / "best-epoch=0.ckpt")
elif verb == "test":
    out = Path(option("--trainer.default_root_dir=")) / "version_0"
    out.mkdir(parents=True)
    metrics = {f"{level}_{name}": 0.75 for level in ("frame", "video")
               for name in ("auc", "ap", "acc", "eer")}
    metrics |= {"real_acc": 0.5, "fake_acc": 1.0, "n_videos": 2, "n_frames": 4}
    (out / "test_metrics.json").write_text(json.dumps({"synthetic": metrics}))
elif verb == "prle-maps":
    if os.environ.get("FAKE_STOP_AT_MAPS"):  # the user stops bench during the build
        os.kill(os.getppid(), signal.SIGTERM)
        time.sleep(60)
    import pandas as pd

    out = Path(args[args.index("--out") + 1])
    split = args[args.index("--split") + 1]
    (out / "maps").mkdir(parents=True, exist_ok=True)
    (out / "maps" / f"{split}.png").write_bytes(b"png")
    pd.DataFrame({"crop_path": [f"{split}.png"] * 3}).to_parquet(out / "index.parquet")
    pd.DataFrame(columns=["crop_path", "video_key", "frame_idx", "reason"]).to_csv(
        out / "failures.csv", index=False
    )
"""


def prle_grid(tmp_path: Path, **extra_entries: dict) -> Path:
    """Two plain detectors, two PRLE detectors with the same zoo (listed before it), one seed."""
    tiny = {"model.init_args.input_size": 32}
    spec = {
        "name": "tiny",
        "train_set": "synthetic",
        "seeds": [0],
        "profiles": {
            "demo": {
                "data": ["configs/data/cross_dataset_synthetic.yaml"],
                "configs": ["configs/profiles/demo.yaml"],
            }
        },
        "detectors": [
            {
                "name": "prle_xception",
                "configs": ["configs/detectors/xception.yaml"],
                "prle_zoo": ["xception", "vgg16"],
                "overrides": tiny,
            },
            {"name": "xception", "configs": ["configs/detectors/xception.yaml"], "overrides": tiny},
            {"name": "vgg16", "configs": ["configs/detectors/vgg16.yaml"], "overrides": tiny},
            {
                "name": "prle_vgg16",
                "configs": ["configs/detectors/vgg16.yaml"],
                "prle_zoo": ["xception", "vgg16"],
                "overrides": tiny,
            },
            *extra_entries.values(),
        ],
    }
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@pytest.fixture
def fake_dfbench(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Replace the cells' ``dfbench`` with the recording script; returns the calls file."""
    script = tmp_path / "fake_dfbench.py"
    script.write_text(FAKE_DFBENCH)
    checkpoint = tmp_path / "selected.ckpt"
    torch.save(
        {
            "state_dict": {"weight": torch.zeros(3)},
            "hyper_parameters": {},
            "epoch": 0,
            "callbacks": {"ModelCheckpoint{}": {"monitor": "val/frame_auc", "current_score": 0.9}},
        },
        checkpoint,
    )
    calls = tmp_path / "calls.jsonl"
    monkeypatch.setattr(runner_module, "DFBENCH", [sys.executable, str(script)])
    monkeypatch.setenv("FAKE_CALLS", str(calls))
    monkeypatch.setenv("FAKE_CHECKPOINT", str(checkpoint))
    monkeypatch.delenv("FAKE_STOP_AT_MAPS", raising=False)
    return calls


def read_calls(calls: Path) -> list[dict]:
    if not calls.is_file():
        return []
    lines = calls.read_text().splitlines()
    calls.unlink()
    return [json.loads(line) for line in lines]


def quiet_runner(cells, out: Path) -> Runner:  # noqa: ANN001
    return Runner(cells, out, progress=ProgressLine(len(cells), stream=io.StringIO()))


def test_prle_cells_know_their_zoo_and_maps(tmp_path: Path) -> None:
    cells = load_grid(prle_grid(tmp_path), "demo")
    prle_x, xception, vgg, prle_v = cells
    assert prle_x.zoo == (xception, vgg) and prle_v.zoo == (xception, vgg)
    assert not xception.zoo and xception.maps_key is None
    assert prle_x.configs[-1] == PRLE_CONFIG and PRLE_CONFIG not in xception.configs
    # One map folder for both PRLE cells; other zoo members or map options make another.
    assert prle_x.maps_key == prle_v.maps_key
    assert with_dependencies([prle_x]) == [xception, vgg, prle_x]
    assert with_dependencies(cells) == [xception, vgg, prle_x, prle_v]
    single = {
        "name": "prle_single",
        "configs": ["configs/detectors/xception.yaml"],
        "prle_zoo": ["xception"],
    }
    average = single | {"name": "prle_average", "prle_zoo": ["xception", "vgg16"]}
    average["prle_maps"] = {"fusion": "average"}
    *_, single_cell, average_cell = load_grid(prle_grid(tmp_path, a=single, b=average), "demo")
    assert len({prle_x.maps_key, single_cell.maps_key, average_cell.maps_key}) == 3
    # The PRLE cell's id follows its zoo: weights set for a zoo member make another cell.
    weights = [parse_override("vgg16:model.init_args.drop_rate=0.5")]
    changed = load_grid(prle_grid(tmp_path), "demo", weights)
    assert changed[1].id == xception.id and changed[2].id != vgg.id
    assert changed[0].id != prle_x.id and changed[0].maps_key != prle_x.maps_key
    # A PRLE cell's loading or augmentation options do not change its training frames,
    # so its maps stay those of the other PRLE cell; a frame option does change them.
    loading = [parse_override("prle_xception:data.init_args.batch_size=2")]
    changed = load_grid(prle_grid(tmp_path), "demo", loading)
    assert changed[0].id != prle_x.id and changed[0].maps_key == prle_v.maps_key
    frames = [parse_override("prle_xception:data.init_args.train_frames_per_video=2")]
    assert load_grid(prle_grid(tmp_path), "demo", frames)[0].maps_key != prle_v.maps_key


@pytest.mark.parametrize(
    ("zoo", "message"),
    [
        ("xception", r"prle_zoo is 'xception' \(text\); it must be a list of distinct"),
        (["xception", "nope"], r"prle_zoo is 'nope' \(text\); it must be another detector's"),
        (["prle_vgg16"], r"it must be a detector without a prle_zoo of its own"),
        (["swept"], r"it must be a detector without a sweep"),
    ],
)
def test_bad_zoos_are_refused(tmp_path: Path, zoo: object, message: str) -> None:
    swept = {
        "name": "swept",
        "configs": ["configs/detectors/xception.yaml"],
        "sweep": {"model.init_args.drop_rate": [0.1, 0.2]},
    }
    bad = {"name": "bad", "configs": ["configs/detectors/xception.yaml"], "prle_zoo": zoo}
    with pytest.raises(GridError, match=message):
        load_grid(prle_grid(tmp_path, a=swept, b=bad), "demo")


def test_bad_map_options_are_refused(tmp_path: Path) -> None:
    entry = {"name": "bad", "configs": ["configs/detectors/xception.yaml"]}
    with pytest.raises(GridError, match=r"has prle_maps but no prle_zoo"):
        load_grid(prle_grid(tmp_path, a=entry | {"prle_maps": {"fusion": "average"}}), "demo")
    entry["prle_zoo"] = ["xception"]
    with pytest.raises(
        GridError, match=r"a key of .*prle_maps is 'tau' .* one of fusion, map_size"
    ):
        load_grid(prle_grid(tmp_path, a=entry | {"prle_maps": {"tau": 0.1}}), "demo")
    with pytest.raises(GridError, match=r"prle_maps.map_size is '64' \(text\); it must be a whole"):
        load_grid(prle_grid(tmp_path, a=entry | {"prle_maps": {"map_size": "64"}}), "demo")


@pytest.mark.slow  # ten short subprocesses: ~15 s on a busy machine
def test_zoo_first_maps_once_then_the_prle_cells(tmp_path: Path, fake_dfbench: Path) -> None:
    cells = load_grid(prle_grid(tmp_path), "demo")
    prle_x, xception, vgg, prle_v = cells
    runner = quiet_runner(cells, tmp_path / "out")
    assert runner.run() == 0
    calls = read_calls(fake_dfbench)
    assert [(c["verb"], c["cell"]) for c in calls] == [
        ("fit", xception.id),
        ("test", xception.id),
        ("fit", vgg.id),
        ("test", vgg.id),
        ("prle-maps", prle_x.id),  # the training frames: only they are augmented
        ("fit", prle_x.id),
        ("test", prle_x.id),
        ("fit", prle_v.id),  # the maps are reused
        ("test", prle_v.id),
    ]
    folder = maps_folder(runner.root, prle_x)
    assert folder == runner.root / "prle_maps" / prle_x.maps_key
    build = calls[4]["args"]
    zoo = build[build.index("--zoo") + 1 : build.index("-c")]
    assert zoo == [
        str(runner.root / json.loads((runner.cell_dir(c) / "fit.json").read_text())["checkpoint"])
        for c in (xception, vgg)
    ]
    assert build[build.index("--out") + 1] == str(folder)
    assert build[build.index("--split") + 1] == "train"
    assert json.loads((folder / "done.json").read_text())["frames"] == {"train": 3}
    side_data = f"--data.init_args.side_data={json.dumps({'prle_map': str(folder / 'maps')})}"
    for call in calls:
        prle_fit = call["verb"] == "fit" and call["cell"] in (prle_x.id, prle_v.id)
        assert (side_data in call["args"]) == prle_fit, call
        if call["cell"] in (prle_x.id, prle_v.id) and call["verb"] != "prle-maps":
            configs = [call["args"][k + 1] for k, a in enumerate(call["args"]) if a == "-c"]
            assert configs[-1].endswith(PRLE_CONFIG)
    assert len(runner.collect()) == 8  # 4 cells, one test set, frame and video rows
    # A second run finds everything done.
    assert quiet_runner(cells, tmp_path / "out").run() == 0
    assert read_calls(fake_dfbench) == []


@pytest.mark.slow  # ten short subprocesses: ~15 s on a busy machine
def test_one_prle_cell_runs_its_zoo_first(tmp_path: Path, fake_dfbench: Path) -> None:
    cells = load_grid(prle_grid(tmp_path), "demo")
    runner = quiet_runner(cells, tmp_path / "out")
    assert runner.run(only=3) == 0  # prle_vgg16 alone, as a --cell array job would
    done = [(c["verb"], c["cell"]) for c in read_calls(fake_dfbench) if c["verb"] == "fit"]
    assert done == [("fit", cells[1].id), ("fit", cells[2].id), ("fit", cells[3].id)]
    assert runner.status(cells[0])["status"] == "pending"


def test_a_failed_zoo_cell_fails_its_prle_cells(
    tmp_path: Path, fake_dfbench: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cells = load_grid(prle_grid(tmp_path), "demo")
    prle_x, xception, vgg, prle_v = cells
    broken = tmp_path / "broken.ckpt"
    broken.write_text("not a checkpoint")
    monkeypatch.setenv("FAKE_CHECKPOINT", str(broken))
    runner = quiet_runner(cells, tmp_path / "out")
    assert runner.run() == 1
    assert "prle-maps" not in {c["verb"] for c in read_calls(fake_dfbench)}
    error = runner.status(prle_x)["error"]
    assert error == f"its PRLE zoo is not trained: cell(s) {xception.id}, {vgg.id} did not finish"


@pytest.mark.slow  # ten short subprocesses: ~15 s on a busy machine
def test_stopped_during_the_map_build_resumes_there(
    tmp_path: Path, fake_dfbench: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cells = load_grid(prle_grid(tmp_path), "demo")
    prle_x, xception, vgg, prle_v = cells
    monkeypatch.setenv("FAKE_STOP_AT_MAPS", "1")
    stopped = Runner(
        cells, tmp_path / "out", grace_s=5, progress=ProgressLine(4, stream=io.StringIO())
    )
    with pytest.raises(Interrupted):
        stopped.run()
    monkeypatch.delenv("FAKE_STOP_AT_MAPS")
    assert [stopped.status(c)["status"] for c in cells] == [
        "interrupted",
        "done",
        "done",
        "pending",
    ]
    assert maps_state(stopped.root, prle_x) == "to build"
    read_calls(fake_dfbench)
    assert quiet_runner(cells, tmp_path / "out").run() == 0
    steps = [(c["verb"], c["cell"]) for c in read_calls(fake_dfbench)]
    assert steps[:2] == [("prle-maps", prle_x.id), ("fit", prle_x.id)]  # the zoo is not refitted
    assert [s for s in steps if s[0] == "fit"] == [("fit", prle_x.id), ("fit", prle_v.id)]
    assert maps_state(stopped.root, prle_x) == "built"


def test_bench_list_shows_what_prle_cells_need(
    tmp_path: Path, fake_dfbench: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from src.cli.bench import run

    grid = prle_grid(tmp_path)
    args = [str(grid), "--out", str(tmp_path / "out"), "--no-wandb", "--list"]
    assert run(args) == 0
    # (The synthetic frame tables are not built here: their "missing" lines are left out.)
    lines = [line for line in capsys.readouterr().out.splitlines() if "missing" not in line]
    key = load_grid(grid, "demo")[0].maps_key
    assert re.fullmatch(r"   0  pending      prle_xception-s0-[0-9a-f]{10}", lines[1])
    assert lines[2:4] == [
        f"{'':19s}needs zoo cells 1 (pending), 2 (pending)",
        f"{'':19s}needs PRLE maps prle_maps/{key} (to build)",
    ]
    assert re.fullmatch(r"   1  pending      xception-s0-[0-9a-f]{10}", lines[4])
    cells = load_grid(grid, "demo")
    quiet_runner(cells, tmp_path / "out").run(only=1)
    assert run(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2] == f"{'':19s}needs zoo cells 1 (done), 2 (pending)"


def test_a_moved_partly_built_map_folder_is_adopted(tmp_path: Path) -> None:
    from src.bench.prle_maps import adopt_moved_folder

    folder = tmp_path / "prle_maps" / "abc"
    adopt_moved_folder(folder, [tmp_path / "a.ckpt"])  # nothing built yet: nothing to do
    assert not folder.exists()
    folder.mkdir(parents=True)
    recorded = {"zoo": ["/old/place/a.ckpt"], "fusion": "neighbouring", "map_size": 256}
    (folder / "settings.json").write_text(json.dumps(recorded))
    adopt_moved_folder(folder, [tmp_path / "a.ckpt"])
    assert json.loads((folder / "settings.json").read_text()) == recorded | {
        "zoo": [str(tmp_path / "a.ckpt")]
    }
