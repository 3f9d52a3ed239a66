"""No checkpoint runs code: a crafted pickle through every verb and runner function that loads one.

The crafted checkpoint looks like a Lightning checkpoint (state_dict, epoch)
and also holds an object whose ``__reduce__`` makes
unpickling call ``Path.touch`` on a marker file. A full unpickle
(``weights_only=False``) creates the marker, which the first test shows; every
path of the suite must refuse the file with one line that names it and
``--weights_only false``, leaving no marker. Checkpoints that ``dfbench fit``
writes (and their stripped copies) still load on each path.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
import torch
from cli_helpers import baseline_args, scripted_args
from test_bench_runner import write_grid
from test_cli_errors import one_error_line

import src.bench.runner as runner_module
from src.bench.checkpoints import (
    WEIGHTS_ONLY_KEYS,
    resume_point,
    selection,
    strip_to_weights,
)
from src.bench.grid import load_grid
from src.bench.progress import ProgressLine
from src.bench.runner import Runner
from src.checkpoint_files import CheckpointFileError, UntrustedCheckpointError, load_checkpoint
from src.cli import main
from src.detectors import BackboneClassifier, Detector


class TouchOnLoad:
    """Unpickles into a call of ``Path.touch(marker)``: the code a planted file would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204 (pickle protocol)
        return (Path.touch, (self.marker,))


@pytest.fixture
def crafted(tmp_path: Path) -> tuple[Path, Path]:
    """(a crafted checkpoint, the marker file that loading it in full would create)."""
    marker = tmp_path / "MARKER"
    path = tmp_path / "planted" / "last.ckpt"
    path.parent.mkdir()
    torch.save(
        {
            "state_dict": {"bias": torch.zeros(1)},
            "epoch": 0,
            "planted": TouchOnLoad(marker),
        },
        path,
    )
    return path, marker


def assert_refused(message: str, path: Path, marker: Path) -> None:
    assert not marker.exists(), "the planted code ran"
    assert "\n" not in message and str(path) in message, message
    assert "--weights_only false" in message, message


def test_the_crafted_file_runs_its_code_when_trusted(crafted: tuple[Path, Path]) -> None:
    path, marker = crafted
    with pytest.raises(UntrustedCheckpointError) as refused:
        load_checkpoint(path)
    assert_refused(str(refused.value), path, marker)
    assert refused.value.found in {"pathlib.Path.touch", "builtins.getattr", "getattr"}
    loaded = load_checkpoint(path, trusted=True)
    assert marker.exists() and loaded["planted"] is None  # Path.touch ran and returned None


@pytest.mark.parametrize(
    ("what", "content", "reason"),
    [
        ("folder", None, "a folder; give a checkpoint file"),
        ("missing", None, "file not found"),
        ("empty", b"", "empty file"),
        ("text", b"not a checkpoint\n", "not a torch file: "),
    ],
)
def test_unreadable_files_are_named_with_the_reason(
    tmp_path: Path, what: str, content: bytes | None, reason: str
) -> None:
    path = tmp_path / f"{what}.ckpt"
    if what == "folder":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(CheckpointFileError) as error:
        load_checkpoint(path)
    assert str(error.value).startswith(f"not a checkpoint: {path} ({reason}")
    assert "\n" not in str(error.value)


