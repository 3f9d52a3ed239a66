"""dfbench's RECCE against the authors' own model (github.com/VISION-SJTU/RECCE), number for number.

tests/data/recce_authors_forward.json holds what their ``Recce(num_classes=1)``
computed (made by benchmarks/authors_fixtures/recce_forward.py with their code)
with every tensor filled by :func:`deterministic_weights.fill_state_dict`;
tests/data/recce_authors_state_dict.tsv lists their tensors. Here the same
filled tensors, under their names and saved as their trainer saves them, go
through the importer into dfbench's RECCE, which must give the same logits,
reconstruction, metric-loss correlations and inner outputs to 1e-5 (relative
to each map's scale), in eval mode and in one train-mode forward (same seed:
noise and dropout draw the same numbers), and the same batch-norm running
statistics afterwards. The forwards run in float64, as the fixture's did: in
float32, rounding amplified by the batch statistics of the small deep maps
moves train-mode logits by up to about 1e-4, more than the tolerance; a
float32 eval forward is compared too.
"""

from __future__ import annotations

import argparse
import copy
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from deterministic_weights import deterministic_input, fill_state_dict
from torch import Tensor

from src.cli import main
from src.detectors.base import Detector
from src.detectors.recce import RECCE
from src.detectors.recce_importer import authors_to_dfbench, load_authors_checkpoint

DATA = Path(__file__).parent / "data"
FIXTURE = json.loads((DATA / "recce_authors_forward.json").read_text())
TOLERANCE = 1e-5
#: Their modules whose outputs the fixture records -> the dfbench modules that compute them.
INNER = {
    "encoder.block4": "backbone.model.block4",
    "decoder2": "decoder.block1",
    "decoder4": "decoder.block2",
    "reasoning": "reasoning",
    "attention": "guided_attention",
    "encoder.act4": "backbone.model.act4",
}


def authors_state_dict_spec() -> list[tuple[str, tuple[int, ...], torch.dtype]]:
    """(key, shape, dtype) of every tensor of the authors' model, in their state-dict order."""
    rows = [
        line.split("\t")
        for line in (DATA / "recce_authors_state_dict.tsv").read_text().splitlines()
        if line[:1] != "#"
    ]
    return [
        (key, () if shape == "-" else tuple(map(int, shape.split("x"))), getattr(torch, dtype))
        for key, shape, dtype in rows
    ]


@pytest.fixture(scope="module")
def authors_tensors() -> dict[str, Tensor]:
    """Their tensors, filled as the fixture script filled them, in their order."""
    spec = authors_state_dict_spec()
    return fill_state_dict({key: torch.empty(shape, dtype=dtype) for key, shape, dtype in spec})


@pytest.fixture(scope="module")
def authors_file(
    tmp_path_factory: pytest.TempPathFactory, authors_tensors: dict[str, Tensor]
) -> Path:
    """The filled tensors in the layout of their trainer's best_model_STEP.bin."""
    path = tmp_path_factory.mktemp("recce_authors") / "best_model_1000.bin"
    torch.save(
        {
            "step": 1000,
            "best_step": 1000,
            "best_metric": torch.tensor(0.9),
            "eval_metric": "Acc",
            "model": authors_tensors,
            "optimizer": {"state": {}, "param_groups": [{"lr": 2e-4, "params": [0]}]},
            "scheduler": {"step_size": 22500, "gamma": 0.5},
        },
        path,
    )
    return path


@pytest.fixture(scope="module")
def imported(authors_file: Path) -> RECCE:
    """dfbench's RECCE loaded from that file by the importer (copy it before changing it)."""
    return load_authors_checkpoint(authors_file)


@contextmanager
def forward_settings(dtype: torch.dtype) -> Iterator[None]:
    """Tensors made without a dtype (the noise draws) are of ``dtype``; one CPU thread.

    Xception's depthwise convolutions run as one small convolution per channel in
    float64; handing each to a thread pool costs far more than it saves.
    """
    before = torch.get_default_dtype(), torch.get_num_threads()
    torch.set_default_dtype(dtype)
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_default_dtype(before[0])
        torch.set_num_threads(before[1])


