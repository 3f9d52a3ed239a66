"""Vulnerable points per fake and heatmap mass of LAA-Net's targets, paper vs ``authors`` mode.

    .venv/bin/python benchmarks/laa_net_targets.py [--samples 500]

Samples: LAA-Net's SBI pseudo-fakes (``SBI(variant="laa")`` and the
``laa_net_sbi`` recipe, as the DataModule builds them) of the bundled
astronaut face at 384 px, the detector's input size; targets at the heatmap
size (96 x 96, a quarter of the input), built on the blend mask the way
``LAANet.loss`` builds them. The authors' released checkpoint was trained on
targets with a median of 11 points per fake (range 4-41) and a heatmap mass
(sum of the target) of about 38; the paper's single vulnerable point gives
one Gaussian.

Results go to ``benchmarks/results/laa_net_targets.json`` and the terminal.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from augment_throughput import astronaut_face, write_pool

from src.augment.recipes import build_recipe
from src.augment.sbi import SBI
from src.data.frameset import _resize, read_face
from src.detectors.targets import authors_laa_targets, laa_targets
from src.files import atomic_write_json

RESULTS = Path(__file__).resolve().parent / "results"
INPUT = 384
HEATMAP = (INPUT // 4, INPUT // 4)


def sbi_masks(samples: int, seed: int) -> torch.Tensor:
    """``samples`` blend masks (N, 1, 384, 384) in [0, 1], after the recipe's geometry."""
    face, landmarks, box = astronaut_face()
    generator, recipe = SBI(variant="laa"), build_recipe("laa_net_sbi")
    rng = np.random.default_rng(seed)
    blank = np.zeros(face.shape[:2], np.uint8)
    size = (INPUT, INPUT)
    masks = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rows = write_pool(root, face, landmarks, box).to_dict("records")
        for i in range(samples):
            row = rows[i % len(rows)]
            _, fake, mask = generator.pair(read_face(root, row)[0], blank, rng, row)
            mask = np.round(mask * 255).astype(np.uint8)
            _, mask = recipe(_resize(fake, size), _resize(mask, size), rng)
            masks.append(torch.from_numpy(np.asarray(mask, np.float32) / 255))
    return torch.stack(masks)[:, None]


def summarise(targets: dict[str, torch.Tensor]) -> dict[str, float]:
    points = targets["points"].flatten(1).sum(1).double()
    mass = targets["heatmap"].flatten(1).sum(1).double()
    return {
        "points_median": float(points.median()),
        "points_min": float(points.min()),
        "points_max": float(points.max()),
        "points_mean": float(points.mean()),
        "heatmap_mass_mean": float(mass.mean()),
        "heatmap_mass_median": float(mass.median()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    masks = sbi_masks(args.samples, args.seed)
    labels = torch.ones(len(masks))
    report = {
        "samples": args.samples,
        "input_size": INPUT,
        "heatmap_size": HEATMAP[0],
        "paper (targets: paper)": summarise(laa_targets(masks, labels, HEATMAP)),
        "authors (targets: authors)": summarise(authors_laa_targets(masks, labels, HEATMAP)),
    }
    RESULTS.mkdir(exist_ok=True)
    atomic_write_json(RESULTS / "laa_net_targets.json", report)
    print(f"{args.samples} LAA-Net SBI fakes of one face, {INPUT} px, heatmap {HEATMAP[0]} px")
    print(f"{'mode':28s} {'points median [min, max]':>26s} {'mean':>6s} {'mass mean':>10s}")
    for mode, stats in report.items():
        if isinstance(stats, dict):
            spread = (
                f"{stats['points_median']:.0f} [{stats['points_min']:.0f}, "
                f"{stats['points_max']:.0f}]"
            )
            print(
                f"{mode:28s} {spread:>26s} {stats['points_mean']:6.1f} "
                f"{stats['heatmap_mass_mean']:10.1f}"
            )


if __name__ == "__main__":
    main()
