"""The SBI detector: the authors' numbers through the importer, the recipe, the grid rows, import-sbi.

``tests/data/sbi_authors_forward.json`` holds what the authors' ``Detector``
(efficientnet_pytorch EfficientNet-B4, two classes) computed with every tensor
filled by ``deterministic_weights.fill`` (made by
``benchmarks/authors_fixtures/sbi_forward.py``, which says how to re-run it).
Here the same tensors, rebuilt from the recorded names and shapes, go through
dfbench's importer, and every recorded number must come out again to 1e-5
(sums: relative 1e-5).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from deterministic_weights import deterministic_input, fill
from torch import Tensor, nn

from src.bench.grid import load_grid
from src.cli import main
from src.detectors import build_detector
from src.detectors.base import Detector, DetectorOutput
from src.detectors.sbi import SBIDetector, load_authors_checkpoint
from src.detectors.training import LinearDecay

ROOT = Path(__file__).resolve().parents[1]
AUTHORS = json.loads((ROOT / "tests/data/sbi_authors_forward.json").read_text())
#: For the train-mode pass: dropout and drop-path off, as the fixture ran the authors' model.
NO_RANDOMNESS = {"drop_rate": 0.0, "backbone_kwargs": {"drop_path_rate": 0.0}}


def authors_state_dict() -> dict[str, Tensor]:
    """The authors' tensors, from the recorded ``key:shape`` list, filled as the fixture filled them."""
    state = {}
    for entry in AUTHORS["state_dict"]:
        key, _, dims = entry.rpartition(":")
        shape = tuple(int(size) for size in dims.split(",") if size)
        dtype = torch.int64 if key.endswith("num_batches_tracked") else torch.float32
        state[key] = fill(key, shape, dtype)
    return state


@pytest.fixture(scope="module")
def authors_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The filled tensors saved as the authors' train_sbi.py saves a checkpoint."""
    path = tmp_path_factory.mktemp("sbi_authors") / "FFraw.tar"
    optimiser = {"state": {}, "param_groups": [{"lr": 4e-5, "rho": 0.05, "momentum": 0.9}]}
    torch.save({"model": authors_state_dict(), "optimizer": optimiser, "epoch": 99}, path)
    return path


def run(model: SBIDetector, images: Tensor) -> tuple[Tensor, list[Tensor]]:
    """(logits, the output of each of the backbone's 7 stages)."""
    stages: list[Tensor] = []
    hooks = [
        stage.register_forward_hook(lambda m, i, o: stages.append(o.detach()))
        for stage in model.backbone.blocks
    ]
    with torch.no_grad():
        logit = model(images).logit
    for hook in hooks:
        hook.remove()
    return logit, stages


def assert_reproduces(recorded: dict, logit: Tensor, stages: list[Tensor]) -> None:
    close = {"rtol": 1e-5, "atol": 1e-5}
    # Stage by stage first: with these weights the logit hardly depends on the first stages.
    assert len(stages) == len(recorded["stages"]) == 7
    for index, (ours, theirs) in enumerate(zip(stages, recorded["stages"], strict=True)):
        assert list(ours.shape) == theirs["shape"], f"stage {index}"
        flat = ours.double().flatten()
        picks = torch.linspace(0, flat.numel() - 1, 7).round().long()
        np.testing.assert_allclose(
            flat[picks].numpy(), theirs["samples"], err_msg=f"stage {index}", **close
        )
        np.testing.assert_allclose(
            [float(flat.sum()), float(flat.abs().sum())],
            [theirs["sum"], theirs["abs_sum"]],
            err_msg=f"stage {index}",
            **close,
        )
    np.testing.assert_allclose(logit.numpy(), recorded["logit"], **close)
    np.testing.assert_allclose(torch.sigmoid(logit).numpy(), recorded["softmax_fake"], **close)


# ------------------------------------------------------------------ the authors' numbers
def test_imported_weights_reproduce_the_authors_eval_outputs(authors_file: Path) -> None:
    model = load_authors_checkpoint(authors_file).eval()
    size = AUTHORS["input"]
    assert_reproduces(
        AUTHORS["eval"], *run(model, deterministic_input(size["batch"], size["size"]))
    )


def test_imported_weights_reproduce_the_authors_train_mode_and_batch_statistics(
    authors_file: Path,
) -> None:
    """In float64, as the fixture ran it: batch statistics of 2 faces are ill-conditioned in float32."""
    model = load_authors_checkpoint(authors_file, **NO_RANDOMNESS).double().train()
    size = AUTHORS["input"]
    images = deterministic_input(size["batch"], size["size"]).double()
    assert_reproduces(AUTHORS["train"], *run(model, images))
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == AUTHORS["train"]["batch_norms"]
    sums = [
        sum(float(getattr(m, name).double().sum()) for m in norms)
        for name in ("running_mean", "running_var")
    ]
    np.testing.assert_allclose(
        sums, [AUTHORS["train"]["running_mean_sum"], AUTHORS["train"]["running_var_sum"]], rtol=1e-5
    )


