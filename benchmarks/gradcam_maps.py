"""What a PRLE zoo member's Grad-CAM costs: the backward pass stopped at the CAM layers or not.

    .venv/bin/python benchmarks/gradcam_maps.py [--detectors xception efficientnet_b4 vgg16]
        [--size 64] [--batch 32] [--repeats 3]

Each zoo member is built as the demo profile builds it (no pretrained weights, ``--size``
px) and explains ``--batch`` random faces, ``--repeats`` times after one warm-up: once as
``gradcam_maps`` does it (only the CAM layers' weights require gradients, so the backward
pass stops at them) and once as the ``grad-cam`` package does it alone (every weight
requires gradients: the backward pass runs through the whole network). Medians in ms per
batch, and the largest difference between the two maps, go to
``benchmarks/results/gradcam_maps.json`` and the terminal.
"""

from __future__ import annotations

import argparse
from functools import partial
from pathlib import Path

import torch
from demo_models import demo_detector, median_ms

from src.files import atomic_write_json
from src.tools.prle_maps import gradcam_maps

RESULTS = Path(__file__).resolve().parent / "results"
DEMO_ZOO = ("xception", "efficientnet_b4", "vgg16")


def full_backward_maps(detector: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import BinaryClassifierOutputTarget

    cam = GradCAM(model=detector.as_classifier(), target_layers=detector.cam_target_layers())
    try:
        with torch.enable_grad():
            targets = [BinaryClassifierOutputTarget(1)] * images.shape[0]
            return torch.from_numpy(cam(input_tensor=images, targets=targets))
    finally:
        cam.activations_and_grads.release()
        detector.zero_grad(set_to_none=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detectors", nargs="+", default=list(DEMO_ZOO))
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows = []
    print(f"ms per batch of {args.batch}, {args.size} px, {torch.get_num_threads()} threads")
    print(f"{'member':<16}{'stopped':>9}{'full':>8}{'max |diff|':>12}")
    for name in args.detectors:
        detector = demo_detector(name, args.size).eval()
        images = torch.randn(args.batch, 3, args.size, args.size)
        stopped, maps = median_ms(partial(gradcam_maps, detector, images), args.repeats)
        full, reference = median_ms(partial(full_backward_maps, detector, images), args.repeats)
        diff = float((maps - reference).abs().max())
        rows.append({"member": name, "stopped_ms": stopped, "full_ms": full, "max_diff": diff})
        print(f"{name:<16}{stopped:>9.0f}{full:>8.0f}{diff:>12.1e}")
    setup = {"size": args.size, "batch": args.batch, "threads": torch.get_num_threads()}
    atomic_write_json(RESULTS / "gradcam_maps.json", {"setup": setup, "rows": rows})


if __name__ == "__main__":
    main()
