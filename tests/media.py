"""Small real videos for data tests: the bundled astronaut photo with head motion.

A fake pastes a colour-shifted copy of the face region back through a soft
circular mask, and its mask video is written beside it, as FF++ ships them.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from skimage import data

SIZE = 192
FACE_CENTRE = (81, 69)  # of the astronaut's face at 192 px


def write_video(path: Path, frames: list[np.ndarray], fps: int = 25) -> Path:
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    for frame in frames:
        writer.write(
            cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
            if frame.ndim == 3
            else cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        )
    writer.release()
    return path


def moving_face(n_frames: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    base = cv2.resize(data.astronaut(), (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    base = np.clip(base.astype(np.int16) + rng.integers(-25, 25, 3), 0, 255).astype(np.uint8)
    phase = rng.uniform(0, 6.3)
    frames = []
    for t in range(n_frames):
        matrix = cv2.getRotationMatrix2D(FACE_CENTRE, 6 * np.sin(phase + t / 4), 1.0)
        matrix[:, 2] += (6 * np.sin(phase + t / 5), 4 * np.cos(phase + t / 6))
        frames.append(cv2.warpAffine(base, matrix, (SIZE, SIZE), borderMode=cv2.BORDER_REFLECT))
    return frames


def fake_of(frames: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    fakes, masks = [], []
    for frame in frames:
        mask = np.zeros(frame.shape[:2], np.float32)
        cv2.circle(mask, (FACE_CENTRE[0] + 4, FACE_CENTRE[1] + 12), 22, 1.0, -1)
        soft = cv2.GaussianBlur(mask, (0, 0), 3)[..., None]
        shifted = np.clip(frame.astype(np.float32) * (1.15, 0.9, 0.9), 0, 255)
        fakes.append((soft * shifted + (1 - soft) * frame).astype(np.uint8))
        masks.append((mask * 255).astype(np.uint8))
    return fakes, masks


def write_dataset(root: Path, n_frames: int = 12) -> list[dict]:
    """Per split one real and one fake video (with mask); returns video-table rows."""
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for seed, split in enumerate(("train", "val", "test")):
        real = moving_face(n_frames, seed)
        fake, masks = fake_of(moving_face(n_frames, seed + 10))
        write_video(root / f"{split}_real.mp4", real)
        write_video(root / f"{split}_fake.mp4", fake)
        write_video(root / f"{split}_fake_mask.mp4", masks)
        common = {
            "split": split,
            "dataset": "toy",
            "compression": "",
            "source_id": "",
            "target_id": "",
        }
        rows.append(
            {
                **common,
                "video_key": f"toy/real/{split}",
                "path": str(root / f"{split}_real.mp4"),
                "label": 0,
                "method": "youtube",
                "mask_path": "",
            }
        )
        rows.append(
            {
                **common,
                "video_key": f"toy/Swap/{split}",
                "path": str(root / f"{split}_fake.mp4"),
                "label": 1,
                "method": "Swap",
                "mask_path": str(root / f"{split}_fake_mask.mp4"),
            }
        )
    return rows


def write_defects(root: Path) -> list[dict]:
    """A truncated mp4, an empty file and a video without a face."""
    root.mkdir(parents=True, exist_ok=True)
    good = write_video(root / "good.mp4", moving_face(10, 99))
    truncated = root / "truncated.mp4"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    (root / "empty.mp4").write_bytes(b"")
    rng = np.random.default_rng(0)
    write_video(
        root / "noface.mp4",
        [rng.integers(60, 90, (SIZE, SIZE, 3), dtype=np.uint8) for _ in range(10)],
    )
    return [
        {
            "video_key": f"toy/defect/{name}",
            "path": str(root / f"{name}.mp4"),
            "label": 0,
            "split": "test",
            "dataset": "toy",
            "method": "youtube",
            "mask_path": "",
        }
        for name in ("truncated", "empty", "noface")
    ]
