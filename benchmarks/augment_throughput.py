"""Milliseconds per SBI and BI training sample on one core, with a breakdown by step.

    .venv/bin/python benchmarks/augment_throughput.py [--samples 300]

Faces: the bundled astronaut photo, cropped 1.3x around its MTCNN box and
resized to 380 px, with its dlib 68 landmarks and face box, written as a PNG
the way the frame cache stores faces (BI's foreground pool: 12 tinted,
shifted copies from 6 "videos"). One thread (``cv2.setNumThreads(1)``,
``torch.set_num_threads(1)``). Times are the process's CPU time, so other
work on a shared machine does not count (on an idle one they equal wall time).

* SBI, full training sample: read the cached PNG, ``SBI().pair`` (the
  authors' region, self-blend, paired photometric transform at the blend's
  scale, final crop), both images resized to 380 px, the ``sbi`` recipe
  (flip) on the real and the fake with shared draws. The authors' code:
  ~36 ms for the self-blending step alone, ~66 ms for a full sample, on this
  machine class.
* LAA-Net's SBI sample: ``SBI(variant="laa").pair``, the ``laa_net_sbi``
  recipe on both, the paired transform at 380 px.
* BI: read the background PNG, ``BI.pair`` (neighbour pick, foreground read,
  down-sampled blend, post-processing, final crop).

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
from src.augment.landmarks import hull_mask, with_forehead
from src.augment.photometric import paired_photometric, source_transform
from src.augment.recipes import build_pair_transform, build_recipe
from src.augment.sbi import (
    SBI,
    affine_matrix,
    blend_mask,
    elastic,
    face_box,
    final_crop,
    sbi_region,
)
from src.data.faces import FaceDetector, Landmarker, crop_box
from src.data.frameset import _resize, read_face
from src.files import atomic_write_json

RESULTS = Path(__file__).resolve().parent / "results"
SIZE = 380


def astronaut_face() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The face crop, its 68 landmarks and its face box, in crop pixels."""
    image = data.astronaut()
    face = FaceDetector().detect([image])[0][0]
    landmarks = Landmarker()(image, face.box)
    x0, y0, x1, y1 = crop_box(face.box, 1.3, *image.shape[:2])
    scale = SIZE / (x1 - x0)
    crop = cv2.resize(image[y0:y1, x0:x1], (SIZE, SIZE), interpolation=cv2.INTER_LINEAR)
    box = (np.asarray(face.box, np.float32) - [x0, y0, x0, y0]) * scale
    return crop, ((landmarks - [x0, y0]) * scale).astype(np.float32), box


def write_pool(
    root: Path, face: np.ndarray, landmarks: np.ndarray, box: np.ndarray
) -> pd.DataFrame:
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
                    **dict(
                        zip(
                            ("face_x0", "face_y0", "face_x1", "face_y1"),
                            (box + [dx, dy, dx, dy]).tolist(),
                            strict=True,
                        )
                    ),
                }
            )
    return pd.DataFrame(rows)


class Timer:
    def __init__(self) -> None:
        self.totals: dict[str, float] = defaultdict(float)

    def __call__(self, name: str, function, *args):  # noqa: ANN001, ANN204
        start = time.process_time()
        result = function(*args)
        self.totals[name] += time.process_time() - start
        return result


