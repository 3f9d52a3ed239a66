"""Named runs: where runs live, what --ckpt_path best / last resolve to, resuming, refusing untrained weights."""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
from pathlib import Path

import pytest
import torch
from cli_helpers import CONFIGS, checkpoint_state, scripted_args

from src.bench.lock import lock_run
from src.cli import main
from src.cli.runs import (
    LAYOUT_ENV,
    checked_run_name,
    data_name,
    detector_name,
    plan_session,
)
from src.configs import resolve
from src.data import DeepfakeDataModule
from src.errors import UnsafeNameError
from src.files import atomic_write
from src.synthetic import SyntheticFaceDataModule

GROUP = "runs/scripted_detector-*/synthetic_face"


@pytest.fixture(autouse=True)
def first_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs as the first (or only) process, with no layout inherited."""
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.delenv(LAYOUT_ENV, raising=False)


# ------------------------------------------------------------------------- names
DATA = str(CONFIGS / "data/ffpp.yaml")


def _name(*args: str) -> str:
    files = [args[i + 1] for i, arg in enumerate(args) if arg == "-c"]
    config = resolve(list(args))
    return detector_name(_import(config["model"]["class_path"]), config, files)


def _import(class_path: str) -> type:
    module, _, name = class_path.rpartition(".")
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize(
    ("detector", "name"),
    [("xception", "xception"), ("efficientnet_b4", "efficientnet_b4"), ("laa_net", "laa_net")],
)
def test_a_shipped_recipe_is_named_after_its_detector(detector: str, name: str) -> None:
    method = str(CONFIGS / f"detectors/{detector}.yaml")
    assert _name("-c", DATA, "-c", method) == name
    assert _name("-c", method, "-c", DATA) == name  # data configs are the base layer anyway


def test_two_recipes_of_one_backbone_get_two_run_folders() -> None:
    """The SBI-trained EfficientNet-B4 is not the baseline: --ckpt_path best cannot mix them."""
    plain = ["-c", DATA, "-c", str(CONFIGS / "detectors/efficientnet_b4.yaml")]
    sbi = [*plain, "--data.init_args.pseudo_fake=src.augment.sbi.SBI"]
    sbi_lr = [*sbi, "--model.init_args.optimizer.init_args.lr=1e-3"]
    names = {_name(*plain), _name(*sbi), _name(*sbi_lr)}
    assert len(names) == 3 and "efficientnet_b4" in names
    assert all(re.fullmatch(r"efficientnet_b4(-[0-9a-f]{6})?", name) for name in names)
    # How long it trains is not the recipe: a run resumed to train longer stays one run.
    assert _name(*plain, "--trainer.max_epochs=40") == "efficientnet_b4"
    # Neither is where the data lives or how it loads.
    assert _name(
        *plain, "--data.init_args.cache_dir=/elsewhere", "--data.init_args.num_workers=3"
    ) == ("efficientnet_b4")


def test_an_unregistered_backbone_is_named_after_its_class_and_backbone() -> None:
    baseline = ["-c", DATA, "-c", str(CONFIGS / "detectors/baseline.yaml")]
    name = _name(*baseline, "--model.init_args.backbone=resnet18")
    assert re.fullmatch(r"backbone_classifier-resnet18-[0-9a-f]{6}", name)
    assert _name(*baseline, "--model=cli_helpers.ScriptedDetector").startswith("scripted_detector-")


@pytest.mark.parametrize(
    ("data_class", "init_args", "name"),
    [
        (DeepfakeDataModule, {"train": ["ffpp_c23"]}, "ffpp_c23"),
        (DeepfakeDataModule, {"train": ["ffpp_c23", "cdf2"], "test": ["dfd"]}, "ffpp_c23+cdf2"),
        (DeepfakeDataModule, {"train": ["/tmp/x/toy.parquet"]}, "toy"),
        (SyntheticFaceDataModule, {"test_sets": ["blend"]}, "synthetic_face"),
        (None, {}, "no_data"),
    ],
)
def test_data_name(data_class: type | None, init_args: dict, name: str) -> None:
    assert data_name(data_class, init_args) == name


@pytest.mark.parametrize("bad", ["", "..", "../up", "a/b", ".hidden", "/abs"])
def test_run_names_are_one_plain_folder(bad: str) -> None:
    with pytest.raises(UnsafeNameError, match="--run_name"):
        checked_run_name(bad)
    assert checked_run_name("exp-1_lr=2e-4") == "exp-1_lr=2e-4"


# --------------------------------------------------------------- best and last
def fake_run(group: Path, name: str, epochs: list[int], recorded: int | None, age: float) -> Path:
    """A run folder with best-epochNNN.ckpt files and a last.ckpt recording ``recorded`` as best."""
    folder = group / name / "checkpoints"
    folder.mkdir(parents=True)
    for epoch in epochs:
        (folder / f"best-epoch{epoch:03d}.ckpt").write_bytes(b"x")
    if recorded is not None:
        state = {"best_model_path": f"/elsewhere/best-epoch{recorded:03d}.ckpt"}
        torch.save(
            {"callbacks": {"ModelCheckpoint{'monitor': 'val/frame_auc'}": state}},
            folder / "last.ckpt",
        )
    for path in folder.iterdir():
        os.utime(path, (age, age))
    return group / name


def test_best_and_last_resolve_in_the_latest_or_named_run(tmp_path: Path) -> None:
    group = tmp_path / "runs/det/data"
    old = fake_run(group, "old", [1], recorded=1, age=1_000)
    new = fake_run(group, "new", [3, 5], recorded=3, age=2_000)
    # The recorded best wins over a newer file name (a top-k folder holds several).
    layout, checkpoint, continues = plan_session(
        "test", tmp_path / "runs", "det", "data", None, "best", create=False
    )
    assert (layout.run, checkpoint) == ("new", new / "checkpoints/best-epoch003.ckpt")
    assert not continues
    _, checkpoint, _ = plan_session("test", tmp_path / "runs", "det", "data", "old", "last", False)
    assert checkpoint == old / "checkpoints/last.ckpt"
    # A fit given last continues that run.
    layout, checkpoint, continues = plan_session(
        "fit", tmp_path / "runs", "det", "data", None, "last", create=False
    )
    assert (layout.run, checkpoint, continues) == ("new", new / "checkpoints/last.ckpt", True)
    # Without a last.ckpt, best is the newest best file.
    (new / "checkpoints/last.ckpt").unlink()
    os.utime(new / "checkpoints/best-epoch005.ckpt", (3_000, 3_000))
    _, checkpoint, _ = plan_session("test", tmp_path / "runs", "det", "data", "new", "best", False)
    assert checkpoint == new / "checkpoints/best-epoch005.ckpt"


def test_sessions_join_the_run_of_their_checkpoint(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    run = fake_run(root / "det/data", "exp", [0], recorded=0, age=1_000)
    layout, _, _ = plan_session(
        "test", root, "det", "data", None, str(run / "checkpoints/best-epoch000.ckpt")
    )
    assert layout.run == "exp" and layout.session.startswith("test-")
    assert layout.session_dir.is_dir()  # reserved at once
    # A checkpoint from elsewhere (an imported one) gets a run named after the file.
    outside = tmp_path / "laa_net_authors.ckpt"
    layout, checkpoint, _ = plan_session("test", root, "det", "data", None, str(outside), False)
    assert (layout.run, checkpoint) == ("laa_net_authors", outside)
    layout, checkpoint, _ = plan_session("validate", root, "det", "data", None, None, False)
    assert (layout.run, checkpoint) == ("untrained", None)


def test_missing_runs_and_reused_names_are_explained(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    with pytest.raises(FileNotFoundError, match="no run of det on data under"):
        plan_session("test", root, "det", "data", None, "best", False)
    fake_run(root / "det/data", "exp", [0], recorded=0, age=1_000)
    with pytest.raises(FileNotFoundError, match="run 'other' has no checkpoints"):
        plan_session("test", root, "det", "data", "other", "last", False)
    with pytest.raises(FileExistsError, match="continue it with --ckpt_path last"):
        plan_session("fit", root, "det", "data", "exp", None, False)
    # A run of the same detector under another training recipe is pointed at, not taken.
    with pytest.raises(FileNotFoundError) as other:
        plan_session("test", root, "det-0a1b2c", "data", None, "best", False)
    assert str(other.value).endswith(
        "no run of det-0a1b2c on data under "
        f"{root}; runs of other training recipes: det (stack the configs they were trained "
        "with to find them) (fit one first, or give a checkpoint file)"
    )


def test_ddp_processes_take_the_first_process_layout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, _, _ = plan_session("fit", tmp_path, "det", "data", None, None)
    monkeypatch.setenv("LOCAL_RANK", "1")  # what Lightning's launcher gives the second process
    second, _, _ = plan_session("fit", tmp_path, "det", "data", None, None)
    assert second == first
    assert json.loads(os.environ[LAYOUT_ENV]) == {"run": first.run, "session": first.session}
    assert len(list((tmp_path / "det/data").iterdir())) == 1  # no second run folder


def test_two_fits_in_the_same_second_get_two_runs(tmp_path: Path) -> None:
    a, _, _ = plan_session("fit", tmp_path, "det", "data", None, None)
    b, _, _ = plan_session("fit", tmp_path, "det", "data", None, None)
    assert a.run != b.run and a.run_dir.is_dir() and b.run_dir.is_dir()


# ------------------------------------------------------------------ end to end
@pytest.mark.parametrize("verb", ["validate", "test", "predict"])
def test_untrained_weights_are_refused(
    verb: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([verb, *scripted_args(tmp_path / "runs")]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"dfbench {verb}: no trained weights: give --ckpt_path")
    assert "dfbench import-laa-net" in line and "--allow_untrained true" in line
    assert not (tmp_path / "runs").exists()  # nothing written


def test_resumed_run_keeps_its_best_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Best at epoch 0 (AUC 1), worse after: interrupted after epoch 1, moved, resumed to epoch 3."""
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    monkeypatch.chdir(first)
    assert main(["fit", *scripted_args(Path("runs"), epochs=2)]) == 0
    (run,) = first.glob(f"{GROUP}/*")
    before = checkpoint_state(run / "checkpoints/last.ckpt")
    assert Path(before["best_model_path"]).name == "best-epoch000.ckpt"
    epochs_before = torch.load(run / "checkpoints/last.ckpt", weights_only=True)["epoch"]

    # Another machine, another working directory: the record names the old folder.
    shutil.move(first / "runs", second / "runs")
    monkeypatch.chdir(second)
    assert main(["fit", *scripted_args(Path("runs"), "--ckpt_path=last", epochs=4)]) == 0
    (run,) = second.glob(f"{GROUP}/{run.name}")
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "best-epoch000.ckpt",
        "last.ckpt",
    ]
    after = checkpoint_state(run / "checkpoints/last.ckpt")
    assert Path(after["best_model_path"]) == (run / "checkpoints/best-epoch000.ckpt").resolve()
    assert float(after["best_model_score"]) == 1.0
    # Two more epochs were trained (Lightning stores the count of finished epochs).
    assert (
        torch.load(run / "checkpoints/last.ckpt", weights_only=True)["epoch"] == epochs_before + 2
    )
    assert len(list(run.glob("fit-*"))) == 2  # one folder per session
    out = capsys.readouterr()
    assert "best checkpoint (val/frame_auc = 1.0000)" in out.out
    assert "dirpath has changed" not in out.err and "not empty" not in out.err

    # best, tested: the epoch-0 weights (AUC 1 on every test set), results inside the run.
    assert main(["test", *scripted_args(Path("runs"), "--ckpt_path=best")]) == 0
    (metrics,) = run.glob("test-*/test_metrics.json")
    assert {name: m["frame_auc"] for name, m in json.loads(metrics.read_text()).items()} == {
        "blend": 1.0,
        "matched": 1.0,
    }


