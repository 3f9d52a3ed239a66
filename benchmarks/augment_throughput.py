"""Milliseconds per SBI and BI training sample on one core, with a breakdown by step.

    .venv/bin/python benchmarks/augment_throughput.py [--samples 300]

Faces: the bundled astronaut photo, cropped 1.3x around its MTCNN box and
resized to 380 px, with its dlib 68 landmarks, written as a PNG the way the
frame cache stores faces (BI's foreground pool: 12 tinted, shifted copies
from 6 "videos"). One thread (``cv2.setNumThreads(1)``, ``torch.set_num_threads(1)``).

* SBI, full training sample: read the cached PNG, self-blend (``SBI.pair``),
  the ``sbi`` recipe on the real and the fake with shared draws, SBI's
  paired photometric transform. The authors' code: ~36 ms for the
  self-blending step alone, ~66 ms for a full sample, on this machine class
  (``docs/sbi.md``, "Speed").
* BI: read the background PNG, ``BI.pair`` (neighbour pick, foreground read,
  warp, mask, blend, post-processing).

Results go to ``benchmarks/results/augment_throughput.json`` and the terminal.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
from skimage import data

from src.augment.bi import BI
from src.augment.landmarks import hull_mask
from src.augment.recipes import build_pair_transform, build_recipe
from src.augment.sbi import SBI, blend_mask, colour_transform, elastic, random_affine
from src.data.datamodule import read_face
from src.data.faces import FaceDetector, Landmarker, crop_box
from src.files import atomic_write_json

RESULTS = Path(__file__).resolve().parent / "results"
SIZE = 380


def astronaut_face() -> tuple[np.ndarray, np.ndarray]:
    image = data.astronaut()
    face = FaceDetector().detect([image])[0][0]
    landmarks = Landmarker()(image, face.box)
    x0, y0, x1, y1 = crop_box(face.box, 1.3, *image.shape[:2])
    scale = SIZE / (x1 - x0)
    crop = cv2.resize(image[y0:y1, x0:x1], (SIZE, SIZE), interpolation=cv2.INTER_LINEAR)
    return crop, ((landmarks - [x0, y0]) * scale).astype(np.float32)


def write_pool(root: Path, face: np.ndarray, landmarks: np.ndarray) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for video in range(6):
        for frame in range(2):
            dx, dy = rng.uniform(-8, 8, 2)
            matrix = np.float32([[1, 0, dx], [0, 1, dy]])
            tinted = np.clip(face.astype(np.int16) + rng.integers(-30, 30, 3), 0, 255).astype(
                np.uint8
            )
            moved = cv2.warpAffine(tinted, matrix, (SIZE, SIZE), borderMode=cv2.BORDER_REFLECT)
            path = f"pool/v{video}/{frame:06d}.png"
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / path), cv2.cvtColor(moved, cv2.COLOR_RGB2BGR))
            rows.append(
                {
                    "video_key": f"pool/v{video}",
                    "crop_path": path,
                    "crop_mask_path": "",
                    "label": 0,
                    "split": "train",
                    "landmarks": landmarks + [dx, dy],
                    "frame_idx": frame,
                }
            )
    return pd.DataFrame(rows)


class Timer:
    def __init__(self) -> None:
        self.totals: dict[str, float] = defaultdict(float)

    def __call__(self, name: str, function, *args):  # noqa: ANN001, ANN204
        start = time.perf_counter()
        result = function(*args)
        self.totals[name] += time.perf_counter() - start
        return result


def sbi_sample(row: dict, root: Path, timer: Timer, rng: np.random.Generator, parts: dict) -> None:
    """One full SBI training sample, step by step (the same work as FrameSet + SBI.pair)."""
    image, _ = timer("read PNG", read_face, root, row)
    landmarks = row["landmarks"]
    height, width = image.shape[:2]
    region = timer("hull mask", hull_mask, landmarks, (height, width), "facehull")
    transformed = timer("colour transform", colour_transform, image, rng)
    source, target = (transformed, image) if rng.random() < 0.5 else (image, transformed)
    matrix = random_affine((height, width), rng)
    source = timer(
        "affine (source)",
        cv2.warpAffine,
        source,
        matrix,
        (width, height),
        None,
        cv2.INTER_LINEAR,
        cv2.BORDER_REFLECT,
    )
    region = timer("affine (mask)", cv2.warpAffine, region, matrix, (width, height))
    region = timer("elastic (mask)", elastic, region, rng)
    weights = timer("blend mask", blend_mask, region, rng) * float(
        rng.choice((0.25, 0.5, 0.75, 1.0))
    )

    def blend() -> np.ndarray:
        return cv2.blendLinear(source, target, weights, 1.0 - weights)

    fake = timer("blend", blend)
    mask = np.round(weights * 255).astype(np.uint8)
    seed = int(rng.integers(2**62))
    real, real_mask = timer(
        "recipe x2", parts["recipe"], target, np.zeros_like(mask), np.random.default_rng(seed)
    )
    fake, mask = timer("recipe x2", parts["recipe"], fake, mask, np.random.default_rng(seed))
    timer("paired photometric", parts["pair"], real, fake, rng)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=300)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    face, landmarks = astronaut_face()
    report = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        pool = write_pool(root, face, landmarks)
        rows = pool.to_dict("records")
        parts = {"recipe": build_recipe("sbi"), "pair": build_pair_transform("sbi")}
        rng = np.random.default_rng(0)

        # End to end, as the DataModule runs it.
        generator = SBI()

        def sbi_full(row: dict) -> None:
            real, fake, mask = generator.pair(read_face(root, row)[0], row["landmarks"], rng, row)
            mask = np.round(mask * 255).astype(np.uint8)
            seed = int(rng.integers(2**62))
            real, _ = parts["recipe"](real, np.zeros_like(mask), np.random.default_rng(seed))
            fake, _ = parts["recipe"](fake, mask, np.random.default_rng(seed))
            parts["pair"](real, fake, rng)

        for label, work in {
            "SBI full sample": sbi_full,
            "SBI self-blend only (SBI.pair)": lambda row: generator.pair(
                face, row["landmarks"], rng, row
            ),
        }.items():
            work(rows[0])
            start = time.perf_counter()
            for i in range(args.samples):
                work(rows[i % len(rows)])
            report[label] = 1000 * (time.perf_counter() - start) / args.samples

        bi = BI(k=10)
        bi.prepare(pool, root)
        bi_timer = Timer()
        for i in range(args.samples):
            row = rows[i % len(rows)]
            background, _ = bi_timer("read PNG", read_face, root, row)
            bi_timer("BI.pair", bi.pair, background, row["landmarks"], rng, row)
        report["BI sample"] = 1000 * sum(bi_timer.totals.values()) / args.samples

        timer = Timer()
        for i in range(args.samples):
            sbi_sample(rows[i % len(rows)], root, timer, rng, parts)
        breakdown = {name: 1000 * total / args.samples for name, total in timer.totals.items()}

    print(f"{SIZE} px faces, one thread, mean of {args.samples} samples\n")
    for name, ms in report.items():
        print(f"  {name:<34}{ms:7.2f} ms")
    print("\nSBI full sample, by step:")
    for name, ms in breakdown.items():
        print(f"  {name:<34}{ms:7.2f} ms")
    print(f"  {'(sum)':<34}{sum(breakdown.values()):7.2f} ms")
    print("\nBI sample, by step:")
    for name, total in bi_timer.totals.items():
        print(f"  {name:<34}{1000 * total / args.samples:7.2f} ms")
    RESULTS.mkdir(exist_ok=True)
    atomic_write_json(
        RESULTS / "augment_throughput.json",
        {
            "ms_per_sample": report,
            "sbi_breakdown_ms": breakdown,
            "size": SIZE,
            "samples": args.samples,
        },
    )


if __name__ == "__main__":
    main()
