"""The dfbench command: dispatch, configs, and a fit -> test -> predict round trip."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import timm
import torch
import yaml
from conftest import TINY_SIZE

from src.cli import EXIT_BROKEN_PIPE, VERBS, main
from src.detectors import BackboneClassifier
from src.metrics import compute_metrics

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
DETECTOR_CONFIGS = sorted((CONFIGS / "detectors").glob("*.yaml"))
TRAINER_CONFIGS = sorted((CONFIGS / "trainer").glob("*.yaml"))


def config_chain(path: Path) -> list[Path]:
    """A config file and the files it reads through ``config:``, the included first (as written)."""
    chain = [path]
    while isinstance(included := (yaml.safe_load(chain[0].read_text()) or {}).get("config"), str):
        chain.insert(0, (chain[0].parent / included).resolve())
    return chain


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("fit", "validate", "test", "predict", "detectors"):
        assert f"\n  {command} " in out


def test_unknown_command_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    for flag in ("--version", "-V"):
        assert main([flag]) == 0
        assert capsys.readouterr().out == f"dfbench {version('dfbench')}\n"


def dfbench(*args: str, stdout: int | None = subprocess.PIPE) -> subprocess.CompletedProcess:
    """``python -m src.cli ARGS`` (as the runner launches it) from the repository root."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "src.cli", *args],
        cwd=ROOT,
        env=env,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=300,
    )


def test_help_imports_neither_torch_nor_any_verb() -> None:
    probe = (
        "import sys; from src.cli import main; main(['--help']); "
        "print(sorted(m for m in sys.modules "
        "if m.split('.')[0] in {'torch', 'pytorch_lightning', 'lightning', 'cv2', 'pandas'} "
        "or m.startswith(('src.cli.', 'src.data', 'src.detectors'))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "[]"


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--help"], EXIT_BROKEN_PIPE),
        (["--version"], EXIT_BROKEN_PIPE),
        # argparse ignores a failed write of its help and exits 0.
        (["synth", "--help"], 0),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else "",
)
def test_a_closed_pipe_ends_quietly(args: list[str], code: int) -> None:
    # The reader is gone before dfbench writes (as in `dfbench --help | head -1` at times).
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = dfbench(*args, stdout=write_end)
    finally:
        os.close(write_end)
    assert (result.returncode, result.stderr) == (code, "")


def test_every_verb_module_runs_and_documents_every_option(monkeypatch) -> None:
    class Parsed(Exception):
        pass

    parsers: list[argparse.ArgumentParser] = []

    def capture(self: argparse.ArgumentParser, args=None, namespace=None):  # noqa: ANN001
        parsers.append(self)
        raise Parsed

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    for name, verb in VERBS.items():
        module = importlib.import_module(f"src.cli.{verb.module}")
        assert callable(module.run), name
        if verb.lightning:
            continue
        with pytest.raises(Parsed):
            module.run([])
        parser = parsers.pop()
        assert parser.prog == f"dfbench {name}" and parser.description, name
        undocumented = [
            action.dest
            for action in parser._actions
            if not isinstance(action, argparse._HelpAction) and not action.help
        ]
        assert not undocumented, f"dfbench {name}: options without help: {undocumented}"