def test_checkpoints_are_written_straight_and_atomically(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import src.cli.checkpoints as checkpoints

    written: list[str] = []

    def spy(path, write, durable=True):  # noqa: ANN001, ANN202
        written.append(Path(path).name)
        return atomic_write(path, write, durable)

    monkeypatch.setattr(checkpoints, "atomic_write", spy)
    saved = os.umask(0o027)
    try:
        assert main(["fit", *scripted_args(tmp_path / "runs", epochs=2)]) == 0
    finally:
        os.umask(saved)
    (run,) = tmp_path.glob(f"{GROUP}/*")
    files = sorted((run / "checkpoints").iterdir())
    assert [f.name for f in files] == ["best-epoch000.ckpt", "last.ckpt"]
    assert sorted(set(written)) == ["best-epoch000.ckpt", "last.ckpt"]
    for file in files:
        assert file.stat().st_mode & 0o777 == 0o640
        assert "state_dict" in torch.load(file, weights_only=True)


def test_named_run_is_created_once_then_continued(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = scripted_args(tmp_path / "runs", "--run_name=baseline", epochs=1)
    assert main(["fit", *args]) == 0
    (last,) = tmp_path.glob(f"{GROUP}/baseline/checkpoints/last.ckpt")
    finished = torch.load(last, weights_only=True)["epoch"]
    capsys.readouterr()
    assert main(["fit", *args]) == 2
    assert re.search(
        r"run 'baseline' of scripted_detector-[0-9a-f]{6} on synthetic_face already has checkpoints",
        capsys.readouterr().err,
    )
    resume = scripted_args(tmp_path / "runs", "--run_name=baseline", "--ckpt_path=last", epochs=2)
    assert main(["fit", *resume]) == 0
    assert torch.load(last, weights_only=True)["epoch"] == finished + 1


def test_validate_and_test_print_one_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["fit", *scripted_args(tmp_path / "runs", epochs=1)]) == 0
    capsys.readouterr()
    for verb, title in (("validate", "validation"), ("test", "test (frame and video level")):
        assert main([verb, *scripted_args(tmp_path / "runs", "--ckpt_path=best")]) == 0
        out = capsys.readouterr()
        printed = out.out + out.err
        assert title in printed
        # Lightning's own results table (a "Test metric" / "DataLoader 0" row per logged key,
        # as fractions) is gone: the suite's table alone, in percent.
        for lightning_table in ("Validate metric", "Test metric", "DataLoader 0", "frame_auc"):
            assert lightning_table not in printed
        assert printed.count("100.00") >= 2


def test_a_run_is_fitted_by_one_process_at_a_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two fits of one --run_name at once wrote one checkpoints/ folder (best-epoch000-v1 ...)."""
    assert main(["fit", *scripted_args(tmp_path / "runs", "--run_name=first", epochs=1)]) == 0
    (group,) = tmp_path.glob(GROUP)
    busy = group / "second"
    held = lock_run(busy)  # a fit of run "second" is under way
    try:
        args = scripted_args(tmp_path / "runs", "--run_name=second", epochs=1)
        capsys.readouterr()
        assert main(["fit", *args]) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line.startswith(f"dfbench fit: run {busy} is in use by dfbench fit ")
        assert f"(pid {os.getpid()}, started " in line
        assert line.endswith("or choose another --run_name")
        assert not (busy / "checkpoints").exists()
    finally:
        os.close(held)
    assert main(["fit", *args]) == 0  # the lock went with its holder
    assert sorted(p.name for p in (busy / "checkpoints").iterdir()) == [
        "best-epoch000.ckpt",
        "last.ckpt",
    ]


def test_resuming_with_another_optimiser_setting_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It trained on with the checkpoint's lr while hparams.yaml recorded the new one."""
    adam = ["--model.init_args.optimizer=torch.optim.Adam", "--trainer.max_epochs=1"]
    args = scripted_args(tmp_path / "runs", *adam, "--model.init_args.optimizer.init_args.lr=1e-3")
    assert main(["fit", *args]) == 0
    (last,) = tmp_path.glob(f"{GROUP}/*/checkpoints/last.ckpt")
    capsys.readouterr()
    changed = [*args, "--model.init_args.optimizer.init_args.lr=1e30", f"--ckpt_path={last}"]
    assert main(["fit", *changed]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == (
        "dfbench fit: --model.init_args.optimizer.init_args.lr 1e+30 (checkpoint 0.001): a fit "
        f"resumed from {last} restores the optimiser and schedule it holds, so this setting "
        "would not be used; resume with the run's settings, or start a new run (another "
        "--run_name) to change it"
    )
    sgd = [*args, "--model.init_args.optimizer=torch.optim.SGD", f"--ckpt_path={last}"]
    assert main(["fit", *sgd]) == 2
    assert "the optimiser SGD (the checkpoint's optimiser has no " in capsys.readouterr().err
    # A stopping criterion applies on resume: one more epoch is trained.
    longer = [*args, "--trainer.max_epochs=2", f"--ckpt_path={last}"]
    assert main(["fit", *longer]) == 0
    assert torch.load(last, weights_only=True)["epoch"] == 1


def test_evaluating_a_checkpoint_file_joins_its_run(tmp_path: Path) -> None:
    """A test without the fit's optimiser options still lands in the run that holds the file."""
    root = tmp_path / "runs"
    fake_run(root / "det-0a1b2c/data", "exp", [0], recorded=0, age=1_000)
    checkpoint = root / "det-0a1b2c/data/exp/checkpoints/best-epoch000.ckpt"
    layout, found, _ = plan_session("test", root, "det", "data", None, str(checkpoint), False)
    assert (layout.detector, layout.data, layout.run, found) == (
        "det-0a1b2c",
        "data",
        "exp",
        checkpoint,
    )
    # A file outside any run gets a run named after it, under this command's detector.
    elsewhere = tmp_path / "weights.ckpt"
    elsewhere.write_bytes(b"x")
    layout, _, _ = plan_session("test", root, "det", "data", None, str(elsewhere), False)
    assert (layout.detector, layout.run) == ("det", "weights")