def run(model: RECCE, train: bool, dtype: torch.dtype = torch.float64) -> tuple[Any, dict]:
    """One forward of the fixture's input as training or testing runs it, and the inner outputs."""
    inner: dict[str, Tensor] = {}
    hooks = [
        model.get_submodule(ours).register_forward_hook(
            lambda module, args, output, name=theirs: inner.__setitem__(name, output.clone())
        )
        for theirs, ours in INNER.items()
    ]
    spec = FIXTURE["input"]
    images = deterministic_input(spec["batch"], spec["size"], spec["seed"]).to(dtype)
    model.to(dtype).train(train)
    with forward_settings(dtype), torch.no_grad():
        torch.manual_seed(FIXTURE["train_seed"])
        output = model.step_forward({"image": images})
    for hook in hooks:
        hook.remove()
    return output, inner


def assert_map(actual: Tensor, expected: dict[str, Any], what: str) -> None:
    """A map against the fixture's summary of it, to 1e-5 of its mean absolute value."""
    assert list(actual.shape) == expected["shape"], what
    values = actual.double()
    scale = expected["abs_sum"] / values.numel()
    assert values.sum().item() == pytest.approx(
        expected["sum"], abs=TOLERANCE * expected["abs_sum"]
    ), f"{what}: sum"
    assert values.abs().sum().item() == pytest.approx(expected["abs_sum"], rel=TOLERANCE), what
    per_sample = expected["abs_sum"] / len(expected["sample_sums"])
    assert values.flatten(1).sum(1).tolist() == pytest.approx(
        expected["sample_sums"], abs=TOLERANCE * per_sample
    ), f"{what}: per-sample sums"
    flat = values.flatten()
    for index, value in expected["samples"]:
        assert flat[index].item() == pytest.approx(value, rel=TOLERANCE, abs=TOLERANCE * scale), (
            f"{what}[{index}]"
        )


def assert_outputs(output: Any, inner: dict[str, Tensor], expected: dict[str, Any]) -> None:
    assert output.logit.tolist() == pytest.approx(expected["logits"], abs=TOLERANCE)
    assert_map(output.reconstruction, expected["reconstruction"], "reconstruction")
    # Their metric loss reads (cos + 1) / 2 of the pooled, L2-normalised embeddings.
    for name, correlation in zip(output.extras, expected["correlations"], strict=True):
        unit = F.normalize(output.extras[name].double(), dim=1)
        ours = ((unit @ unit.T + 1) / 2).tolist()
        for row, expected_row in zip(ours, correlation, strict=True):
            assert row == pytest.approx(expected_row, abs=TOLERANCE), name
    for name, summary in expected["inner"].items():
        assert_map(inner[name], summary, f"{name} ({INNER[name]})")


def test_the_authors_tensors_map_one_to_one_onto_recce(
    authors_tensors: dict[str, Tensor], imported: RECCE
) -> None:
    """Every tensor of theirs but timm's unused classifier has one place in RECCE.

    Which place is checked by the forwards below: two same-shaped tensors swapped
    (the two graph-reasoning gates, say) change their numbers.
    """
    assert len(authors_tensors) == 362
    weights = authors_to_dfbench(authors_tensors)
    own = imported.state_dict()
    assert sorted(weights.state_dict) == sorted(own)
    assert weights.unused == ["encoder.fc.weight", "encoder.fc.bias"]
    assert weights.classes == 1
    assert sorted(weights.origin.values()) == sorted(set(authors_tensors) - set(weights.unused))
    for ours, theirs in weights.origin.items():  # what the file held is what the model holds
        assert torch.equal(own[ours], authors_tensors[theirs]), f"{theirs} -> {ours}"


def test_eval_forward_matches_the_authors(imported: RECCE) -> None:
    output, inner = run(copy.deepcopy(imported), train=False)
    assert_outputs(output, inner, FIXTURE["eval"])


def test_float32_eval_forward_matches_the_authors(imported: RECCE) -> None:
    """Logits and reconstruction (the graph reasoning's small residual is a difference of
    large terms, so its own values carry float32 rounding of about 1e-4 of their scale)."""
    output, _ = run(copy.deepcopy(imported), train=False, dtype=torch.float32)
    expected = FIXTURE["eval_float32"]
    assert output.logit.tolist() == pytest.approx(expected["logits"], abs=TOLERANCE)
    assert_map(output.reconstruction, expected["reconstruction"], "reconstruction")


