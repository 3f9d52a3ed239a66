"""Where a demo training step's time goes: forward, backward and the Adam step, fused or not.

    .venv/bin/python benchmarks/demo_step.py [--detectors xception resnet50] [--size 64]
        [--batch 8] [--steps 8]

Each detector is built as the demo profile builds it (no pretrained weights, ``--size`` px)
and trained on random faces for ``--steps`` timed steps after 3 warm-up steps, once with
torch's default Adam (``foreach``: one kernel per operation over lists of tensors) and once
with ``fused=True`` (one kernel for the whole update). Medians in ms per step go to
``benchmarks/results/demo_step.json`` and the terminal.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from demo_models import demo_detector

from src.files import atomic_write_json

RESULTS = Path(__file__).resolve().parent / "results"
DEMO_DETECTORS = ("xception", "efficientnet_b4", "resnet50", "recce", "panet", "ynet", "f3net")


def time_steps(name: str, size: int, batch: int, steps: int, fused: bool) -> dict[str, float]:
    model = demo_detector(name, size).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=1e-3, weight_decay=1e-5, fused=fused or None)
    images = torch.randn(batch, 3, size, size)
    labels = torch.randint(0, 2, (batch,)).float()
    phases: dict[str, list[float]] = {"forward": [], "backward": [], "optimizer": []}
    for step in range(3 + steps):
        start = time.perf_counter()
        loss = F.binary_cross_entropy_with_logits(model(images).logit.reshape(-1), labels)
        forward = time.perf_counter()
        loss.backward()
        backward = time.perf_counter()
        optimizer.step()
        optimizer.zero_grad()
        end = time.perf_counter()
        if step >= 3:
            phases["forward"].append(forward - start)
            phases["backward"].append(backward - forward)
            phases["optimizer"].append(end - backward)
    return {phase: 1e3 * statistics.median(times) for phase, times in phases.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detectors", nargs="+", default=list(DEMO_DETECTORS))
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args()
    rows = []
    print(f"ms per step, {args.size} px, batch {args.batch}, {torch.get_num_threads()} threads")
    print(f"{'detector':<16}{'adam':<8}{'forward':>9}{'backward':>10}{'optimizer':>11}{'total':>8}")
    for name in args.detectors:
        for fused in (False, True):
            times = time_steps(name, args.size, args.batch, args.steps, fused)
            total = sum(times.values())
            rows.append({"detector": name, "fused": fused, **times, "total": total})
            kind = "fused" if fused else "foreach"
            print(
                f"{name:<16}{kind:<8}{times['forward']:>9.0f}{times['backward']:>10.0f}"
                f"{times['optimizer']:>11.0f}{total:>8.0f}"
            )
    setup = {"size": args.size, "batch": args.batch, "threads": torch.get_num_threads()}
    atomic_write_json(RESULTS / "demo_step.json", {"setup": setup, "rows": rows})


if __name__ == "__main__":
    main()
