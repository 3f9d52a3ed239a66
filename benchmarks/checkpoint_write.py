"""What writing one training checkpoint costs: Lightning's writer or the suite's.

    .venv/bin/python benchmarks/checkpoint_write.py [--detectors xception panet] [--repeats 5]

Each detector is built as the demo profile builds it (no pretrained weights, 64 px) and
given Adam's state after one step, so the checkpoint holds what a demo fit writes each
epoch (weights and two Adam moments). It is written over the same file, as
``last.ckpt`` is every epoch, once to warm up and then ``--repeats`` times, by
Lightning's ``TorchCheckpointIO`` (serialised into memory, then copied into the file)
and by the suite's ``AtomicCheckpointIO`` (straight into a temporary file beside the
target, synced and renamed). Medians in seconds per checkpoint go to
``benchmarks/results/checkpoint_write.json`` and the terminal.
"""

from __future__ import annotations

import argparse
import tempfile
from functools import partial
from pathlib import Path

import torch
from demo_models import demo_detector, median_ms
from lightning_fabric.plugins import CheckpointIO, TorchCheckpointIO

from src.cli.checkpoints import AtomicCheckpointIO
from src.files import atomic_write_json

RESULTS = Path(__file__).resolve().parent / "results"


def demo_checkpoint(name: str) -> dict:
    model = demo_detector(name)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(2, 3, 64, 64)).logit.sum().backward()
    optimizer.step()
    return {"state_dict": model.state_dict(), "optimizer_states": [optimizer.state_dict()]}


def median_seconds(writer: CheckpointIO, checkpoint: dict, path: Path, repeats: int) -> float:
    milliseconds, _ = median_ms(partial(writer.save_checkpoint, checkpoint, path), repeats)
    return milliseconds / 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detectors", nargs="+", default=["xception", "panet", "resnet50"])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rows = []
    print(f"{'detector':<12}{'MB':>6}{'lightning s':>13}{'suite s':>9}")
    for name in args.detectors:
        checkpoint = demo_checkpoint(name)
        with tempfile.TemporaryDirectory(prefix="dfbench-ckpt-") as tmp:
            path = Path(tmp) / "last.ckpt"
            lightning = median_seconds(TorchCheckpointIO(), checkpoint, path, args.repeats)
            suite = median_seconds(AtomicCheckpointIO(), checkpoint, path, args.repeats)
            size = path.stat().st_size / 1e6
        rows.append({"detector": name, "mb": size, "lightning_s": lightning, "suite_s": suite})
        print(f"{name:<12}{size:>6.0f}{lightning:>13.2f}{suite:>9.2f}")
    atomic_write_json(RESULTS / "checkpoint_write.json", {"rows": rows})


if __name__ == "__main__":
    main()