def test_synth_verb(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["synth", "--out", str(tmp_path), "--datasets", "dfdcp", "--size", "tiny"]) == 0
    assert (tmp_path / "DFDCP" / "dataset.json").is_file()
    assert "dfdcp" in capsys.readouterr().out
    assert main(["synth", "--out", str(tmp_path), "--datasets", "nope"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("dfbench synth: argument --datasets: invalid choice: 'nope'")


def test_detectors_verb(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["detectors"]) == 0
    lines = capsys.readouterr().out.splitlines()
    by_name = {line.split()[0]: line for line in lines}
    assert {"xception", "efficientnet_b4", "resnet50", "vgg16"} <= set(by_name)
    assert "input 299x299" in by_name["xception"]


@pytest.mark.parametrize("detector", DETECTOR_CONFIGS, ids=lambda p: p.stem)
@pytest.mark.parametrize("trainer", TRAINER_CONFIGS, ids=lambda p: p.stem)
def test_configs_compose(detector: Path, trainer: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A variant file (laa_net_bi, laa_net_authors) names no model class: it stacks on laa_net.yaml.
    # A file that reads another may name its class as a dotted key (panet.yaml).
    specs = [yaml.safe_load(path.read_text()) for path in config_chain(detector)]
    specs = [
        spec | {"model": {"class_path": spec["model.class_path"]}}
        if "model.class_path" in spec
        else spec
        for spec in specs
    ]
    variant = not any("class_path" in spec.get("model", {}) for spec in specs)
    base = CONFIGS / "detectors/laa_net.yaml"
    if variant:
        specs = [yaml.safe_load(base.read_text()), *specs]
    # A method that names its DataModule (LAA-Net: pseudo-fakes) takes a data config of that
    # class (the frame cache of the synthetic copies); the others the in-memory faces.
    data_class = next(
        (s["data"]["class_path"] for s in specs if "class_path" in s.get("data", {})),
        "src.synthetic.SyntheticFaceDataModule",
    )
    data = "cross_dataset_synthetic" if data_class == "src.data.DeepfakeDataModule" else "synthetic"
    args = [
        "fit",
        *(["-c", str(base)] if variant else []),
        "-c",
        str(detector),
        "-c",
        str(CONFIGS / f"data/{data}.yaml"),
        "-c",
        str(trainer),
    ]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--print_config"])
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    # A baseline's file reads the shared settings (class_path among them) through `config:`.
    model_class = next(
        spec["model"]["class_path"] for spec in specs[::-1] if "class_path" in spec.get("model", {})
    )
    assert f"class_path: {model_class}" in printed
    assert f"class_path: {data_class}" in printed


@pytest.mark.parametrize("data", sorted((CONFIGS / "data").glob("*.yaml")), ids=lambda p: p.stem)
def test_data_configs_parse(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        "test",
        "-c",
        str(CONFIGS / "detectors/xception.yaml"),
        "-c",
        str(data),
        "--print_config",
    ]
    if data.stem == "folder":
        args.append("--data.init_args.path=.")
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 0
    specs = [yaml.safe_load(path.read_text()) for path in config_chain(data)]
    data_class = next(
        spec["data"]["class_path"] for spec in specs[::-1] if "class_path" in spec.get("data", {})
    )
    assert data_class.startswith(("src.data.", "src.synthetic."))
    assert f"class_path: {data_class}" in capsys.readouterr().out


def run(command: str, *extra: str, demo: bool = True) -> None:
    configs = ["detectors/xception.yaml", "data/synthetic.yaml", "trainer/cpu.yaml"]
    configs += ["profiles/demo.yaml"] if demo else []
    args = [command]
    for config in configs:
        args += ["-c", str(CONFIGS / config)]
    assert main([*args, f"--model.init_args.input_size={TINY_SIZE}", *extra]) == 0


def test_fit_test_predict_round_trip(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tiny_synthetic_args: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    run("fit", *tiny_synthetic_args)
    out = capsys.readouterr().out
    assert "best checkpoint (val/frame_auc" in out
    (run_dir,) = tmp_path.glob("runs/xception-*/synthetic_face/*")
    checkpoints = sorted(run_dir.glob("checkpoints/*.ckpt"))
    assert {p.name for p in checkpoints} >= {"last.ckpt", "best-epoch000.ckpt"}

    # The paper config says pretrained: true; with a checkpoint nothing is fetched (offline here).
    # (The same configs as the fit: best and last are looked up among runs of the same recipe.)
    run("test", *tiny_synthetic_args, "--model.init_args.pretrained=true", "--ckpt_path=best")
    out = capsys.readouterr().out
    rows = [
        line.split()[:2]
        for line in out.splitlines()
        if line.split()[:2] in (["blend", "frame"], ["matched", "video"])
    ]
    assert len(rows) == 2
    (tested,) = run_dir.glob("test-*/test_metrics.json")
    tested = json.loads(tested.read_text())
    assert set(tested) == {"blend", "matched"}
    assert tested["blend"]["n_frames"] == 15 and tested["blend"]["n_videos"] == 5

    run("predict", *tiny_synthetic_args, "--ckpt_path=best")
    (predictions,) = run_dir.glob("predict-*")
    frames = pd.read_csv(predictions / "frames.csv")
    videos = pd.read_csv(predictions / "videos.csv")
    assert len(frames) == 2 * 15 and len(videos) == 2 * 5
    # Generated faces have no source file; their labels are known.
    assert frames.source_path.isna().all() and frames.label.isin([0, 1]).all()
    assert pd.read_csv(predictions / "skipped.csv").columns.tolist() == ["path", "reason"]
    assert frames.groupby("set").video_key.nunique().to_dict() == {"blend": 5, "matched": 5}
    # The CSV's video scores are the mean of its frame scores ...
    means = frames.groupby(["set", "video_key"]).score.mean()
    assert np.allclose(
        videos.set_index(["set", "video_key"]).score.loc[means.index], means, atol=1e-9
    )
    # ... and the predictions reproduce the test metrics of the same checkpoint.
    for name, part in frames.groupby("set"):
        again = compute_metrics(part.score, part.label, part.video_key)
        for key, value in again.items():
            assert tested[name][key] == pytest.approx(value, abs=1e-6, nan_ok=True), (name, key)


def test_checkpoint_reloads_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_synthetic_args
) -> None:
    monkeypatch.chdir(tmp_path)
    weights = tmp_path / "imagenet_xception.pth"
    torch.save(timm.create_model("legacy_xception").state_dict(), weights)
    run(
        "fit",
        *tiny_synthetic_args,
        "--trainer.limit_train_batches=1",
        "--trainer.limit_val_batches=1",
        f"--model.init_args.pretrained={weights}",
    )
    weights.unlink()
    (last,) = tmp_path.glob("runs/xception-*/synthetic_face/*/checkpoints/last.ckpt")
    # The saved hyper-parameters never ask for the (now deleted) pretrained file again.
    assert torch.load(last, weights_only=False)["hyper_parameters"]["pretrained"] is False
    model = BackboneClassifier.load_from_checkpoint(last).eval()
    assert model.input_contract.input_size == (TINY_SIZE, TINY_SIZE)
    images = torch.randn(2, 3, TINY_SIZE, TINY_SIZE)
    state = torch.load(last, weights_only=False)["state_dict"]
    twin = BackboneClassifier(backbone="legacy_xception", input_size=TINY_SIZE).eval()
    twin.load_state_dict(state)
    with torch.no_grad():
        assert torch.equal(model(images).logit, twin(images).logit)
