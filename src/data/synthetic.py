"""An in-memory synthetic face DataModule for tests and quick demos.

Faces come from :mod:`src.data.render`; nothing touches the disk. Splits use
disjoint identities (a test face was never seen in training), videos have
several frames with head motion, half the videos (``fake_fraction``) are
fakes whose inner face comes from another identity of the same split, blended
through a soft mask that the batch carries. Every item is rendered on demand
from a seed derived from ``(seed, set, video, frame)``, so the data is the
same in every worker, rank and run.

Each test set is named after a fake style (:data:`~src.data.render.FAKE_STYLES`):
``test_sets: [blend, matched]`` gives two test sets with differently made
fakes, reported separately.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from src.data.base import DeepfakeDataModuleBase, batch_item
from src.data.render import (
    FAKE_STYLES,
    FakeStyle,
    Identity,
    Motion,
    blend_fake,
    pick_source,
    random_identity,
    random_motion,
    render_face,
    swap_mask,
)


class SyntheticFaceDataset(Dataset):
    """``n_videos x frames_per_video`` rendered frames following the batch contract.

    Args:
        name: the set's name; it seeds the set, so train/val/test differ.
        n_videos: number of videos (face sequences).
        frames_per_video: frames rendered per video.
        size: image size in pixels (square).
        style: how fakes are blended.
        fake_fraction: share of videos that are fakes.
        n_identities: identities the set draws its people from (default: one per video).
        seed: global seed.
        resample: draw new people and motion for every item on every access,
            from torch's RNG (which Lightning seeds per worker and epoch): an
            endless training stream that cannot be memorised. Labels stay fixed.
    """

    def __init__(
        self,
        name: str,
        n_videos: int,
        frames_per_video: int,
        size: int,
        style: FakeStyle,
        fake_fraction: float = 0.5,
        n_identities: int | None = None,
        seed: int = 0,
        resample: bool = False,
    ) -> None:
        if n_videos < 1 or frames_per_video < 1:
            raise ValueError(f"set {name!r}: n_videos and frames_per_video must be positive")
        self.name = name
        self.frames_per_video = frames_per_video
        self.size = size
        self.style = style
        self.resample = resample
        self._seed = [seed, zlib.crc32(name.encode())]
        rng = np.random.default_rng(self._seed)
        n_identities = max(2, n_identities or n_videos)
        self.identities = [random_identity(rng) for _ in range(n_identities)]
        n_fake = int(round(n_videos * fake_fraction))
        self.labels = (rng.permutation(n_videos) < n_fake).astype(np.float32)
        self.targets = rng.integers(0, n_identities, n_videos)
        self.sources = np.array([pick_source(t, self.identities, style, rng) for t in self.targets])
        self.motions = [random_motion(rng) for _ in range(n_videos)]
        self.video_keys = [f"synthetic/{name}/{v:05d}" for v in range(n_videos)]

    def __len__(self) -> int:
        return len(self.labels) * self.frames_per_video

    def _people(
        self, video: int, frame: int
    ) -> tuple[Identity, Identity, Motion, np.random.Generator]:
        """Target, source, motion and a pixel-noise RNG for one item."""
        if self.resample:
            rng = np.random.default_rng([*self._seed, int(torch.randint(0, 2**62, ()))])
            pool = [random_identity(rng) for _ in range(4)]
            return pool[0], pool[pick_source(0, pool, self.style, rng)], random_motion(rng), rng
        rng = np.random.default_rng([*self._seed, video, frame])
        target, source = self.identities[self.targets[video]], self.identities[self.sources[video]]
        return target, source, self.motions[video], rng

    def render(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """uint8 RGB image (H, W, 3) and float32 mask (H, W) of item ``index``."""
        video, frame = divmod(index, self.frames_per_video)
        target, source, motion, rng = self._people(video, frame)
        image = render_face(target, motion, frame, self.size, rng)
        if not self.labels[video]:
            return image, np.zeros((self.size, self.size), np.float32)
        source_image = render_face(source, motion, frame, self.size, rng)
        mask = swap_mask(target, motion, frame, self.size, self.style)
        return blend_fake(image, source_image, mask, self.style), mask

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        image, mask = self.render(index)
        video, frame = divmod(index, self.frames_per_video)
        mask_u8 = np.round(mask * 255).astype(np.uint8)
        return batch_item(image, mask_u8, int(self.labels[video]), True, index, video, frame)


class SyntheticFaceDataModule(DeepfakeDataModuleBase):
    """Synthetic train / val / test sets of rendered faces (see the module docstring).

    Args:
        train_videos, val_videos, test_videos: videos per set.
        frames_per_video: frames per validation and test video.
        train_frames_per_video: frames per training video.
        fake_fraction: share of fake videos in every set.
        train_style: fake style of the training and validation sets.
        test_sets: one test set per named fake style.
        resample_train: draw fresh people for every training item every epoch
            (see :class:`SyntheticFaceDataset`); validation and test stay fixed.
        seed: global seed.
        **kwargs: :class:`~src.data.base.DeepfakeDataModuleBase` arguments.
    """

    def __init__(
        self,
        train_videos: int = 512,
        val_videos: int = 64,
        test_videos: int = 64,
        frames_per_video: int = 4,
        train_frames_per_video: int = 1,
        fake_fraction: float = 0.5,
        train_style: str = "blend",
        test_sets: Sequence[str] = ("blend",),
        resample_train: bool = True,
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        unknown = sorted({train_style, *test_sets} - FAKE_STYLES.keys())
        if unknown:
            raise ValueError(f"unknown fake styles {unknown}; choose from {sorted(FAKE_STYLES)}")
        self.counts = {"train": train_videos, "val": val_videos, "test": test_videos}
        self.frames_per_video = frames_per_video
        self.train_frames_per_video = train_frames_per_video
        self.fake_fraction = fake_fraction
        self.train_style = train_style
        self.test_styles = list(test_sets)
        self.resample_train = resample_train
        self.seed = seed

    def _dataset(
        self, seed_name: str, n_videos: int, style: str, frames: int, resample: bool = False
    ) -> SyntheticFaceDataset:
        height, width = self.contract.input_size
        if height != width:
            raise ValueError(f"synthetic faces are square; got input size {height}x{width}")
        return SyntheticFaceDataset(
            seed_name,
            n_videos,
            frames,
            height,
            FAKE_STYLES[style],
            self.fake_fraction,
            seed=self.seed,
            resample=resample,
        )

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit"):
            train = self._dataset(
                "train",
                self.counts["train"],
                self.train_style,
                self.train_frames_per_video,
                self.resample_train,
            )
            self.sets["fit"] = [("train", train, train.video_keys)]
        if stage in (None, "fit", "validate"):
            val = self._dataset("val", self.counts["val"], self.train_style, self.frames_per_video)
            self.sets["validate"] = [("val", val, val.video_keys)]
        if stage in (None, "test", "predict"):
            tests = [
                (
                    style,
                    self._dataset(
                        f"test_{style}", self.counts["test"], style, self.frames_per_video
                    ),
                )
                for style in self.test_styles
            ]
            self.sets["test"] = self.sets["predict"] = [
                (style, ds, ds.video_keys) for style, ds in tests
            ]
