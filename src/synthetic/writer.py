"""The machinery every synthetic dataset tree is written with (see :mod:`src.synthetic.layouts`).

A :class:`TreeWriter` makes the files of one dataset: it draws its people,
renders real videos once and reuses their frames for the fakes built on them,
encodes mp4 videos and archives, writes every file atomically and records what
it wrote, so that a marker file can declare the tree complete.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
import tempfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from src.files import atomic_write, atomic_write_json, atomic_write_text
from src.synthetic.faces import Identity, Person, build_person, random_identity
from src.synthetic.frames import Motion, Scene, compose, random_motion, random_scene
from src.synthetic.swaps import Look, SwapStyle, apply_look, swap_frame, tone_gain

ALL: tuple[str, ...] = ("ffpp", "dfd", "cdf2", "dfdc", "dfdcp", "dfw", "df1")
SIZES: tuple[str, ...] = ("default", "tiny")
FPS = 25.0


@dataclass(frozen=True)
class SizePreset:
    """How many of everything one size preset makes."""

    frames: dict[str, int]
    scale: float  # frame size relative to 256 x 256 (DFDC: 320 x 240)
    ffpp_pairs: tuple[int, int, int]  # train, val, test
    dfd_actors: int
    dfd_fakes: int
    cdf2_celebs: int
    cdf2_clips: int
    cdf2_youtube: int
    dfdc_test: int
    dfdc_train: int
    dfdcp_people: int
    dfdcp_clips: int
    dfdcp_fakes: int  # per method
    dfw_archives: int  # per folder
    dfw_sequences: int  # per archive
    df1_actors: int
    df1_split: tuple[int, int, int]


SIZE_PRESETS: dict[str, SizePreset] = {
    # Sized for the demo benchmark (a small share of its 15 minutes on two cores):
    # many short videos rather than few long ones, since a detector learns from identities
    # and scenes and a test interval narrows with videos, not frames. FF++ videos hold 3
    # frames (training draws all of them); the others 2 (tests use both). FF++ test has 28
    # pairs (56 real, 224 fake videos of the four c23 methods) so that an in-dataset
    # interval is about 10 points wide for a detector near 0.85 AUC.
    "default": SizePreset(
        frames={"ffpp": 3, "dfd": 2, "cdf2": 2, "dfdc": 2, "dfdcp": 2, "dfw": 2, "df1": 2},
        scale=1.0,
        ffpp_pairs=(16, 4, 28),
        dfd_actors=12,
        dfd_fakes=24,
        cdf2_celebs=16,
        cdf2_clips=2,
        cdf2_youtube=4,
        dfdc_test=40,
        dfdc_train=4,
        dfdcp_people=4,
        dfdcp_clips=2,
        dfdcp_fakes=4,
        dfw_archives=1,
        dfw_sequences=12,
        df1_actors=3,
        df1_split=(4, 2, 4),
    ),
    "tiny": SizePreset(
        frames=dict.fromkeys(ALL, 6),
        scale=0.5,
        ffpp_pairs=(1, 1, 1),
        dfd_actors=2,
        dfd_fakes=2,
        cdf2_celebs=2,
        cdf2_clips=1,
        cdf2_youtube=1,
        dfdc_test=2,
        dfdc_train=2,
        dfdcp_people=2,
        dfdcp_clips=1,
        dfdcp_fakes=1,
        dfw_archives=1,
        dfw_sequences=1,
        df1_actors=2,
        df1_split=(1, 1, 1),
    ),
}


@dataclass
class VideoRecipe:
    """Recipe of one real video: who is in it, how they move, where."""

    key: str  # unique; seeds the sensor noise
    person: Person
    motion: Motion
    scene: Scene


class TreeWriter:
    """Makes the files of one dataset under ``root`` and records what it wrote."""

    def __init__(self, name: str, root: Path, seed: int, size: str, tmp: Path) -> None:
        self.name = name
        self.root = root
        self.seed = seed
        self.size_name = size
        self.size = SIZE_PRESETS[size]
        self.tmp = tmp
        self.written: list[str] = []
        self._people: dict[str, Person] = {}
        self._frames: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {}

    # -- randomness ---------------------------------------------------------------------
    def rng(self, *keys: object) -> np.random.Generator:
        """A generator that depends only on the seed and ``keys`` (never on call order)."""
        words = [zlib.crc32(str(key).encode()) for key in keys]
        return np.random.default_rng([self.seed, *words])

    # -- people and videos --------------------------------------------------------------
    def person(self, pool: str, pid: str) -> Person:
        key = f"{pool}/{pid}"
        if key not in self._people:
            identity: Identity = random_identity(self.rng("identity", key))
            self._people[key] = build_person(identity)
        return self._people[key]

    def video(
        self, pool: str, pid: str, clip: str, height: int = 256, width: int = 256
    ) -> VideoRecipe:
        """The real video ``clip`` of person ``pid`` from people pool ``pool``."""
        key = f"{pool}/{pid}/{clip}"
        height, width = round(height * self.size.scale), round(width * self.size.scale)
        return VideoRecipe(
            key=key,
            person=self.person(pool, pid),
            motion=random_motion(self.rng("motion", key)),
            scene=random_scene(self.rng("scene", key), height, width),
        )

    def real(self, video: VideoRecipe, n_frames: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Frames (uint8 RGB) and landmarks of ``video``; cached, fakes reuse them."""
        cached = self._frames.get(video.key)
        if cached is None or len(cached[0]) < n_frames:
            frames, landmarks = [], []
            for index in range(n_frames):
                rng = self.rng("noise", video.key, index)
                frame, lm = compose(video.person, video.motion, video.scene, index, rng)
                frames.append(frame)
                landmarks.append(lm)
            cached = self._frames[video.key] = (frames, landmarks)
        return cached[0][:n_frames], cached[1][:n_frames]

    def fake(
        self, key: str, target: VideoRecipe, source: VideoRecipe, style: SwapStyle, n_frames: int
    ) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
        """Fake frames, blend masks and target landmarks: ``source``'s face on ``target``."""
        frames, landmarks = self.real(target, n_frames)
        rng = self.rng("fake", key)
        gain = tone_gain(style, self.rng("tone", key))
        fakes, masks = [], []
        for index, (frame, lm) in enumerate(zip(frames, landmarks, strict=True)):
            fake, mask = swap_frame(
                frame,
                lm,
                target.person,
                source.person,
                target.motion,
                source.motion,
                target.scene,
                index,
                style,
                rng,
                gain,
            )
            fakes.append(fake)
            masks.append(mask)
        return fakes, masks, landmarks

    def looked(self, key: str, frames: Sequence[np.ndarray], look: Look) -> list[np.ndarray]:
        return [apply_look(frame, look, self.rng("look", key, i)) for i, frame in enumerate(frames)]

    # -- writing ------------------------------------------------------------------------
    def write_bytes(self, relative: str, data: bytes) -> None:
        atomic_write(self.root / relative, lambda handle: handle.write(data))
        self.written.append(relative)

    def write_video(self, relative: str, frames: Sequence[np.ndarray]) -> None:
        """Encode RGB ``frames`` as an mp4v video at ``relative``, atomically."""
        self.write_bytes(relative, encode_mp4(frames, self.tmp))

    def write_mask(self, relative: str, masks: Sequence[np.ndarray]) -> None:
        """A mask video: the blend weight as white on black."""
        frames = [
            np.repeat(np.round(mask * 255).astype(np.uint8)[..., None], 3, axis=2) for mask in masks
        ]
        self.write_video(relative, frames)

    def write_text(self, relative: str, text: str) -> None:
        atomic_write_text(self.root / relative, text)
        self.written.append(relative)

    def write_json(self, relative: str, data: object) -> None:
        atomic_write_json(self.root / relative, data)
        self.written.append(relative)


