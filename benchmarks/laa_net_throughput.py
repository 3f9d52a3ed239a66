"""LAA-Net on this machine: parameters per component, training throughput, target generation.

    .venv/bin/python benchmarks/laa_net_throughput.py [--size 384] [--batch 4] [--steps 3]

* The architecture at the paper's configuration (EfficientNet-B4, E-FPN over
  C6..C3, 384 px): parameters per component and output shapes.
* Training images per second: forward + backward + optimiser step on random
  images with SBI-like masks, batch ``--batch``, with SAM (two passes) and
  with plain Adam; the backbone not frozen. On the CPU of this machine, all
  threads; on a GPU box it uses the GPU.
* Target generation (boundary, vulnerable points, heatmap, consistency) per
  sample at the heatmap size, for the paper's argmax points and the code's
  per-quadrant points.

Results go to ``benchmarks/results/laa_net_throughput.json`` and the terminal.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from src.detectors import LAANet
from src.detectors.targets import laa_targets
from src.detectors.training import SAM
from src.files import atomic_write_json

RESULTS = Path(__file__).resolve().parent / "results"


def parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def blend_masks(batch: int, size: int, device: torch.device) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    radius = ((yy - size * 0.5) ** 2 / 0.35**2 + (xx - size * 0.5) ** 2 / 0.3**2).sqrt() / size
    mask = (1 - ((radius - 0.8) / 0.15).clamp(0, 1)).float()
    masks = mask.expand(batch, 1, size, size).clone()
    masks[0::2] = 0  # reals
    return masks.to(device)


def train_throughput(model: LAANet, batch: dict, steps: int, sam: bool) -> float:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=1e-4)
    model.train()

    def step() -> None:
        optimizer.zero_grad()
        model.loss(model(batch["image"]), batch)["loss"].backward()
        if sam:
            helper = SAM(rho=0.05)
            helper.climb(model.parameters())
            optimizer.zero_grad()
            model.loss(model(batch["image"]), batch)["loss"].backward()
            helper.descend()
        optimizer.step()

    step()  # warm-up
    if batch["image"].is_cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if batch["image"].is_cuda:
        torch.cuda.synchronize()
    return steps * batch["image"].shape[0] / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    model = LAANet(input_size=args.size).to(device)

    components = {
        "backbone (EfficientNet-B4, C3..C6)": parameters(model.backbone),
        "E-FPN decoder (deconv_1..4, inception)": parameters(model.decoder),
        "heatmap head (hm)": parameters(model.hm),
        "self-consistency head (cstency)": parameters(model.cstency),
        "classification head (cls)": parameters(model.cls),
    }
    total = parameters(model)
    with torch.no_grad():
        out = model.eval()(torch.randn(1, 3, args.size, args.size, device=device))
    shapes = {
        "logit": list(out.logit.shape),
        "heatmap": list(out.heatmap.shape),
        "consistency": list(out.consistency.shape),
        "decoder output": list(out.features.shape),
    }

    batch = {
        "image": torch.randn(args.batch, 3, args.size, args.size, device=device),
        "label": torch.tensor([0.0, 1.0] * (args.batch // 2), device=device),
        "mask": blend_masks(args.batch, args.size, device),
        "has_mask": torch.ones(args.batch, dtype=torch.bool, device=device),
    }
    speed = {
        "SAM (two passes)": train_throughput(model, batch, args.steps, sam=True),
        "Adam (one pass)": train_throughput(model, batch, args.steps, sam=False),
    }

    heat = (args.size // 4, args.size // 4)
    masks, labels = blend_masks(64, args.size, device), torch.ones(64, device=device)
    targets = {}
    for name, quadrant in (("argmax points (paper)", False), ("quadrant points (code)", True)):
        laa_targets(masks, labels, heat, quadrant)
        start = time.perf_counter()
        for _ in range(5):
            laa_targets(masks, labels, heat, quadrant)
        targets[name] = 1000 * (time.perf_counter() - start) / (5 * 64)

    print(f"LAA-Net at {args.size} px on {device} ({torch.get_num_threads()} threads)\n")
    for name, count in components.items():
        print(f"  {name:<42}{count / 1e6:8.2f} M")
    print(f"  {'total':<42}{total / 1e6:8.2f} M   (the authors' model: 27.13 M)")
    print("\n  outputs: " + ", ".join(f"{k} {v}" for k, v in shapes.items()))
    print(f"\ntraining, batch {args.batch}, backbone not frozen:")
    for name, value in speed.items():
        print(f"  {name:<42}{value:8.2f} images/s")
    print("\ntarget generation per sample (batched, 64 masks):")
    for name, value in targets.items():
        print(f"  {name:<42}{value:8.3f} ms")
    RESULTS.mkdir(exist_ok=True)
    atomic_write_json(
        RESULTS / "laa_net_throughput.json",
        {
            "size": args.size,
            "device": str(device),
            "parameters": components | {"total": total},
            "shapes": shapes,
            "train_images_per_s": speed,
            "target_ms_per_sample": targets,
        },
    )


if __name__ == "__main__":
    main()