@pytest.mark.parametrize("case", ["train", f"train_noise_{FIXTURE['raised_noise_std']}"])
def test_train_forward_and_batch_norm_statistics_match_the_authors(
    imported: RECCE, case: str
) -> None:
    """Their noise (std 1e-6; raised to 0.1 to be seen), dropout and batch statistics."""
    model = copy.deepcopy(imported)
    assert model.noise_std == 1e-6 and model.noise_probability == 0.5  # their setting
    if case != "train":
        model.noise_std = FIXTURE["raised_noise_std"]
    output, inner = run(model, train=True)
    assert_outputs(output, inner, FIXTURE[case])
    modules = dict(model.named_modules())
    for theirs, (mean_sum, var_sum) in FIXTURE[case]["batch_norm_sums"].items():
        ours = modules[authors_to_dfbench_module(theirs)]
        assert ours.running_mean.double().sum().item() == pytest.approx(
            mean_sum, rel=TOLERANCE, abs=TOLERANCE
        ), f"{theirs}.running_mean"
        assert ours.running_var.double().sum().item() == pytest.approx(var_sum, rel=TOLERANCE), (
            f"{theirs}.running_var"
        )
        assert int(ours.num_batches_tracked) == 1, theirs


def authors_to_dfbench_module(name: str) -> str:
    """dfbench's name of one of their batch-norm layers, by the importer's renaming of its weight."""
    weights = authors_to_dfbench({f"{name}.weight": torch.ones(1)})
    (ours,) = weights.state_dict
    return ours.removesuffix(".weight")


# ------------------------------------------------------------------ dfbench import-recce
CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("dfbench import-recce: "), line
    return line.removeprefix("dfbench import-recce: ")


