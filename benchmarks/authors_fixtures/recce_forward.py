"""Make the RECCE forward-equivalence fixture with the authors' own model code.

Fills every tensor of the authors' ``Recce(num_classes=1)`` (github.com/VISION-SJTU/RECCE,
``model/network/Recce.py``, the configuration of their ``config/Recce.yml``) with
``tests/deterministic_weights.fill_state_dict``, runs it on
``deterministic_input(4, 80)`` and writes:

* ``tests/data/recce_authors_state_dict.tsv``: their state-dict keys, shapes and
  dtypes, in their order (what ``tests/test_recce_equivalence.py`` rebuilds);
* ``tests/data/recce_authors_forward.json``: the numbers their forward gives.

Each forward runs on a freshly filled model, in float64 (model, input, and
torch's default dtype, so that their noise is drawn in float64 too): in
float32, rounding in a train-mode forward is amplified by the batch
statistics of the small deep maps to about 1e-4 of the logits, which would
hide a real difference of that size; in float64 the two implementations agree
to about 1e-12. Four cases:

* ``eval``: logits, the reconstruction (sums and sampled values), the three
  correlation matrices their forward leaves in ``loss_inputs["contra"]`` and the
  outputs of six inner modules (:data:`INNER`, read by forward hooks: their
  forward is unchanged), whose own scale makes a difference in a branch that
  contributes little to the logit (the graph reasoning's residual) visible;
* ``eval_float32``: logits and reconstruction of the same in float32, the
  precision both run in;
* ``train``: one train-mode forward after ``torch.manual_seed(TRAIN_SEED)``, their
  code unchanged (white noise of std 1e-6 on the samples whose ``torch.rand``
  draw exceeds 0.5, dropout 0.2 at four places): the same outputs, then the
  running mean and variance sums of every batch-norm layer;
* ``train_noise_0.1``: the same with their noise std raised to 0.1 (the default
  argument of their ``add_white_noise``; nothing else changes), so that the
  noise moves every map, not only through batch statistics (with these filled
  weights std 1e-6 already moves train-mode logits by up to 0.08, through the
  batch statistics of nearly constant channels).

80 px keeps the fixture fast and still runs every path (block4 and block7 are
5 x 5, an odd size, so the graph reasoning tiles 10 x 10 and 20 x 20 decoder
maps; the reconstruction is resized from 40 to 80 px).

Shims (the computation is unchanged): their ``from timm.models import xception``
is timm 0.3.4's Xception, which timm 1.x keeps as ``legacy_xception`` with the
same modules and state-dict keys; ``timm.models.xception`` is pointed at it,
with ``pretrained=False`` (no network, and every weight is overwritten anyway).

Re-run (from the dfbench checkout, with its virtual environment)::

    mkdir -p /tmp/RECCE && git -C RECCE_GIT_DIR archive HEAD | tar -x -C /tmp/RECCE
    PYTHONPATH=$PWD .venv/bin/python benchmarks/authors_fixtures/recce_forward.py /tmp/RECCE \
        --commit $(git -C RECCE_GIT_DIR rev-parse HEAD)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import timm
import timm.models
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from deterministic_weights import deterministic_input, fill_state_dict  # noqa: E402

BATCH, SIZE, INPUT_SEED = 4, 80, 0
#: Chosen so that their noise lands on some samples of the batch, not on none or all.
TRAIN_SEED = 2021
RAISED_NOISE_STD = 0.1
#: How many values of a map are sampled (evenly spaced flat indices).
SAMPLES = 16
#: Inner outputs recorded, by the authors' module name.
INNER = (
    "encoder.block4",
    "decoder2",
    "decoder4",
    "reasoning",
    "attention",
    "encoder.act4",
)


def load_authors_recce(checkout: Path) -> type[torch.nn.Module]:
    """Their ``Recce`` class, with ``timm.models.xception`` pointed at ``legacy_xception``."""

    def xception(pretrained: bool = False, **kwargs: object) -> torch.nn.Module:
        return timm.create_model("legacy_xception", pretrained=False, **kwargs)

    timm.models.xception = xception
    sys.path.insert(0, str(checkout))
    from model.network.Recce import Recce

    return Recce


def summary(tensor: torch.Tensor) -> dict[str, object]:
    """Shape, sum, sum of absolute values, per-sample sums and evenly spaced values."""
    values = tensor.detach().double()
    flat = values.flatten()
    index = torch.linspace(0, flat.numel() - 1, SAMPLES).round().long()
    return {
        "shape": list(tensor.shape),
        "sum": flat.sum().item(),
        "abs_sum": flat.abs().sum().item(),
        "sample_sums": values.flatten(1).sum(1).tolist(),
        "samples": [[int(i), flat[i].item()] for i in index],
    }


def forward(model: torch.nn.Module, images: torch.Tensor) -> dict[str, object]:
    """Their forward on ``images``: its logits, reconstruction, correlations and inner outputs."""
    inner: dict[str, torch.Tensor] = {}

    def keep(name: str):  # noqa: ANN202
        # Copied at once: a later in-place ReLU may overwrite a module's output.
        return lambda module, args, output: inner.__setitem__(name, output.detach().clone())

    hooks = [model.get_submodule(name).register_forward_hook(keep(name)) for name in INNER]
    logits = model(images)
    for hook in hooks:
        hook.remove()
    return {
        "logits": logits.detach().flatten().double().tolist(),
        "reconstruction": summary(model.loss_inputs["recons"][0]),
        "correlations": [c.detach().double().tolist() for c in model.loss_inputs["contra"]],
        "inner": {name: summary(inner[name]) for name in INNER},
    }


def batch_norm_sums(model: torch.nn.Module) -> dict[str, list[float]]:
    """[running_mean sum, running_var sum] of every batch-norm layer, by its state-dict prefix."""
    return {
        name: [m.running_mean.double().sum().item(), m.running_var.double().sum().item()]
        for name, m in model.named_modules()
        if isinstance(m, torch.nn.BatchNorm2d)
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", type=Path, help="an exported copy of the authors' repository")
    parser.add_argument("--commit", required=True, help="the authors' commit that was exported")
    args = parser.parse_args()

    recce_class = load_authors_recce(args.checkout)

    def filled(noise_std: float | None = None) -> torch.nn.Module:
        model = recce_class(num_classes=1)
        state = fill_state_dict(model.state_dict())
        model.load_state_dict(state, strict=True)
        if noise_std is not None:  # their add_white_noise's default argument
            defaults = list(recce_class.add_white_noise.__defaults__)
            defaults[1] = noise_std
            recce_class.add_white_noise.__defaults__ = tuple(defaults)
        return model

    images = deterministic_input(BATCH, SIZE, INPUT_SEED)
    torch.set_grad_enabled(False)

    model = filled().eval()
    state = model.state_dict()
    logits = model(images)
    result = {
        "eval_float32": {
            "logits": logits.flatten().double().tolist(),
            "reconstruction": summary(model.loss_inputs["recons"][0]),
        }
    }
    torch.set_default_dtype(torch.float64)
    result["eval"] = forward(model.double(), images.double())

    for case, std in (("train", None), (f"train_noise_{RAISED_NOISE_STD}", RAISED_NOISE_STD)):
        torch.set_default_dtype(torch.float32)
        model = filled(std).double().train()
        torch.set_default_dtype(torch.float64)
        torch.manual_seed(TRAIN_SEED)
        noised = (torch.rand(BATCH, 1, 1, 1) > 0.5).flatten().nonzero().flatten().tolist()
        torch.manual_seed(TRAIN_SEED)
        result[case] = forward(model, images.double())
        assert 0 < len(noised) < BATCH, f"seed {TRAIN_SEED} noises samples {noised}: pick another"
        result[case]["noised_samples"] = noised
        result[case]["batch_norm_sums"] = batch_norm_sums(model)
    torch.set_default_dtype(torch.float32)

    fixture = {
        "made_by": {
            "script": "benchmarks/authors_fixtures/recce_forward.py",
            "authors_repository": "github.com/VISION-SJTU/RECCE",
            "authors_commit": args.commit,
            "torch": torch.__version__,
            "timm": timm.__version__,
            "shim": "timm.models.xception -> timm 1.x legacy_xception, pretrained=False",
        },
        "model": {"num_classes": 1, "drop_rate": 0.2},
        "input": {"batch": BATCH, "size": SIZE, "seed": INPUT_SEED},
        "dtype": "float64 (eval_float32: float32)",
        "train_seed": TRAIN_SEED,
        "raised_noise_std": RAISED_NOISE_STD,
        **result,
    }
    data = ROOT / "tests" / "data"
    lines = [
        "# State-dict keys, shapes and dtypes of the RECCE authors' Recce(num_classes=1), in their",
        "# order (github.com/VISION-SJTU/RECCE, model/network/Recce.py on timm's Xception), listed",
        "# by benchmarks/authors_fixtures/recce_forward.py from their model code. '-' = a scalar.",
    ]
    for key, value in state.items():
        shape = "x".join(map(str, value.shape)) or "-"
        lines.append(f"{key}\t{shape}\t{str(value.dtype).removeprefix('torch.')}")
    (data / "recce_authors_state_dict.tsv").write_text("\n".join(lines) + "\n")
    (data / "recce_authors_forward.json").write_text(json.dumps(fixture, indent=1) + "\n")
    print(f"{len(state)} tensors; eval logits {fixture['eval']['logits']}")


if __name__ == "__main__":
    main()
