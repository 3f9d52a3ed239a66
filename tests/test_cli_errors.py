"""Expected failures of the verbs end in one line a user can act on; checkpoints must match the config."""

from __future__ import annotations

import errno
import re
from pathlib import Path

import pytest
import torch
from cli_helpers import CONFIGS, ScriptedDetector, baseline_args, scripted_args

from src.cli import main
from src.cli.checkpoints import checkpoint_mismatch, load_matching, read_checkpoint
from src.configs import order_configs
from src.detectors import BackboneClassifier
from src.errors import ConfigError, DFBenchError


def one_error_line(capsys: pytest.CaptureFixture[str], verb: str) -> str:
    """The only line on stderr, without its ``dfbench VERB: `` prefix."""
    (line,) = capsys.readouterr().err.strip().splitlines()
    prefix = f"dfbench {verb}: "
    assert line.startswith(prefix), line
    return line.removeprefix(prefix)


# ------------------------------------------------------------------ argparse verbs
@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["preprocess", "--index", "INDEX", "--cache-dir", "c", "--eval-frames", "-3"],
            "argument --eval-frames: expected an integer >= 1, got -3",
        ),
        (
            ["preprocess", "--index", "INDEX", "--cache-dir", "c", "--crop-scale", "0"],
            "argument --crop-scale: expected a finite number > 0, got 0",
        ),
        (
            ["preprocess", "--index", "INDEX", "--cache-dir", "c", "--detect-size", "abc"],
            "argument --detect-size: expected an integer >= 1, got 'abc'",
        ),
        (
            ["index", "--dataset", "ffpp", "--root", ".", "--out", "OUTDIR"],
            "argument --out: OUTDIR is a folder; give the path of a file to write",
        ),
        (
            ["preprocess", "--index", "INDEX", "--cache-dir", "c", "--cache", "c"],
            "unrecognized arguments: --cache c",
        ),
    ],
)
def test_bad_options_of_argparse_verbs_fail_in_one_line(
    argv: list[str], expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    index = tmp_path / "videos.csv"
    index.write_text("key,path,label,split\n")
    (tmp_path / "out").mkdir()
    argv = [str(index) if a == "INDEX" else a for a in argv]
    argv = [str(tmp_path / "out") if a == "OUTDIR" else a for a in argv]
    expected = expected.replace("OUTDIR", str(tmp_path / "out"))
    assert main(argv) == 2
    assert one_error_line(capsys, argv[0]).startswith(expected)


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="expected an integer >= 1, got -3"):
        main(["synth", "--out", str(tmp_path), "--frames", "-3", "--debug"])


# --------------------------------------------------------------- Lightning verbs
def test_misspelled_option_and_yaml_key_fail_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["fit", *scripted_args(tmp_path, "--trainer.max_epoch=3")]) == 2
    line = one_error_line(capsys, "fit")
    assert "--trainer.max_epoch=3" in line or "trainer.max_epoch" in line
    config = tmp_path / "typo.yaml"
    config.write_text("trainer:\n  max_epoch: 3\n")
    assert main(["fit", *scripted_args(tmp_path, "-c", str(config))]) == 2
    assert "max_epoch" in one_error_line(capsys, "fit")


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        ("--data.init_args.batch_size=0", "--data.init_args.batch_size 0: must be an integer >= 1"),
        (
            "--trainer.max_epochs=-5",
            "--trainer.max_epochs -5: must be an integer >= -1 (-1: no limit)",
        ),
        # It finished "(--ckpt_path best or last)" having written no checkpoint.
        (
            "--trainer.max_epochs=0",
            "--trainer.max_epochs 0: a fit trains at least one epoch (-1: no limit)",
        ),
        (
            "--trainer.max_steps=0",
            "--trainer.max_steps 0: a fit trains at least one step (-1: no limit)",
        ),
    ],
)
def test_out_of_range_lightning_values_fail_in_one_line(
    option: str, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["fit", *scripted_args(tmp_path, option)]) == 2
    assert one_error_line(capsys, "fit") == expected


def test_unknown_backbone_names_close_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["fit", *baseline_args(tmp_path, backbone="resnet1")]) == 2
    line = one_error_line(capsys, "fit")
    assert line.startswith("BackboneClassifier: unknown backbone 'resnet1'; did you mean")
    assert "'resnet18'" in line