@pytest.fixture(scope="module")
def written(authors_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("recce_import") / "recce_authors.ckpt"
    assert main(["import-recce", "--weights", str(authors_file), "--out", str(out)]) == 0
    return out


def test_import_recce_writes_a_checkpoint_of_recce_with_their_tensors(
    written: Path, authors_tensors: dict[str, Tensor], capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = torch.load(written, map_location="cpu", weights_only=True)
    hparams = checkpoint["hyper_parameters"]
    assert hparams["_class_path"] == "src.detectors.recce.RECCE"
    model = RECCE(**{k: v for k, v in hparams.items() if not k.startswith("_")})
    model.load_state_dict(checkpoint["state_dict"], strict=True)
    # As their config trains: one logit, schedule stepped per iteration, their noise.
    assert (model.noise_std, model.scheduler_interval) == (1e-6, "step")
    state = checkpoint["state_dict"]
    assert len(state) == 360 and all(
        value.dtype in (torch.float32, torch.int64) for value in state.values()
    )
    assert torch.equal(
        state["reasoning.branches.1.score.weight"],
        authors_tensors["reasoning.reweight_ac.0.weight"],
    )
    assert torch.equal(
        state["decoder.block2.rep.8.running_var"], authors_tensors["decoder4.rep.8.running_var"]
    )


def test_the_imported_checkpoint_loads_as_dfbench_loads_trained_detectors(
    written: Path, imported: RECCE
) -> None:
    loaded = Detector.from_checkpoint(written)  # as cam, show-masks and prle-maps load
    assert type(loaded) is RECCE and loaded.scheduler_interval == "step"
    expected = imported.state_dict()
    assert all(torch.equal(value, expected[key]) for key, value in loaded.state_dict().items())


@pytest.mark.slow
def test_dfbench_test_takes_the_imported_checkpoint(
    written: Path, toy_cache, tmp_path: Path
) -> None:
    _, cache, _ = toy_cache
    data = tmp_path / "toy.yaml"
    data.write_text(
        "data:\n  class_path: src.data.DeepfakeDataModule\n"
        f"  init_args: {{cache_dir: {cache}, train: [toy], test: [toy], batch_size: 2}}\n"
    )
    args = ["-c", str(CONFIGS / "detectors/recce.yaml"), "-c", str(data)]
    args += ["-c", str(CONFIGS / "trainer/cpu.yaml"), "--trainer.limit_test_batches=1"]
    args += ["--trainer.enable_progress_bar=false", f"--trainer.default_root_dir={tmp_path}"]
    assert main(["test", *args, f"--ckpt_path={written}"]) == 0
    (metrics,) = tmp_path.rglob("test_metrics.json")
    assert json.loads(metrics.read_text())["toy"]["n_frames"] > 0


def test_a_bare_two_class_half_state_dict_of_the_ddp_wrapper_is_converted_exactly(
    authors_tensors: dict[str, Tensor], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``module.`` keys, float16 and ``num_classes: 2``: sigmoid of the logit = their softmax[1]."""
    tensors = {f"module.{key}": value for key, value in authors_tensors.items()}
    generator = torch.Generator().manual_seed(0)
    tensors["module.fc.weight"] = torch.randn(2, 2048, generator=generator) / 40
    tensors["module.fc.bias"] = torch.tensor([0.3, -0.2])
    tensors = {k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}
    path = tmp_path / "recce_2class.pth"
    torch.save(tensors, path)
    out = tmp_path / "out.ckpt"
    assert main(["import-recce", "--weights", str(path), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "two-class head became one logit" in printed and "imported 360 tensors" in printed
    checkpoint = torch.load(out, map_location="cpu", weights_only=True)
    model = RECCE(**{k: v for k, v in checkpoint["hyper_parameters"].items() if k[0] != "_"})
    model.load_state_dict(checkpoint["state_dict"], strict=True)
    features = torch.rand(5, 2048, generator=generator) * 3
    their_weight = tensors["module.fc.weight"].double()
    their_bias = tensors["module.fc.bias"].double()
    softmax = F.linear(features.double(), their_weight, their_bias).softmax(dim=1)[:, 1]
    with torch.no_grad():
        ours = torch.sigmoid(model.head.eval()(features).double())
    assert ours.tolist() == pytest.approx(softmax.tolist(), abs=1e-6)


def test_files_that_are_not_their_recce_fail_in_one_line(
    authors_tensors: dict[str, Tensor], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.ckpt"

    def refused(name: str, contents: object) -> str:
        path = tmp_path / name
        if isinstance(contents, bytes):
            path.write_bytes(contents)
        else:
            torch.save(contents, path)
        assert main(["import-recce", "--weights", str(path), "--out", str(out)]) == 2
        assert not out.exists()
        line = one_error_line(capsys)
        assert str(path) in line
        return line

    assert "not a torch file" in refused("notes.bin", b"model weights\n")
    assert refused("stats.bin", {"step": 3, "best_metric": 0.9}).endswith(
        "is not the RECCE authors' checkpoint: expected their trainer's .bin (a dict with a "
        "'model' state dict) or a state dict of tensors; found ['best_metric', 'step']"
    )
    damaged = dict(authors_tensors)
    del damaged["decoder6.0.weight"]
    damaged["fc.weight"] = torch.zeros(3, 2048)
    damaged["head.extra"] = torch.zeros(1)
    assert refused("damaged.bin", {"model": damaged}).endswith(
        "does not fit the authors' RECCE (tensors by their names): 1 missing, e.g. "
        "decoder6.0.weight; 1 unexpected, e.g. head.extra; 1 of another shape, e.g. "
        "fc.weight 3x2048 (expected 1x2048)"
    )


def test_an_authors_file_with_python_objects_needs_weights_only_false(
    authors_tensors: dict[str, Tensor], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "with_args.bin"
    torch.save({"model": authors_tensors, "args": argparse.Namespace(lr=2e-4)}, path)
    out = tmp_path / "out.ckpt"
    args = ["import-recce", "--weights", str(path), "--out", str(out)]
    assert main(args) == 2
    line = one_error_line(capsys)
    assert str(path) in line and "(argparse.Namespace)" in line
    assert "--weights_only false" in line and not out.exists()
    assert main([*args, "--weights_only", "false"]) == 0
    assert out.is_file()
