"""What evaluation costs on a CPU with the weights in the default or the channels-last layout.

    .venv/bin/python benchmarks/eval_layout.py [--detectors xception resnet50] [--size 64]
        [--batch 64] [--repeats 3]

Each detector is built as the demo profile builds it (no pretrained weights, ``--size`` px)
and scores ``--batch`` random faces in eval mode, ``--repeats`` times after one warm-up,
once in the default layout and once after ``evaluation_layout(True)``, as validation, test
and predict run (``Detector.evaluation_layout``). Medians in ms per batch, and the largest
difference between the two logits, go to ``benchmarks/results/eval_layout.json`` and the
terminal.
"""

from __future__ import annotations

import argparse
from functools import partial
from pathlib import Path

import torch
from demo_models import demo_detector, median_ms

from src.detectors.base import Detector
from src.files import atomic_write_json

RESULTS = Path(__file__).resolve().parent / "results"
DEMO_DETECTORS = (
    "xception",
    "efficientnet_b4",
    "resnet50",
    "vgg16",
    "recce",
    "panet",
    "laa_net",
    "ynet",
    "f3net",
)


def logits(detector: Detector, images: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return detector(images).logit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detectors", nargs="+", default=list(DEMO_DETECTORS))
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows = []
    print(f"ms per batch of {args.batch}, {args.size} px, {torch.get_num_threads()} threads")
    print(f"{'detector':<16}{'default':>9}{'channels-last':>15}{'max |diff|':>12}")
    for name in args.detectors:
        detector = demo_detector(name, args.size).eval()
        images = torch.randn(args.batch, 3, args.size, args.size)
        default, reference = median_ms(partial(logits, detector, images), args.repeats)
        detector.evaluation_layout(True)
        channels_last, evaluated = median_ms(partial(logits, detector, images), args.repeats)
        diff = float((evaluated - reference).abs().max())
        rows.append(
            {
                "detector": name,
                "default_ms": default,
                "channels_last_ms": channels_last,
                "max_diff": diff,
            }
        )
        print(f"{name:<16}{default:>9.0f}{channels_last:>15.0f}{diff:>12.1e}")
    setup = {"size": args.size, "batch": args.batch, "threads": torch.get_num_threads()}
    atomic_write_json(RESULTS / "eval_layout.json", {"setup": setup, "rows": rows})


if __name__ == "__main__":
    main()
