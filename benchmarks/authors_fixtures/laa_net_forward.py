"""Outputs of the LAA-Net authors' own model under deterministic weights, for the equivalence test.

Run it with the project's venv on an export of their repository (github.com/10Ring/LAA-Net),
from the project root::

    mkdir -p /tmp/LAA-Net && git -C <their git repo> archive HEAD | tar -x -C /tmp/LAA-Net
    PYTHONPATH=$PWD .venv/bin/python benchmarks/authors_fixtures/laa_net_forward.py /tmp/LAA-Net \\
        --commit $(git -C <their git repo> rev-parse HEAD)

(``--commit`` may be left out when the path is a git work tree.) It writes
``tests/data/laa_net_authors_forward.json``, which
``tests/test_laa_net_equivalence.py`` reproduces through dfbench's importer.

What it does, in their code only: builds ``PoseEfficientNet`` from the ``MODEL``
section of their headline config (``configs/efn4_fpn_sbi_adv.yaml``) with their
registry, fills every tensor of its state dict with
``tests/deterministic_weights.fill_state_dict`` (float32, the dtype their model
is built in), converts the model to float64 as their train and test scripts do
(``PRECISION: float64``), and runs ``deterministic_input(2, size)``:

* eval mode at 64 px and 384 px. Both sizes are multiples of 32, where every
  stride-2 convolution but one sees an even input and their static padding
  (computed for 380 px) equals TF "same" padding; the one exception, the
  stride-2 5x5 depthwise convolution opening stage 2, pads (2, 2, 2, 2) at both
  sizes, which dfbench reproduces with ``authors_padding=True``. At 64 px the
  coarsest feature is 2 x 2, so every stage still halves the resolution.
* one train-mode forward at each size, each on freshly filled weights, and at
  64 px the running statistics of every batch norm afterwards. With these
  weights the eval-mode signal of the input fades through the backbone (the
  filled running statistics do not normalise the activations), so the eval
  outputs check the weights and the running-statistics path; the train-mode
  outputs, normalised by batch statistics at every layer, check the computation
  of every layer on the input. Their feature dropout (p 0.4) and drop connect
  (0.2, scaled by block index) draw random numbers in their own way, so these
  forwards run with both off; the rates are recorded instead, for the test to
  compare with dfbench's.

Deviations from a plain run of their code (none changes the computation):

* the YAML is read with PyYAML into a plain dict instead of ``python-box``;
* the inception block is registered twice (``inception_block`` and
  ``deconv_4.0``), so its tensors appear under both names; both get the values
  filled for ``deconv_4.0.*`` (the name the forward runs it under), as in their
  released file, where the two copies are equal.

The JSON keeps numbers only: their commit, the torch version, the input, the
count and SHA-256 of their ordered state-dict keys and shapes (the lines of
``tests/data/laa_net_authors_state_dict.tsv``), logits, sums and sampled values
of the heatmap and consistency maps, and per-batch-norm running-statistic sums.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from deterministic_weights import deterministic_input, fill_state_dict  # noqa: E402

OUT = ROOT / "tests" / "data" / "laa_net_authors_forward.json"
CONFIG = "configs/efn4_fpn_sbi_adv.yaml"
BATCH = 2
SEED = 0
SAMPLES = 8
SIZES = (64, 384)
#: The alias the authors' model registers its inception block under, and its runtime name.
INCEPTION_ALIAS = ("inception_block.", "deconv_4.0.")


def shape_text(shape: torch.Size) -> str:
    """A shape as the state-dict TSV writes it: ``48x3x3x3``, ``-`` for a scalar."""
    return "x".join(str(size) for size in shape) or "-"


def state_dict_digest(state: dict[str, torch.Tensor]) -> dict[str, object]:
    """Count and SHA-256 of the ``key<TAB>shape`` lines, in state-dict order."""
    lines = "".join(f"{key}\t{shape_text(value.shape)}\n" for key, value in state.items())
    return {"count": len(state), "sha256": hashlib.sha256(lines.encode()).hexdigest()}


def filled_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``fill_state_dict`` with both names of the inception block holding the same values."""
    filled = fill_state_dict(state)
    alias, runtime = INCEPTION_ALIAS
    for key in filled:
        if key.startswith(alias):
            filled[key] = filled[runtime + key.removeprefix(alias)].clone()
    return filled