@pytest.mark.slow
def test_imported_weights_reproduce_the_authors_outputs_at_380_px(authors_file: Path) -> None:
    model = load_authors_checkpoint(authors_file).eval()
    recorded = AUTHORS["eval_380"]
    assert_reproduces(
        recorded, *run(model, deterministic_input(recorded["batch"], recorded["size"]))
    )


def test_loss_is_the_authors_cross_entropy(authors_file: Path) -> None:
    """BCE on the imported logit = their 2-class cross-entropy, from their recorded class scores."""
    model = load_authors_checkpoint(authors_file).eval()
    size = AUTHORS["input"]
    with torch.no_grad():
        logits = model(deterministic_input(size["batch"], size["size"])).logit
    # Face by face and with either label: the two faces' logits are nearly equal here, and a
    # batch mean over both labels would not tell a logit from its negative.
    for face, (z0, z1) in enumerate(AUTHORS["eval"]["class_scores"]):
        for label in (0.0, 1.0):
            output = DetectorOutput(logit=logits[face : face + 1])
            loss = model.loss(output, {"label": torch.tensor([label])})["loss"]
            cross_entropy = math.log(math.exp(z0) + math.exp(z1)) - (z1 if label else z0)
            assert float(loss) == pytest.approx(cross_entropy, abs=1e-6), (face, label)


# ---------------------------------------------------------------------- the detector
def test_registered_sbi_is_the_authors_network() -> None:
    model = build_detector("sbi")
    assert model.input_contract == type(model.input_contract)((380, 380), (0.0,) * 3, (1.0,) * 3)
    assert AUTHORS["config"]["image_size"] == 380
    # One logit where the authors have two classes: one row of 1792 weights and a bias fewer.
    assert sum(p.numel() for p in model.parameters()) == AUTHORS["parameters"] - (1792 + 1)
    assert model.head.dropout.p == AUTHORS["config"]["dropout_rate"]
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert {(m.momentum, m.eps) for m in norms} == {
        (AUTHORS["config"]["batch_norm_momentum"], AUTHORS["config"]["batch_norm_eps"])
    }
    # efficientnet_pytorch: block n of N drops its residual branch with p = rate * n / N.
    blocks = [block for stage in model.backbone.blocks for block in stage]
    count = len({e.split(".")[2] for e in AUTHORS["state_dict"] if e.startswith("net._blocks.")})
    assert len(blocks) == count == 32
    rates = [getattr(block.drop_path, "drop_prob", 0.0) for block in blocks]
    expected = [AUTHORS["config"]["drop_connect_rate"] * n / count for n in range(count)]
    np.testing.assert_allclose(rates, expected, rtol=1e-12)


def test_forward_shape_and_loss_against_a_hand_computed_bce() -> None:
    model = SBIDetector(input_size=64).eval()
    with torch.no_grad():
        assert model(torch.rand(3, 3, 64, 64)).logit.shape == (3,)
    output = DetectorOutput(logit=torch.tensor([2.0, -1.0, 0.5]))
    loss = model.loss(output, {"label": torch.tensor([1.0, 0.0, 0.0])})
    expected = (
        math.log1p(math.exp(-2.0)) + math.log1p(math.exp(-1.0)) + math.log1p(math.exp(0.5))
    ) / 3
    assert float(loss["loss"]) == pytest.approx(expected, abs=1e-6)
    assert float(loss["bce"]) == pytest.approx(expected, abs=1e-6)


def test_default_recipe_is_sam_around_sgd_with_linear_decay() -> None:
    model = SBIDetector(input_size=64)
    assert model.sam is not None and model.sam.rho == 0.05
    config = model.configure_optimizers()
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    assert isinstance(optimizer, torch.optim.SGD)
    assert optimizer.defaults["lr"] == 1e-3 and optimizer.defaults["momentum"] == 0.9
    assert optimizer.defaults["weight_decay"] == 0
    assert isinstance(scheduler, LinearDecay) and scheduler.levels == 100
    assert scheduler.decay_start == 0.75 and scheduler.end_factor == 0


# -------------------------------------------------------------------- the schedule
def learning_rates(schedule: LinearDecay, steps: int) -> list[float]:
    rates = []
    for _ in range(steps):
        rates.append(schedule.optimizer.param_groups[0]["lr"])
        schedule.optimizer.step()
        schedule.step()
    return rates


def test_linear_decay_with_100_levels_is_the_authors_per_epoch_schedule() -> None:
    """Their LinearDecayLR(optimizer, 100, 75) at lr 1e-3, written out by hand, 2 steps an epoch."""
    per_epoch = [1e-3] * 76 + [1e-3 * (25 - k) / 25 for k in range(1, 25)]
    assert per_epoch[76] == pytest.approx(9.6e-4) and per_epoch[99] == pytest.approx(4e-5)
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1e-3)
    schedule = LinearDecay(optimizer, decay_start=0.75, levels=100, total_steps=200)
    np.testing.assert_allclose(
        learning_rates(schedule, 200), [lr for lr in per_epoch for _ in range(2)], rtol=1e-12
    )


