"""dfbench import-laa-net: the checkpoint it writes from the authors' released file.

The authors' file is faked from the independent list of their tensor names and
shapes (tests/data/laa_net_authors_state_dict.tsv) with random float64 values,
saved as they save it (epoch, state_dict, optimiser state). What the importer
writes must rebuild the authors' configuration and hold each of their tensors
where their model computes it, and ``dfbench test`` must take it.
"""

from __future__ import annotations

import argparse
import importlib
import json
from pathlib import Path

import pytest
import torch
from test_laa_net import authors_state_dict_spec

from src.cli import main
from src.detectors import LAANet

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
#: The authors' released configuration, as their config files give it (docs/laa_net.md).
AUTHORS_ARGS = {
    "backbone": "tf_efficientnet_b4",
    "levels": (6, 5, 4, 3),
    "use_efpn": True,
    "consistency_dim": 256,
    "authors_padding": True,
}


HEADS = ("hm", "cls", "cstency")


def our_names(authors_keys: list[str], our_keys: list[str]) -> dict[str, str]:
    """Our name of each of the authors' tensors, by the rule their layout and ours share.

    The decoder keeps their names under ``decoder.``, the heads keep theirs, and the
    backbone tensors pair up by position (efficientnet_pytorch and timm register a
    block's layers in the order they run).
    """
    theirs_backbone = [key for key in authors_keys if key.startswith("_")]
    ours_backbone = [key for key in our_keys if key.startswith("backbone.")]
    names = dict(zip(theirs_backbone, ours_backbone, strict=True))
    for key in authors_keys:
        if not key.startswith("_"):
            names[key] = key if key.split(".")[0] in HEADS else f"decoder.{key}"
    return names


def fake_authors_tensors() -> dict[str, torch.Tensor]:
    """Tensors under the authors' names and shapes, in their order, as float64 like theirs.

    Values are a freshly built model's (so the network's outputs stay finite) plus
    uniform noise that makes every tensor distinct, so two same-shaped tensors
    swapped by the importer fail the comparison.
    """
    torch.manual_seed(0)
    fresh = LAANet(**AUTHORS_ARGS).state_dict()
    spec = authors_state_dict_spec()
    names = our_names([key for key, _ in spec], list(fresh))
    tensors: dict[str, torch.Tensor] = {}
    for key, shape in spec:
        base = fresh[names[key]]
        assert tuple(base.shape) == shape, key
        if key.startswith("deconv_4.0."):  # their inception block, registered twice
            tensors[key] = tensors[key.replace("deconv_4.0.", "inception_block.", 1)]
        elif base.is_floating_point():
            tensors[key] = base.double() + 0.01 * torch.rand(shape, dtype=torch.float64)
        else:
            tensors[key] = torch.randint(1, 10_000, shape)
    return tensors


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    """(the checkpoint import-laa-net wrote, the authors' tensors it was made from)."""
    folder = tmp_path_factory.mktemp("laa_net_import")
    tensors = fake_authors_tensors()
    authors_file = folder / "LAA-Net_SBI.pth"
    optimiser = {"state": {}, "param_groups": [{"lr": 2e-4, "rho": 0.05, "params": [0, 1]}]}
    torch.save({"epoch": 99, "state_dict": tensors, "optimizer": optimiser}, authors_file)
    out = folder / "laa_net_authors.ckpt"
    assert main(["import-laa-net", "--weights", str(authors_file), "--out", str(out)]) == 0
    return out, tensors


def test_written_checkpoint_rebuilds_the_authors_model_with_their_tensors(
    imported: tuple[Path, dict[str, torch.Tensor]],
) -> None:
    path, tensors = imported
    written = torch.load(path, map_location="cpu", weights_only=True)
    hparams = written["hyper_parameters"]
    module, _, name = hparams["_class_path"].rpartition(".")
    assert getattr(importlib.import_module(module), name) is LAANet
    assert {key: hparams[key] for key in AUTHORS_ARGS} == AUTHORS_ARGS
    assert LAANet(**{k: v for k, v in hparams.items() if not k.startswith("_")}).load_state_dict(
        written["state_dict"], strict=True
    )

    state = written["state_dict"]
    names = our_names(list(tensors), list(state))
    assert sorted(names.values()) == sorted(state) and len(state) == 803
    for theirs, ours in names.items():
        source = tensors[theirs]
        expected = source.float() if source.is_floating_point() else source
        assert state[ours].dtype == expected.dtype, ours
        assert torch.equal(state[ours], expected), f"{theirs} -> {ours}"


def test_dfbench_test_takes_the_written_checkpoint(
    imported: tuple[Path, dict[str, torch.Tensor]], toy_cache, tmp_path: Path
) -> None:
    path, _ = imported
    _, cache, _ = toy_cache
    data = tmp_path / "toy.yaml"
    data.write_text(
        "data:\n  class_path: src.data.DeepfakeDataModule\n"
        f"  init_args: {{cache_dir: {cache}, train: [toy], test: [toy], batch_size: 4}}\n"
    )
    args = ["-c", str(CONFIGS / "detectors/laa_net.yaml"), "-c", str(data)]
    args += ["-c", str(CONFIGS / "trainer/cpu.yaml"), "--model.init_args.authors_padding=true"]
    args += ["--trainer.enable_progress_bar=false", "--trainer.limit_test_batches=1"]
    args += [f"--trainer.default_root_dir={tmp_path}"]
    assert main(["test", *args, f"--ckpt_path={path}"]) == 0
    (metrics,) = tmp_path.rglob("test_metrics.json")
    assert json.loads(metrics.read_text())["toy"]["n_frames"] > 0


def test_an_authors_file_with_python_objects_needs_weights_only_false(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    authors_file = tmp_path / "with_args.pth"
    # Training scripts often save their argparse namespace beside the weights.
    torch.save({"state_dict": {}, "args": argparse.Namespace(lr=2e-4)}, authors_file)
    out = tmp_path / "out.ckpt"
    args = ["import-laa-net", "--weights", str(authors_file), "--out", str(out)]
    assert main(args) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert str(authors_file) in line and "(argparse.Namespace)" in line
    assert "--weights_only false" in line and not out.exists()
    # Trusted, it is read, and found to hold none of the authors' tensors: one line too.
    assert main([*args, "--weights_only", "false"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(
        f"dfbench import-laa-net: {authors_file} does not fit the authors' LAA-Net: 803 "
        "tensor(s) missing, unexpected or of another shape, e.g. backbone.model."
    )
    assert not out.exists()