def sbi_sample(row: dict, root: Path, timer: Timer, rng: np.random.Generator, parts: dict) -> None:
    """One full SBI training sample, step by step (the same work as FrameSet + SBI.pair)."""
    image, _ = timer("read PNG", read_face, root, row)
    points = row["landmarks"]
    height, width = image.shape[:2]
    rx0, ry0, rx1, ry1 = sbi_region(points)
    x0, y0, x1, y1 = max(rx0, 0), max(ry0, 0), min(rx1, width), min(ry1, height)
    work = image[y0:y1, x0:x1]
    shape = work.shape[:2]
    outline = with_forehead(points)[: 68 if rng.random() < 0.25 else 81]
    region = timer("hull mask", hull_mask, outline - [x0, y0], shape, "facehull")
    transformed = timer("source transform", source_transform, work, rng)
    source, target = (transformed, work) if rng.random() < 0.5 else (work, transformed)
    centre = ((rx0 + rx1) / 2 - 0.5 - x0, (ry0 + ry1) / 2 - 0.5 - y0)
    matrix = affine_matrix((ry1 - ry0, rx1 - rx0), rng, centre)
    size = (shape[1], shape[0])
    source = timer(
        "affine (source)",
        cv2.warpAffine,
        source,
        matrix,
        size,
        None,
        cv2.INTER_LINEAR,
        cv2.BORDER_REFLECT_101,
    )
    region = timer("affine (mask)", cv2.warpAffine, region, matrix, size, None, cv2.INTER_NEAREST)
    region = timer("elastic (mask)", elastic, region, rng)
    weights = timer("blend mask", blend_mask, region, rng, None, (ry1 - ry0, rx1 - rx0))
    weights = weights * float(rng.choice((0.25, 0.5, 0.75, 1.0)))

    def blend() -> np.ndarray:
        return cv2.blendLinear(source, target, weights, 1.0 - weights)

    fake = timer("blend", blend)
    real, fake = timer("paired photometric", paired_photometric, target, fake, rng)
    box = final_crop(face_box(row, points), rng)
    cut = (slice(max(box[1] - y0, 0), box[3] - y0), slice(max(box[0] - x0, 0), box[2] - x0))
    real, fake, weights = real[cut], fake[cut], weights[cut]

    def resize() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return tuple(
            cv2.resize(a, (SIZE, SIZE), interpolation=cv2.INTER_LINEAR)
            for a in (real, fake, np.round(weights * 255).astype(np.uint8))
        )

    real, fake, mask = timer("crop + resize to 380", resize)
    seed = int(rng.integers(2**62))
    timer("recipe x2", parts["recipe"], real, np.zeros_like(mask), np.random.default_rng(seed))
    timer("recipe x2", parts["recipe"], fake, mask, np.random.default_rng(seed))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=300)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    face, landmarks, box = astronaut_face()
    report = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        pool = write_pool(root, face, landmarks, box)
        rows = pool.to_dict("records")
        parts = {"recipe": build_recipe("sbi")}
        laa_recipe, laa_pair = build_recipe("laa_net_sbi"), build_pair_transform("laa_net_sbi")
        rng = np.random.default_rng(0)
        blank = np.zeros(face.shape[:2], np.uint8)
        size = (SIZE, SIZE)

        # End to end, as the DataModule runs them.
        sbi, laa = SBI(), SBI(variant="laa")

        def sbi_full(row: dict) -> None:
            image = read_face(root, row)[0]
            real, fake, mask = sbi.pair(image, blank, rng, row)
            mask = np.round(mask * 255).astype(np.uint8)
            seed = int(rng.integers(2**62))
            real, _ = parts["recipe"](
                _resize(real, size), np.zeros(size, np.uint8), np.random.default_rng(seed)
            )
            fake, _ = parts["recipe"](
                _resize(fake, size), _resize(mask, size), np.random.default_rng(seed)
            )

        def laa_full(row: dict) -> None:
            image = read_face(root, row)[0]
            real, fake, mask = laa.pair(image, blank, rng, row)
            mask = np.round(mask * 255).astype(np.uint8)
            seed = int(rng.integers(2**62))
            real, _ = laa_recipe(
                _resize(real, size), np.zeros(size, np.uint8), np.random.default_rng(seed)
            )
            fake, _ = laa_recipe(
                _resize(fake, size), _resize(mask, size), np.random.default_rng(seed)
            )
            laa_pair(real, fake, rng)

        for label, work in {
            "SBI full sample": sbi_full,
            "SBI self-blend only (SBI.pair)": lambda row: sbi.pair(face, blank, rng, row),
            "LAA-Net SBI full sample": laa_full,
        }.items():
            work(rows[0])
            start = time.process_time()
            for i in range(args.samples):
                work(rows[i % len(rows)])
            report[label] = 1000 * (time.process_time() - start) / args.samples

        bi = BI(k=10)
        bi.prepare(pool, root)
        bi_timer = Timer()
        for i in range(args.samples):
            row = rows[i % len(rows)]
            background, _ = bi_timer("read PNG", read_face, root, row)
            bi_timer("BI.pair", bi.pair, background, blank, rng, row)
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