def map_statistics(values: torch.Tensor) -> dict[str, object]:
    """Shape, sum, absolute sum and values at evenly spread flat indices of an output map."""
    flat = values.detach().flatten()
    indices = torch.linspace(0, flat.numel() - 1, SAMPLES).round().long().tolist()
    return {
        "shape": list(values.shape),
        "sum": flat.sum().item(),
        "abs_sum": flat.abs().sum().item(),
        "samples": [[index, flat[index].item()] for index in indices],
    }


def outputs(model: torch.nn.Module, images: torch.Tensor) -> dict[str, object]:
    with torch.no_grad():
        heads = model(images)[0]
    return {
        "cls": heads["cls"].squeeze(1).tolist(),
        "hm": map_statistics(heads["hm"]),
        "cstency": map_statistics(heads["cstency"]),
    }


def batch_norm_sums(model: torch.nn.Module) -> dict[str, list[float]]:
    """Per batch norm (by state-dict prefix): [sum running_mean, sum running_var, batches]."""
    state = model.state_dict()
    return {
        key.removesuffix(".running_mean"): [
            value.sum().item(),
            state[key.replace("running_mean", "running_var")].sum().item(),
            int(state[key.replace("running_mean", "num_batches_tracked")]),
        ]
        for key, value in state.items()
        if key.endswith(".running_mean")
    }


def images(size: int) -> torch.Tensor:
    return deterministic_input(BATCH, size, SEED).double()


def build(checkout: Path) -> torch.nn.Module:
    """Their model from their config and registry, filled, in float64."""
    if str(checkout) not in sys.path:
        sys.path.insert(0, str(checkout))
    from models import MODELS, build_model

    config = yaml.safe_load((checkout / CONFIG).read_text())
    model = build_model(config["MODEL"], MODELS)
    model.load_state_dict(filled_state(model.state_dict()), strict=True)
    return model.to(torch.float64)


def drop_rates(model: torch.nn.Module) -> dict[str, object]:
    """Their feature-dropout rate and the drop-connect rate of each block with a residual."""
    params = model._global_params
    rates = {}
    for index, block in enumerate(model._blocks):
        args = block._block_args
        if block.id_skip and args.stride == 1 and args.input_filters == args.output_filters:
            rates[str(index)] = params.drop_connect_rate * index / len(model._blocks)
    return {"feature_dropout": model._dropout.p, "drop_connect": rates}


def commit_of(checkout: Path, given: str | None) -> str:
    if given:
        return given
    found = subprocess.run(
        ["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True
    )
    if found.returncode != 0:
        sys.exit(f"{checkout} is not a git work tree: pass --commit <their commit hash>")
    return found.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("checkout", type=Path, help="an export of github.com/10Ring/LAA-Net")
    parser.add_argument("--commit", help="their commit hash (default: git rev-parse HEAD)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    if not (args.checkout / CONFIG).is_file():
        sys.exit(f"{args.checkout}: no {CONFIG}; pass an export of the authors' repository")
    commit = commit_of(args.checkout, args.commit)
    model = build(args.checkout)
    record: dict[str, object] = {
        "made_by": "benchmarks/authors_fixtures/laa_net_forward.py",
        "authors_repository": "github.com/10Ring/LAA-Net",
        "authors_commit": commit,
        "authors_config": CONFIG,
        "torch": torch.__version__,
        "weights": "deterministic_weights.fill_state_dict in float32 (inception_block.* = "
        "deconv_4.0.*), model then float64",
        "input": {
            "function": "deterministic_weights.deterministic_input",
            "batch": BATCH,
            "seed": SEED,
            "dtype": "float64",
        },
        "state_dict": state_dict_digest(model.state_dict()),
        "stochastic": drop_rates(model),
    }
    model.eval()
    record["eval"] = {str(size): outputs(model, images(size)) for size in SIZES}
    record["train"] = {}
    for size in SIZES:
        model = build(args.checkout).train()
        model._dropout.p = 0.0
        model._global_params = model._global_params._replace(drop_connect_rate=0.0)
        record["train"][str(size)] = outputs(model, images(size))
        if size == SIZES[0]:
            record["train_batch_norm"] = batch_norm_sums(model)
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
