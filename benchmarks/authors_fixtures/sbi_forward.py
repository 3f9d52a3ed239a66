"""Make tests/data/sbi_authors_forward.json: the SBI authors' detector run on fixed weights.

The authors' ``Detector`` (``src/model.py`` of github.com/mapooon/SelfBlendedImages:
``EfficientNet.from_pretrained("efficientnet-b4", advprop=True, num_classes=2)``
from ``efficientnet_pytorch`` 0.7.1) gets every tensor of its state dict from
``tests/deterministic_weights.fill_state_dict`` and is run on
``deterministic_input``:

* eval mode, 2 faces of 124 px: the two class scores, logit ``z1 - z0`` and
  ``softmax[1]`` per face, and statistics of each of the 7 stages' output
  maps (sum, sum of absolute values, 7 sampled values): the classifier's
  output hardly depends on the first stages with these weights, so those are
  checked where they are computed;
* train mode, the same faces, one forward in float64 (batch statistics of 2
  faces amplify float32 rounding to about 1e-4 in the logit): the class
  scores and stage statistics, then the sums of every batch norm's running
  mean and variance afterwards. Dropout and
  drop-connect are switched off for this pass (their random draws cannot
  match across implementations); their rates are recorded instead;
* eval mode, 1 face of 380 px, the size the authors train and test at.

124 px is small and pads like 380 px: efficientnet_pytorch pads every
convolution for a 380 px input (``Conv2dStaticSamePadding``), and a stride-2
layer's TF "same" padding depends only on whether its input size is even.
380 px meets the stride-2 layers at 380, 190, 95, 48, 24 px; 124 px at 124,
62, 31, 16, 8: the same parities, so the authors' static padding is what
timm's dynamic padding computes there (at 128 px it is not).

Shim: ``EfficientNet.from_pretrained`` would download ImageNet weights that
the filled state dict replaces anyway; it is replaced by ``from_name`` with
the same model name and class count (the network is the same).

Re-run (outside the project, the authors' code exported from its mirror)::

    mkdir -p /work/authors/sbi
    git -C /work/.mirror/mapooon+SelfBlendedImages/repo archive HEAD | tar -x -C /work/authors/sbi
    PYTHONPATH=/work/authors-pkgs:$PWD .venv/bin/python benchmarks/authors_fixtures/sbi_forward.py \\
        /work/authors/sbi --commit $(git -C /work/.mirror/mapooon+SelfBlendedImages/repo rev-parse HEAD)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

from deterministic_weights import deterministic_input, fill_state_dict  # noqa: E402

OUT = REPO / "tests" / "data" / "sbi_authors_forward.json"
SMALL, BATCH = 124, 2
PAPER_SIZE = 380


def build_authors_detector(checkout: Path) -> torch.nn.Module:
    sys.path.insert(0, str(checkout / "src"))
    import efficientnet_pytorch
    from efficientnet_pytorch import EfficientNet

    def from_name_instead(cls, model_name, weights_path=None, advprop=False, **kwargs):
        return cls.from_name(model_name, **kwargs)

    EfficientNet.from_pretrained = classmethod(from_name_instead)
    from model import Detector

    detector = Detector()
    detector.efficientnet_pytorch_version = efficientnet_pytorch.__version__
    return detector


def stage_ends(detector: torch.nn.Module) -> list[int]:
    """The flat index of each stage's last block: a stage opens with a change of width."""
    blocks = detector.net._blocks
    opens = [
        i
        for i, b in enumerate(blocks)
        if b._block_args.input_filters != b._block_args.output_filters
    ]
    return [i - 1 for i in opens[1:]] + [len(blocks) - 1]


def map_statistics(feature_map: torch.Tensor) -> dict[str, object]:
    """Sum, sum of absolute values and 7 values evenly spaced over the flattened (B, C, H, W) map."""
    flat = feature_map.double().flatten()
    picks = torch.linspace(0, flat.numel() - 1, 7).round().long()
    return {
        "shape": list(feature_map.shape),
        "sum": float(flat.sum()),
        "abs_sum": float(flat.abs().sum()),
        "samples": flat[picks].tolist(),
    }


def run(detector: torch.nn.Module, images: torch.Tensor) -> dict[str, object]:
    """Class scores, logit z1 - z0, softmax[1] and every stage's output statistics."""
    outputs: list[torch.Tensor] = []
    hooks = [
        detector.net._blocks[i].register_forward_hook(lambda m, i, o: outputs.append(o))
        for i in stage_ends(detector)
    ]
    logits = detector(images)
    for hook in hooks:
        hook.remove()
    return {
        "class_scores": logits.tolist(),
        "logit": (logits[:, 1] - logits[:, 0]).tolist(),
        "softmax_fake": logits.softmax(1)[:, 1].tolist(),
        "stages": [map_statistics(o) for o in outputs],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", type=Path, help="the authors' repository, exported")
    parser.add_argument("--commit", required=True, help="its commit hash, recorded in the JSON")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    torch.set_grad_enabled(False)

    detector = build_authors_detector(args.checkout)
    state = detector.state_dict()
    detector.load_state_dict(fill_state_dict(state), strict=True)
    params = detector.net._global_params
    record = {
        "made_by": "benchmarks/authors_fixtures/sbi_forward.py",
        "authors_repository": "github.com/mapooon/SelfBlendedImages",
        "authors_commit": args.commit,
        "torch": torch.__version__,
        "efficientnet_pytorch": detector.efficientnet_pytorch_version,
        # "key:shape" in the authors' order, the shape as comma-separated sizes.
        "state_dict": [f"{key}:{','.join(map(str, value.shape))}" for key, value in state.items()],
        "parameters": sum(p.numel() for p in detector.parameters()),
        "config": {
            "image_size": params.image_size,
            "dropout_rate": params.dropout_rate,
            "drop_connect_rate": params.drop_connect_rate,
            "batch_norm_momentum": round(1 - params.batch_norm_momentum, 6),
            "batch_norm_eps": params.batch_norm_epsilon,
        },
        "input": {"batch": BATCH, "size": SMALL},
    }

    images = deterministic_input(BATCH, SMALL)
    detector.eval()
    record["eval"] = run(detector, images)

    # float64: normalising by the statistics of a batch of 2 makes the pass ill-conditioned
    # in float32 (float32 and float64 logits of one implementation differ by about 1e-4).
    detector.double().train()
    detector.net._dropout.p = 0.0
    detector.net._global_params = params._replace(drop_connect_rate=None)
    record["train"] = run(detector, images.double())
    norms = [m for m in detector.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    record["train"]["running_mean_sum"] = float(sum(m.running_mean.double().sum() for m in norms))
    record["train"]["running_var_sum"] = float(sum(m.running_var.double().sum() for m in norms))
    record["train"]["batch_norms"] = len(norms)

    detector.float().load_state_dict(fill_state_dict(state), strict=True)
    detector.eval()
    record["eval_380"] = {"batch": 1, "size": PAPER_SIZE}
    record["eval_380"] |= run(detector, deterministic_input(1, PAPER_SIZE))

    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(
        f"wrote {args.out}: logits {record['eval']['logit']}, 380 px {record['eval_380']['logit']}"
    )


if __name__ == "__main__":
    main()
