"""Frames per second of dfbench's preprocessing beside a dlib-HOG pipeline, on one core.

    .venv/bin/python benchmarks/preprocess_throughput.py [--frames 32] [--repeats 3]

Both pipelines process the same synthetic 1280x720 mp4 (the bundled astronaut
photo moving over a background, a face about 200 px tall as in FF++ HQ
videos), sample the same evenly spaced frames, and write lossless PNG crops.
Both run on one thread (``torch.set_num_threads(1)``, ``cv2.setNumThreads(1)``):
the figures are per core.

* dfbench: decode -> MTCNN on all frames of the video in one batch, on a copy
  downscaled to 360 px with a minimum face of 10 % of it -> dlib 68 landmarks
  on the full frame -> square crop -> PNG.
* dlib-HOG baseline, as the most used benchmark (DeepfakeBench) preprocesses:
  per frame, dlib's frontal HOG detector with one upsampling on the
  full-resolution frame, largest face, 68 landmarks (their 81-point model is
  not distributed; its cost is the same), similarity alignment on five key
  points to a 256 px crop -> PNG. (Some of its versions then detect and
  landmark again on the aligned crop; that is left out, so the baseline here
  is the cheaper one.)

Results go to ``benchmarks/results/preprocess_throughput.json`` and the terminal.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from skimage import data

from src.data.faces import FaceDetector, Landmarker, crop_box, landmark_model_path, select_faces
from src.data.video_io import read_frames, write_png
from src.files import atomic_write_json

RESULTS = Path(__file__).resolve().parent / "results"
# Five-point template of a 256 px aligned face (eye centres, nose tip, mouth corners).
TEMPLATE = np.array(
    [[89.0, 110.0], [167.0, 110.0], [128.0, 152.0], [97.0, 190.0], [159.0, 190.0]], np.float32
)


def make_video(path: Path, n_frames: int = 96) -> Path:
    face = cv2.resize(data.astronaut(), (640, 640), interpolation=cv2.INTER_LINEAR)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (1280, 720))
    yy, xx = np.mgrid[0:720, 0:1280]
    background = np.stack([xx % 256, yy % 256, (xx + yy) % 256], -1).astype(np.uint8)
    for t in range(n_frames):
        frame = background.copy()
        x, y = 320 + int(40 * np.sin(t / 9)), 40 + int(20 * np.cos(t / 7))
        frame[y : y + 640, x : x + 640] = face[: 720 - y]
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def dfbench_pipeline(
    video: Path, count: int, out: Path, detector: FaceDetector, landmarker: Landmarker
) -> dict:
    timings = dict.fromkeys(("decode", "detect", "landmarks", "crop_png"), 0.0)
    start = time.perf_counter()
    frames, _ = read_frames(str(video), count)
    timings["decode"] = time.perf_counter() - start
    indices = sorted(frames)
    start = time.perf_counter()
    detections = detector.detect([frames[i] for i in indices])
    timings["detect"] = time.perf_counter() - start
    kept = 0
    for index, faces in zip(indices, detections, strict=True):
        chosen = select_faces(faces)
        if not chosen:
            continue
        image = frames[index]
        start = time.perf_counter()
        landmarker(image, chosen[0].box)
        timings["landmarks"] += time.perf_counter() - start
        start = time.perf_counter()
        x0, y0, x1, y1 = crop_box(chosen[0].box, 1.3, *image.shape[:2])
        write_png(out / f"ours_{index:06d}.png", image[y0:y1, x0:x1], 1)
        timings["crop_png"] += time.perf_counter() - start
        kept += 1
    return timings | {"faces": kept, "frames": len(indices)}


def hog_pipeline(video: Path, count: int, out: Path, hog, predictor) -> dict:  # noqa: ANN001 (dlib types)
    import dlib

    timings = dict.fromkeys(("decode", "detect", "landmarks", "crop_png"), 0.0)
    start = time.perf_counter()
    frames, _ = read_frames(str(video), count)
    timings["decode"] = time.perf_counter() - start
    kept = 0
    for index in sorted(frames):
        image = frames[index]
        start = time.perf_counter()
        faces = hog(image, 1)
        timings["detect"] += time.perf_counter() - start
        if not len(faces):
            continue
        face = max(faces, key=lambda rect: rect.width() * rect.height())
        start = time.perf_counter()
        shape = predictor(
            image, dlib.rectangle(face.left(), face.top(), face.right(), face.bottom())
        )
        points = np.array([(p.x, p.y) for p in shape.parts()], np.float32)
        timings["landmarks"] += time.perf_counter() - start
        start = time.perf_counter()
        five = np.stack(
            [points[36:42].mean(0), points[42:48].mean(0), points[30], points[48], points[54]]
        ).astype(np.float32)
        matrix, _ = cv2.estimateAffinePartial2D(five, TEMPLATE)
        aligned = cv2.warpAffine(image, matrix, (256, 256))
        write_png(out / f"hog_{index:06d}.png", aligned, 1)
        timings["crop_png"] += time.perf_counter() - start
        kept += 1
    return timings | {"faces": kept, "frames": len(frames)}


def best_of(run, repeats: int) -> dict:  # noqa: ANN001
    runs = [run() for _ in range(repeats)]
    return min(runs, key=lambda r: sum(r[k] for k in ("decode", "detect", "landmarks", "crop_png")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=32, help="frames sampled from the video")
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs per pipeline; the fastest counts"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)

    import dlib

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        video = make_video(tmp_path / "face_720p.mp4")
        detector, landmarker = FaceDetector(), Landmarker()
        hog, predictor = (
            dlib.get_frontal_face_detector(),
            dlib.shape_predictor(str(landmark_model_path())),
        )
        dfbench_pipeline(
            video, 4, tmp_path, detector, landmarker
        )  # warm-up (model loading, allocations)
        results = {
            "dfbench (MTCNN @360 px, batched)": best_of(
                lambda: dfbench_pipeline(video, args.frames, tmp_path, detector, landmarker),
                args.repeats,
            ),
            "dlib HOG (upsample 1, full frame)": best_of(
                lambda: hog_pipeline(video, args.frames, tmp_path, hog, predictor), args.repeats
            ),
        }

    print(
        f"{args.frames} evenly spaced frames of a 1280x720 mp4, one thread, best of {args.repeats}\n"
    )
    print(
        f"{'pipeline':<36}{'frames/s':>10}{'decode':>9}{'detect':>9}{'landmk':>9}{'crop+png':>10}  faces"
    )
    for name, r in results.items():
        total = sum(r[k] for k in ("decode", "detect", "landmarks", "crop_png"))
        r["total_s"] = total
        r["frames_per_s"] = r["frames"] / total
        per_frame = {
            k: 1000 * r[k] / r["frames"] for k in ("decode", "detect", "landmarks", "crop_png")
        }
        r["ms_per_frame"] = per_frame
        print(
            f"{name:<36}{r['frames_per_s']:>10.1f}"
            + "".join(f"{per_frame[k]:>8.1f}ms" for k in ("decode", "detect", "landmarks"))
            + f"{per_frame['crop_png']:>8.1f}ms  {r['faces']}/{r['frames']}"
        )
    ours, theirs = results.values()
    speedup = ours["frames_per_s"] / theirs["frames_per_s"]
    print(f"\nspeed-up: {speedup:.2f}x frames per second per core")
    RESULTS.mkdir(exist_ok=True)
    atomic_write_json(
        RESULTS / "preprocess_throughput.json",
        {
            "results": results,
            "speedup": speedup,
            "frames": args.frames,
            "machine": platform.processor() or platform.machine(),
        },
    )


if __name__ == "__main__":
    main()