def encode_mp4(frames: Sequence[np.ndarray], tmp: Path, fps: float = FPS) -> bytes:
    """The bytes of an mp4 (``mp4v``) holding RGB ``frames``; OpenCV writes BGR."""
    handle, name = tempfile.mkstemp(dir=tmp, suffix=".mp4")
    os.close(handle)  # OpenCV opens the file by name
    path = Path(name)
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write mp4v video to {path}")
    try:
        for frame in frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    data = path.read_bytes()
    path.unlink()
    return data


def tar_gz(files: dict[str, bytes]) -> bytes:
    """A reproducible .tar.gz (fixed times and owners) of ``files``, folders included."""
    buffer = io.BytesIO()
    folders = sorted(
        {str(Path(p).parents[i]) for p in files for i in range(len(Path(p).parts) - 1)}
    )
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for folder in folders:
            info = tarfile.TarInfo(folder)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(info)
        for path in sorted(files):
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(files[path]), 0o644, 0
            tar.addfile(info, io.BytesIO(files[path]))
    return gzip.compress(buffer.getvalue(), compresslevel=6, mtime=0)


def marker_path(root: Path, name: str) -> Path:
    """The file whose presence says dataset ``name`` under ``root`` is complete."""
    return root / f".dfbench-synth-{name}.json"


def read_marker(root: Path, name: str) -> dict | None:
    """The marker of a finished tree (None when absent or unreadable)."""
    try:
        marker = json.loads(marker_path(root, name).read_text())
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None