# ----------------------------------------------------------------- checkpoints
def bad_checkpoints(folder: Path, good: Path) -> dict[str, tuple[Path, str]]:
    """Files that are not Lightning checkpoints, with the reason each message must give."""
    empty = folder / "empty.ckpt"
    empty.write_bytes(b"")
    truncated = folder / "truncated.ckpt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    text = folder / "notes.ckpt"
    text.write_text("not a checkpoint\n")
    # A text whose bytes torch's unpickler read as opcodes ('e' = 101): it ended in KeyError 101.
    words = folder / "words.ckpt"
    words.write_text("hello world\n")
    bare = folder / "bare.pth"
    torch.save({"bias": torch.zeros(1)}, bare)
    return {
        "empty": (empty, f"not a Lightning checkpoint: {empty} (empty file)"),
        "truncated": (truncated, f"not a Lightning checkpoint: {truncated} ("),
        "text": (text, f"not a Lightning checkpoint: {text} ("),
        "words": (
            words,
            f"not a Lightning checkpoint: {words} (not a torch file: it starts with 'hell')",
        ),
        "bare": (bare, f"not a Lightning checkpoint: {bare} (no state_dict; found ['bias'])"),
        "folder": (folder, f"--ckpt_path {folder} is a folder; give a .ckpt file"),
        "missing": (folder / "nope.ckpt", f"--ckpt_path {folder / 'nope.ckpt'}: file not found"),
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """last.ckpt of a one-epoch ScriptedDetector fit (good_epochs [0])."""
    root = tmp_path_factory.mktemp("trained")
    assert main(["fit", *scripted_args(root / "runs", epochs=1)]) == 0
    (last,) = root.glob("runs/scripted_detector-*/synthetic_face/*/checkpoints/last.ckpt")
    return last


def test_bad_checkpoint_files_are_named(trained: Path, tmp_path: Path) -> None:
    for case, (path, expected) in bad_checkpoints(tmp_path, trained).items():
        with pytest.raises((ValueError, OSError)) as error:
            read_checkpoint(path)
        message = str(error.value)
        assert message.startswith(expected) and "\n" not in message, (case, message)
    # A real checkpoint holds only tensors and plain values: it loads with weights_only.
    assert "state_dict" in read_checkpoint(trained, weights_only=True)


def test_bad_ckpt_path_through_the_cli(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.ckpt"
    empty.write_bytes(b"")
    assert main(["test", *scripted_args(tmp_path / "runs", f"--ckpt_path={empty}")]) == 2
    assert one_error_line(capsys, "test") == f"not a Lightning checkpoint: {empty} (empty file)"


def test_configured_model_wins_over_the_checkpoint(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    contents = read_checkpoint(trained)
    saved = {k: v for k, v in contents["hyper_parameters"].items() if not k.startswith("_")}
    assert checkpoint_mismatch(trained, contents, ScriptedDetector, saved) is None
    configured = saved | {"good_epochs": [1], "pretrained": True}  # pretrained does not count
    differs = checkpoint_mismatch(trained, contents, ScriptedDetector, configured)
    assert differs == (
        f"{trained} and the config of cli_helpers.ScriptedDetector differ in "
        "good_epochs (checkpoint [0], config [1])"
    )
    other = checkpoint_mismatch(trained, contents, BackboneClassifier, saved)
    assert other == (
        f"{trained} holds a cli_helpers.ScriptedDetector, but the config builds a "
        "src.detectors.baseline.BackboneClassifier"
    )

    # Through the CLI: an error naming both; --allow_mismatch loads what fits (the bias).
    args = scripted_args(tmp_path / "runs", f"--ckpt_path={trained}")
    assert main(["test", *args, "--model.init_args.good_epochs=[1]"]) == 2
    line = one_error_line(capsys, "test")
    assert line.startswith(differs) and line.endswith(
        "--allow_mismatch true to load the weights whose names and shapes fit"
    )
    assert main(["test", *args, "--model.init_args.good_epochs=[1]", "--allow_mismatch=true"]) == 0
    assert f"--allow_mismatch: loaded 1 tensors from {trained}; 0 keep their initial values" in (
        capsys.readouterr().out
    )


def test_load_matching_copies_only_fitting_tensors() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Linear(3, 1))
    before = model[1].weight.detach().clone()
    state = {"0.weight": torch.ones(3, 2), "0.bias": torch.ones(3), "1.weight": torch.ones(2, 2)}
    loaded, kept = load_matching(model, state)
    assert loaded == 2 and kept == ["1.bias", "1.weight"]
    assert torch.equal(model[0].weight, torch.ones(3, 2))
    assert torch.equal(model[1].weight, before)


# ------------------------------------------------------------------ stacking
def test_config_stacking_order_gives_one_config(capsys: pytest.CaptureFixture[str]) -> None:
    method = str(CONFIGS / "detectors/laa_net.yaml")
    data = str(CONFIGS / "data/cross_dataset_synthetic.yaml")
    printed = []
    for first, second in ((method, data), (data, method)):
        with pytest.raises(SystemExit) as exit_info:
            main(["fit", "-c", first, "-c", second, "--print_config"])
        assert exit_info.value.code == 0
        printed.append(capsys.readouterr().out)
    assert printed[0] == printed[1]
    # laa_net.yaml's batches of 8 win over the data config's 16 either way.
    assert "  batch_size: 8\n" in printed[0]
    assert "class_path: src.augment.sbi.SBI" in printed[0]


def test_stacking_a_method_on_another_datamodule_is_an_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    method = str(CONFIGS / "detectors/laa_net.yaml")
    data = str(CONFIGS / "data/synthetic.yaml")
    reordered = order_configs(["fit", "-c", str(CONFIGS / "trainer/cpu.yaml"), "-c", data], 1)
    assert reordered == ["fit", "-c", data, "-c", str(CONFIGS / "trainer/cpu.yaml")]
    assert main(["fit", "-c", method, "-c", data, "--print_config"]) == 2
    line = one_error_line(capsys, "fit")
    assert line == (
        f"{method} trains with the DataModule src.data.DeepfakeDataModule, but {data} chooses "
        "src.synthetic.SyntheticFaceDataModule: stack a data config of "
        "src.data.DeepfakeDataModule (configs/data/*.yaml)"
    )


# ------------------------------------------------------------------ help and names
MARKUP = ("``", ":mod:", ":class:", ":func:", ":meth:", ":data:", ":attr:")
#: The options of the verbs this suite owns: one name per concept (--out, --cache-dir, --table ...).
OPTIONS = {
    "preprocess": {"--index", "--cache-dir", "--table", "--train-frames", "--eval-frames"},
    "show-augment": {"--table", "--cache-dir", "--out", "--rows", "--seed"},
    "import-laa-net": {"--weights", "--out"},
    "index": {"--dataset", "--root", "--out", "-o"},
    "cam": {"--ckpt-path", "--config", "--out", "--per-class"},
    "show-masks": {"--ckpt-path", "--config", "--out", "--per-class"},
    "export-deepfakebench": {"--cache-dir", "--table", "--out"},
    "prle-maps": {"--zoo", "--config", "--out", "--map-size", "--batch-size"},
    "synth": {"--out", "--datasets", "--frames"},
    "detectors": {"--params"},
}
RETIRED = ("--cache ", "--name ", "--checkpoint ", "--ckpt ", "--results ")


@pytest.mark.parametrize("verb", sorted(OPTIONS))
def test_help_is_plain_text_with_the_shared_option_names(
    verb: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([verb, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert not [mark for mark in MARKUP if mark in text], text
    assert not [flag for flag in RETIRED if flag in text], text
    assert all(f"  {option}" in text or f", {option}" in text for option in OPTIONS[verb]), text
    assert "--debug" in text


def test_lightning_help_is_plain_and_names_the_new_switches(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["test", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert not [mark for mark in MARKUP if mark in text]
    for switch in ("--run_name", "--allow_untrained", "--allow_mismatch", "--ckpt_path"):
        assert switch in text


# ------------------------------------------------------------------ bug or user error
@pytest.mark.parametrize(
    ("raised", "line"),
    [
        (DFBenchError("table x.parquet: no test rows"), "table x.parquet: no test rows"),
        (ConfigError("--model.init_args.k: must be odd"), "--model.init_args.k: must be odd"),
        (
            FileNotFoundError(2, "No such file or directory", "/data/x"),
            "/data/x: No such file or directory",
        ),
        (
            OSError(errno.ENOSPC, "No space left on device", "/cache/a.png"),
            "/cache/a.png: No space left on device",
        ),
    ],
)
def test_the_suites_errors_and_os_errors_on_user_paths_print_one_line(
    raised: Exception,
    line: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def fails(argv: list[str]) -> int:
        raise raised

    monkeypatch.setattr("src.cli.detectors.run", fails)
    assert main(["detectors"]) == 2
    assert one_error_line(capsys, "detectors") == line


@pytest.mark.parametrize(
    "raised",
    [
        ValueError("operands could not be broadcast together"),
        KeyError("video_key"),
        OSError(errno.EIO, "I/O error"),
    ],
)
def test_any_other_error_is_a_bug_with_its_traceback(
    raised: Exception, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A ValueError from numpy or pandas is not bad input: it keeps its traceback and says so."""

    def fails(argv: list[str]) -> int:
        raise raised

    monkeypatch.setattr("src.cli.detectors.run", fails)
    assert main(["detectors"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):")
    assert f"{type(raised).__name__}: " in err
    assert err.strip().splitlines()[-1] == (
        f"dfbench detectors: this is a bug in dfbench, not a problem with your input "
        f"({type(raised).__name__}); please report it with the traceback above"
    )


def test_a_detector_config_that_chooses_the_data_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Its test tables silently replaced the grid's data config's (rc 0, nothing said)."""
    method = tmp_path / "xception_other_tests.yaml"
    method.write_text(
        f"config: {CONFIGS / 'detectors/xception.yaml'}\ndata:\n  init_args:\n    test: [dfd]\n"
    )
    data = str(CONFIGS / "data/cross_dataset_synthetic.yaml")
    assert main(["fit", "-c", data, "-c", str(method), "--print_config"]) == 2
    assert one_error_line(capsys, "fit") == (
        f"{method} sets data.init_args.test, which chooses the data: a detector, profile or "
        "augmentation config sets how a detector trains (batch size, augmentation, "
        "pseudo-fakes), a data config (configs/data/*.yaml) or the command line "
        "(--data.init_args.test=...) which data"
    )
    # The command line chooses the data as it likes.
    with pytest.raises(SystemExit) as printed:
        main(
            [
                "fit",
                "-c",
                data,
                "-c",
                str(CONFIGS / "detectors/xception.yaml"),
                "--data.init_args.test=[dfd]",
                "--print_config",
            ]
        )
    assert printed.value.code == 0
    assert re.search(r"\n +test:\n +- dfd\n", capsys.readouterr().out)
