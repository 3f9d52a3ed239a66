"""dfbench's LAA-Net computes what the authors' model computes, on the same weights and input.

The reference is ``tests/data/laa_net_authors_forward.json``, made by running the
authors' own code (benchmarks/authors_fixtures/laa_net_forward.py, which says
how to re-make it). Both sides fill every tensor with
``deterministic_weights.fill`` of its name in the authors' state dict and shape;
here the tensors go through dfbench's importer into
``LAANet(**AUTHORS_CONFIG)`` (pretrained=False).

Both sides run in float64, as the authors' scripts do (``PRECISION: float64``).
The weights are float32 values (the dtype their model is built in), so the
importer's cast to float32 loses nothing, and the model is then cast to float64:
arithmetic noise is far below the tolerance, and a mismatch means different
computation. Every number must agree to 1e-5, relative for numbers above 1 in
magnitude, absolute below (``pytest.approx(rel=1e-5, abs=1e-5)``).

Eval mode checks the weights and the running-statistics path; with these weights
the input's signal fades through the backbone in eval mode, so the train-mode
forward (batch statistics at every layer) is the check of each layer's
computation on the input, including the authors' padding quirk, which already
bites at 64 px (:meth:`LAANet.match_authors_padding`). Train mode uses the
authors' layer options (``authors_layers=True``: backbone batch-norm momentum
0.01, the inception block's statistics updated four times per batch) with
dropout and drop path off; their rates are compared separately.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from deterministic_weights import deterministic_input, fill
from test_laa_net import AUTHORS_KEYS, authors_state_dict_spec
from timm.layers import DropPath

from src.detectors import LAANet
from src.detectors.base import DetectorOutput
from src.detectors.laa_net.importer import AUTHORS_CONFIG, authors_to_dfbench, dfbench_to_authors

FIXTURE = Path(__file__).parent / "data" / "laa_net_authors_forward.json"
REFERENCE: dict[str, Any] = json.loads(FIXTURE.read_text())
TOLERANCE = {"rel": 1e-5, "abs": 1e-5}
#: The authors' model registers its inception block twice; the fixture fills both
#: names with the values of the one its forward runs under.
INCEPTION_ALIAS = ("inception_block.", "deconv_4.0.")
#: dfbench arguments for the train-mode forward (see the module docstring).
TRAIN_ARGS = {"authors_layers": True, "feature_dropout": 0.0, "drop_path_rate": 0.0}


@functools.cache
def authors_filled_state() -> dict[str, torch.Tensor]:
    """The authors' state dict, filled as the fixture script fills it (read-only: shared)."""
    state = {
        key: fill(key, shape, torch.int64 if key.endswith("num_batches_tracked") else torch.float32)
        for key, shape in authors_state_dict_spec()
    }
    alias, runtime = INCEPTION_ALIAS
    for key in state:
        if key.startswith(alias):
            state[key] = state[runtime + key.removeprefix(alias)].clone()
    return state


def imported_model(**overrides: Any) -> LAANet:
    """``LAANet(**AUTHORS_CONFIG)`` holding the filled weights, via the importer, in float64."""
    model = LAANet(**(AUTHORS_CONFIG | {"pretrained": False} | overrides))
    model.load_state_dict(authors_to_dfbench(authors_filled_state(), model), strict=True)
    return model.double()


def run(model: LAANet, size: int) -> DetectorOutput:
    images = deterministic_input(REFERENCE["input"]["batch"], size, REFERENCE["input"]["seed"])
    with torch.no_grad():
        return model(images.double())


def assert_map(name: str, values: torch.Tensor, expected: dict[str, Any]) -> None:
    assert list(values.shape) == expected["shape"], name
    flat = values.flatten()
    assert flat.sum().item() == pytest.approx(expected["sum"], **TOLERANCE), f"{name} sum"
    assert flat.abs().sum().item() == pytest.approx(expected["abs_sum"], **TOLERANCE), (
        f"{name} absolute sum"
    )
    for index, value in expected["samples"]:
        assert flat[index].item() == pytest.approx(value, **TOLERANCE), f"{name}[{index}]"


def assert_outputs(output: DetectorOutput, expected: dict[str, Any]) -> None:
    assert output.logit.tolist() == pytest.approx(expected["cls"], **TOLERANCE), "cls logits"
    assert_map("heatmap", output.heatmap, expected["hm"])
    assert_map("consistency", output.consistency, expected["cstency"])


def test_fixture_was_made_on_the_authors_state_dict_listed_here() -> None:
    """The fixture's model has exactly the keys and shapes the importer is tested on."""
    lines = [line for line in AUTHORS_KEYS.read_text().splitlines() if line[:1] != "#"]
    digest = hashlib.sha256("".join(line + "\n" for line in lines).encode()).hexdigest()
    assert {"count": len(lines), "sha256": digest} == REFERENCE["state_dict"]


@pytest.mark.parametrize("size", [64, pytest.param(384, marks=pytest.mark.slow)])
def test_eval_forward_matches_the_authors(size: int) -> None:
    assert_outputs(run(imported_model().eval(), size), REFERENCE["eval"][str(size)])


@pytest.mark.parametrize("size", [64, pytest.param(384, marks=pytest.mark.slow)])
def test_train_forward_and_running_statistics_match_the_authors(size: int) -> None:
    model = imported_model(**TRAIN_ARGS).train()
    assert_outputs(run(model, size), REFERENCE["train"][str(size)])
    if size != 64:
        return
    state = dfbench_to_authors(model.state_dict(), model)
    for prefix, (mean, var, batches) in REFERENCE["train_batch_norm"].items():
        assert state[f"{prefix}.running_mean"].sum().item() == pytest.approx(mean, **TOLERANCE), (
            f"{prefix}.running_mean"
        )
        assert state[f"{prefix}.running_var"].sum().item() == pytest.approx(var, **TOLERANCE), (
            f"{prefix}.running_var"
        )
        assert int(state[f"{prefix}.num_batches_tracked"]) == batches, prefix


def test_dropout_and_drop_path_rates_match_the_authors() -> None:
    """The stochastic layers the forward comparisons switch off: same rates, same blocks."""
    model = LAANet(**(AUTHORS_CONFIG | {"pretrained": False}))
    blocks = [block for stage in model.backbone.model.blocks for block in stage]
    rates = {
        str(index): block.drop_path.drop_prob if isinstance(block.drop_path, DropPath) else 0.0
        for index, block in enumerate(blocks)
        if block.has_skip
    }
    expected = REFERENCE["stochastic"]
    assert rates == pytest.approx(expected["drop_connect"], rel=1e-9)
    assert model.feature_dropout.p == expected["feature_dropout"]
