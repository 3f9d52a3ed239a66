"""RECCE and PANet on this machine: parameters, shapes, training speed, graph reasoning speed.

    .venv/bin/python benchmarks/recce_throughput.py [--size 299] [--batch 8] [--steps 3]

* Parameters per component (encoder without the Xception classifier,
  decoder, graph reasoning, guided attention, EMA, CBAM, head) of ``recce``
  and ``panet`` at their defaults, and the output shapes at ``--size``.
* Training images per second of ``recce`` and ``panet``: forward (with the
  training noise) + all three losses + backward + Adam step, batch ``--batch``.
* The graph reasoning alone (forward + backward at the feature sizes of
  ``--size``): the library's vectorised module against a per-position Python
  loop written the way the authors' code runs it (the loop lives here and in
  the tests, never in the library), and a whole RECCE training step with
  either of them.

On the CPU all threads are used; on a GPU box the GPU. Results go to
``benchmarks/results/recce_throughput.json`` and the terminal.
"""

from __future__ import annotations

import argparse
import time
import types
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from src.detectors import RECCE, PANet
from src.detectors.layers.graph_reasoning import MultiScaleGraphReasoning
from src.files import atomic_write_json

RESULTS = Path(__file__).resolve().parent / "results"


def parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def per_position_reasoning(
    self: MultiScaleGraphReasoning, coarse: torch.Tensor, *fine: torch.Tensor
) -> torch.Tensor:
    """The graph reasoning as the authors compute it: a Python loop over the coarse positions."""
    b, _, h, w = coarse.shape
    query = self.query(coarse).flatten(2)  # (B, width, N)
    aggregated = []
    for branch, finer in zip(self.branches, fine, strict=True):
        r = branch.ratio
        blocks = F.unfold(finer, kernel_size=r, stride=r).view(b, finer.shape[1], r * r, -1)
        values = branch.embed(blocks.permute(0, 2, 3, 1))  # (B, r*r, N, width)
        gate = (1 - torch.sigmoid(branch.gate(coarse))).flatten(2)
        columns = []
        for n in range(h * w):
            repeated = torch.stack([query[:, :, n]] * (r * r), dim=1)
            neighbours = values[:, :, n, :]
            weights = F.relu(branch.score(torch.cat([repeated, neighbours], dim=-1))).softmax(1)
            summed = torch.bmm(neighbours.transpose(1, 2), weights).squeeze(2)
            columns.append(summed * gate[:, :, n])
        aggregated.append(torch.stack(columns, dim=-1))
    nodes = torch.sigmoid(torch.cat([*aggregated, query], dim=1)).reshape(b, -1, h, w)
    return self.reproject(nodes)


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(step: Callable[[], None], steps: int, device: torch.device) -> float:
    """Seconds per call of ``step`` after one warm-up call."""
    step()
    synchronise(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronise(device)
    return (time.perf_counter() - start) / steps


def training_step(model: RECCE, batch: dict[str, torch.Tensor]) -> Callable[[], None]:
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-4, weight_decay=1e-5)
    model.train()

    def step() -> None:
        optimizer.zero_grad()
        model.loss(model.step_forward(batch), batch)["loss"].backward()
        optimizer.step()

    return step


def reasoning_step(
    module: MultiScaleGraphReasoning, inputs: tuple[torch.Tensor, ...], loop: bool
) -> Callable[[], None]:
    def step() -> None:
        module.zero_grad()
        out = per_position_reasoning(module, *inputs) if loop else module(*inputs)
        out.square().mean().backward()

    return step


def components(model: RECCE) -> dict[str, int]:
    kinds = {"EMA": 0, "CBAM": 0}
    for point in model.attention.values():
        for module in point:
            kinds["EMA" if type(module).__name__.startswith("Efficient") else "CBAM"] += parameters(
                module
            )
    return {
        "encoder (Xception, no fc)": parameters(model.backbone),
        "decoder": parameters(model.decoder),
        "graph reasoning": parameters(model.reasoning),
        "guided attention": parameters(model.guided_attention),
        "EMA": kinds["EMA"],
        "CBAM": kinds["CBAM"],
        "head": parameters(model.head),
        "total": parameters(model),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=299)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    models = {"recce": RECCE(input_size=args.size), "panet": PANet(input_size=args.size)}
    batch = {
        "image": torch.rand(args.batch, 3, args.size, args.size, device=device) * 2 - 1,
        "label": torch.tensor([0.0, 1.0] * (args.batch // 2), device=device),
    }

    report: dict = {"size": args.size, "batch": args.batch, "device": str(device)}
    report["parameters"] = {name: components(model) for name, model in models.items()}
    shapes = {}
    for name, model in models.items():
        model.to(device).eval()
        with torch.no_grad():
            out = model(batch["image"][:2])
        shapes[name] = {
            "logit": list(out.logit.shape),
            "reconstruction": list(out.reconstruction.shape),
        }
    report["shapes"] = shapes

    seconds = {
        name: timed(training_step(m, batch), args.steps, device) for name, m in models.items()
    }
    report["train_images_per_s"] = {name: args.batch / s for name, s in seconds.items()}

    recce = models["recce"]
    looped = RECCE(input_size=args.size).to(device)
    looped.load_state_dict(recce.state_dict())
    looped.reasoning.forward = types.MethodType(per_position_reasoning, looped.reasoning)
    step_loop = timed(training_step(looped, batch), args.steps, device)

    with torch.no_grad():
        feature = recce.backbone.run(batch["image"], until="block4")
        decoded = recce.decoder(feature, batch["image"].shape[-2:])
        inputs = (feature, decoded.stage2, decoded.stage4)
    module = recce.reasoning.train()
    vectorised = timed(reasoning_step(module, inputs, loop=False), args.steps, device)
    loop = timed(reasoning_step(module, inputs, loop=True), args.steps, device)
    report["graph_reasoning_s"] = {"vectorised": vectorised, "per-position loop": loop}
    report["graph_reasoning_speedup"] = loop / vectorised
    report["train_step_s"] = {"vectorised": seconds["recce"], "per-position loop": step_loop}
    report["train_step_speedup"] = step_loop / seconds["recce"]

    print(f"RECCE / PANet at {args.size} px on {device} ({torch.get_num_threads()} threads)\n")
    names = list(report["parameters"]["recce"])
    print(f"  {'parameters':<28}{'recce':>12}{'panet':>12}")
    for key in names:
        row = [report["parameters"][m][key] / 1e6 for m in models]
        print(f"  {key:<28}" + "".join(f"{v:11.3f}M" for v in row))
    print("\n  outputs: " + "; ".join(f"{m} {s}" for m, s in shapes.items()))
    print(f"\ntraining, batch {args.batch} (forward with noise, three losses, backward, Adam):")
    for name, value in report["train_images_per_s"].items():
        print(f"  {name:<28}{value:8.2f} images/s")
    print(f"\ngraph reasoning alone (forward + backward, batch {args.batch}):")
    print(f"  {'vectorised':<28}{1000 * vectorised:9.1f} ms")
    print(f"  {'per-position loop':<28}{1000 * loop:9.1f} ms   ({loop / vectorised:.1f}x slower)")
    print("\nRECCE training step:")
    print(f"  {'vectorised reasoning':<28}{seconds['recce']:9.2f} s")
    print(
        f"  {'per-position loop':<28}{step_loop:9.2f} s   "
        f"({step_loop / seconds['recce']:.2f}x slower)"
    )
    RESULTS.mkdir(exist_ok=True)
    atomic_write_json(RESULTS / "recce_throughput.json", report)


if __name__ == "__main__":
    main()