# ------------------------------------------------------------------------ verbs
@pytest.mark.parametrize("verb", ["fit", "validate", "test", "predict"])
def test_lightning_verbs_refuse_the_crafted_file(
    verb: str, crafted: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, marker = crafted
    args = scripted_args(tmp_path / "runs", f"--ckpt_path={path}", epochs=1)
    assert main([verb, *args]) == 2
    assert_refused(one_error_line(capsys, verb), path, marker)


@pytest.fixture
def toy_data_config(toy_cache, tmp_path: Path) -> Path:
    _, cache, _ = toy_cache
    config = tmp_path / "toy.yaml"
    config.write_text(
        "data:\n  class_path: src.data.DeepfakeDataModule\n"
        f"  init_args: {{cache_dir: {cache}, train: [toy], test: [toy]}}\n"
    )
    return config


def checkpoint_verb_args(verb: str, checkpoint: Path, data_config: Path, out: Path) -> list[str]:
    """A command line of an argparse verb that loads ``checkpoint``."""
    data = ["-c", str(data_config)]
    return {
        "cam": ["--ckpt-path", str(checkpoint), *data, "--out", str(out / "cam.png")],
        "show-masks": ["--ckpt-path", str(checkpoint), *data, "--out", str(out / "masks.png")],
        "prle-maps": ["--zoo", str(checkpoint), *data, "--out", str(out / "maps"), "--no-progress"],
        "import-laa-net": ["--weights", str(checkpoint), "--out", str(out / "imported.ckpt")],
    }[verb]


@pytest.mark.parametrize("verb", ["cam", "show-masks", "prle-maps", "import-laa-net"])
def test_checkpoint_verbs_refuse_the_crafted_file_unless_trusted(
    verb: str,
    crafted: tuple[Path, Path],
    toy_data_config: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path, marker = crafted
    args = checkpoint_verb_args(verb, path, toy_data_config, tmp_path)
    assert main([verb, *args]) == 2
    assert_refused(one_error_line(capsys, verb), path, marker)
    # --weights_only false reaches the loader: the file is unpickled in full (and then
    # refused for what it is: no detector, no LAA-Net weights).
    assert main([verb, *args, "--weights_only", "false"]) == 2
    assert marker.exists()
    assert "--weights_only false" not in one_error_line(capsys, verb)


def test_weights_only_takes_true_or_false(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "x.pth").write_bytes(b"")
    args = ["--weights", str(tmp_path / "x.pth"), "--out", str(tmp_path / "y.ckpt")]
    assert main(["import-laa-net", *args, "--weights_only", "maybe"]) == 2
    assert "argument --weights_only: expected true or false, got 'maybe'" in (
        one_error_line(capsys, "import-laa-net")
    )


# ----------------------------------------------------------------------- runner
def test_runner_functions_refuse_the_crafted_file(crafted: tuple[Path, Path]) -> None:
    path, marker = crafted
    beside = path.parent / "best-epoch000.ckpt"
    beside.write_bytes(b"kept")
    said: list[str] = []
    assert resume_point(path.parent, said.append) is None
    (line,) = said
    assert not marker.exists() and str(path) in line and "\n" not in line
    assert "Python objects besides tensors" in line
    assert beside.read_bytes() == b"kept"  # not resumed: nothing deleted either
    before = path.read_bytes()
    for read in (selection, strip_to_weights):
        with pytest.raises(UntrustedCheckpointError) as refused:
            read(path)
        message = str(refused.value)
        assert not marker.exists() and str(path) in message and "\n" not in message
    assert path.read_bytes() == before  # strip_to_weights did not rewrite it


def test_bench_starts_afresh_over_a_planted_last_checkpoint(
    crafted: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    planted, marker = crafted
    xception = {"name": "xception", "configs": ["configs/detectors/xception.yaml"]}
    (cell,) = load_grid(write_grid(tmp_path, [xception], seeds=[0]), "demo")
    launched: list[list[str]] = []

    def stand_in(args: list[str], *_, **__) -> float:
        launched.append(args)
        raise RuntimeError("stand-in: no fit runs here")

    monkeypatch.setattr(runner_module, "_dfbench", stand_in)
    said = io.StringIO()
    runner = Runner([cell], tmp_path / "results", progress=ProgressLine(1, stream=said))
    folder = runner.cell_dir(cell) / "checkpoints"
    folder.mkdir(parents=True)
    shutil.copy(planted, folder / "last.ckpt")
    assert runner.run() == 1  # the stand-in fails the fit
    assert not marker.exists()
    ((verb, *args),) = launched
    assert verb == "fit" and not any(arg.startswith("--ckpt_path") for arg in args)
    assert not folder.exists()  # the planted file went with the folder
    (line,) = [line for line in said.getvalue().splitlines() if "afresh" in line]
    assert line.startswith(f"[{cell.index}] {cell.id}: its fit starts afresh: ")
    assert f"{folder / 'last.ckpt'} holds Python objects besides tensors" in line


# ------------------------------------------------------- the suite's own files
@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The checkpoint folder of a one-epoch fit of a real (tiny) timm classifier."""
    root = tmp_path_factory.mktemp("fitted")
    assert main(["fit", *baseline_args(root / "runs")]) == 0
    (folder,) = root.glob("runs/*/*/*/checkpoints")
    return folder


def test_fitted_checkpoints_load_on_every_path(
    fitted: Path,
    toy_data_config: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (best,) = fitted.glob("best-*.ckpt")
    full = torch.load(best, map_location="cpu", weights_only=False)
    # Lightning verbs.
    assert main(["test", *baseline_args(tmp_path / "runs", f"--ckpt_path={best}")]) == 0
    # Detector.from_checkpoint, and through it the picture verbs.
    detector = Detector.from_checkpoint(best)
    assert isinstance(detector, BackboneClassifier)
    for key, value in full["state_dict"].items():
        assert torch.equal(detector.state_dict()[key], value), key
    assert main(["cam", *checkpoint_verb_args("cam", best, toy_data_config, tmp_path)]) == 0
    capsys.readouterr()
    # The runner's functions: resume, selection, and the stripped copy it keeps.
    copy = shutil.copytree(fitted, tmp_path / "cell")
    resume = resume_point(copy)
    assert resume is not None and resume.epoch == full["epoch"] == 0
    facts = selection(copy / best.name)
    assert facts["monitor"] == "val/frame_auc" and facts["epoch"] == 0
    assert facts["params"] == sum(p.numel() for p in detector.parameters())
    strip_to_weights(copy / best.name)
    stripped = torch.load(copy / best.name, map_location="cpu", weights_only=True)
    assert set(stripped) <= set(WEIGHTS_ONLY_KEYS) and "state_dict" in stripped
    again = Detector.from_checkpoint(copy / best.name)
    for key, value in full["state_dict"].items():
        assert torch.equal(again.state_dict()[key], value), key