def test_linear_decay_without_levels_changes_every_step() -> None:
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    schedule = LinearDecay(optimizer, decay_start=0.5, end_factor=0.2, total_steps=8)
    # Constant through step floor(8 * 0.5) = 4, then 1 - 0.8 * (step - 4) / 4.
    expected = [0.1] * 5 + [0.1 * 0.8, 0.1 * 0.6, 0.1 * 0.4]
    np.testing.assert_allclose(learning_rates(schedule, 8), expected, rtol=1e-12)


# ------------------------------------------------------------------- the grid rows
@pytest.mark.parametrize(
    ("grid", "train_sets"),
    [("cross_dataset", ["ffpp_c23"]), ("in_dataset", ["ffpp_c23", "ffpp_c40"])],
)
def test_paper_profile_has_sbi_rows_and_the_demo_profile_none(
    grid: str, train_sets: list[str]
) -> None:
    path = ROOT / f"benchmarks/{grid}.yaml"
    cells = [cell for cell in load_grid(path, "paper") if cell.detector == "sbi"]
    assert [cell.train_set for cell in cells] == train_sets
    for cell in cells:
        assert cell.configs[-1] == "configs/detectors/sbi.yaml"
        model, data = cell.config["model"], cell.config["data"]["init_args"]
        assert model["class_path"] == "src.detectors.sbi.SBIDetector"
        assert (
            model["init_args"]["lr_scheduler"]["class_path"] == "src.detectors.training.LinearDecay"
        )
        assert data["pseudo_fake"]["init_args"]["variant"] == "sbi"
        assert data["batch_size"] == 16 and data["train_frames_per_video"] == 8
        assert data["train"] == [cell.train_set]
        assert cell.config["trainer"]["max_epochs"] == 100
    assert all(cell.detector != "sbi" for cell in load_grid(path, "demo"))


# --------------------------------------------------------------------- import-sbi
@pytest.fixture(scope="module")
def imported(authors_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The checkpoint ``dfbench import-sbi`` wrote from the authors' file."""
    out = tmp_path_factory.mktemp("sbi_import") / "sbi_authors.ckpt"
    assert main(["import-sbi", "--weights", str(authors_file), "--out", str(out)]) == 0
    return out


def test_import_sbi_writes_a_checkpoint_that_rebuilds_the_authors_detector(
    imported: Path,
) -> None:
    written = torch.load(imported, map_location="cpu", weights_only=True)
    assert written["hyper_parameters"]["_class_path"] == "src.detectors.sbi.SBIDetector"
    assert len(written["state_dict"]) == len(AUTHORS["state_dict"])
    theirs = authors_state_dict()
    head = written["state_dict"]
    weight, bias = theirs["net._fc.weight"], theirs["net._fc.bias"]
    assert torch.equal(head["head.fc.weight"][0], weight[1] - weight[0])
    assert torch.equal(head["head.fc.bias"][0], bias[1] - bias[0])
    model = Detector.from_checkpoint(imported).eval()
    size = AUTHORS["input"]
    with torch.no_grad():
        logit = model(deterministic_input(size["batch"], size["size"])).logit
    np.testing.assert_allclose(logit.numpy(), AUTHORS["eval"]["logit"], rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_dfbench_test_takes_the_imported_checkpoint(
    imported: Path, toy_cache, tmp_path: Path
) -> None:
    toy, cache, _ = toy_cache
    data = tmp_path / "toy.yaml"
    data.write_text(
        "data:\n  class_path: src.data.DeepfakeDataModule\n"
        f"  init_args: {{cache_dir: {cache}, train: [toy], test: [toy], batch_size: 2}}\n"
    )
    args = ["-c", str(ROOT / "configs/detectors/sbi.yaml"), "-c", str(data)]
    args += ["-c", str(ROOT / "configs/trainer/cpu.yaml"), "--trainer.enable_progress_bar=false"]
    args += [f"--trainer.default_root_dir={tmp_path}"]
    assert main(["test", *args, f"--ckpt_path={imported}"]) == 0
    (metrics,) = tmp_path.rglob("test_metrics.json")
    tested = json.loads(metrics.read_text())["toy"]["n_frames"]
    assert tested == (toy.frames["split"] == "test").sum()


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (
            {"net._fc.weight": torch.zeros(3, 1792), "net._fc.bias": torch.zeros(3)},
            "is not the authors' SBI detector: a tensor name outside their model "
            "(net._fc.weight has 3 classes, their model has 2)",
        ),
        (
            {"_conv_stem.weight": torch.zeros(48, 3, 3, 3)},
            "is not the authors' SBI detector: a tensor name outside their model ('_conv_stem.weight')",
        ),
        (
            {"net._conv_stem.weight": torch.zeros(48, 3, 3, 3)},
            "does not fit the authors' SBI detector: 705 tensor(s) missing, unexpected or of "
            "another shape, e.g. backbone.",
        ),
    ],
)
def test_a_file_that_is_not_theirs_fails_in_one_line(
    model: dict[str, Tensor], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "other.tar"
    torch.save({"model": model, "epoch": 3}, path)
    out = tmp_path / "out.ckpt"
    assert main(["import-sbi", "--weights", str(path), "--out", str(out)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"dfbench import-sbi: {path} {message}"), line
    assert not out.exists()
