"""One set of cached face frames as a Dataset of batch-contract items.

Evaluation sets serve every cached frame in a fixed order; training sets serve
``k`` items per video, each a frame drawn afresh (from torch's RNG) from one of
``k`` equal stretches of the video's frames. Pseudo-fake training items are
(real, fake) pairs that share every augmentation draw; an evaluation set given a
generator and ``pseudo_seed`` serves every frame with its fixed-seed
pseudo-fake (:mod:`src.data.pseudo`). The options are described with
:class:`~src.data.datamodule.DeepfakeDataModule`.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import cv2
import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from src.contracts import Augment, PairAugment, PseudoFakeGenerator, SideData
from src.data.base import batch_item
from src.data.pseudo import make_pseudo_fake, pseudo_video_keys, stack_pair, validation_rng
from src.errors import DFBenchError

#: What to do about a damaged crop when its table does not record its command.
DEFAULT_REPAIR = (
    "re-run `dfbench preprocess` with the arguments that wrote its table "
    "(videos with damaged crops are redone)"
)


class DamagedCropError(DFBenchError):
    """A cached crop that is missing or cannot be decoded; the message says how to repair it."""


def read_face(
    cache_dir: Path, row: dict[str, Any], repair: str = DEFAULT_REPAIR
) -> tuple[np.ndarray, np.ndarray | None]:
    """The cached RGB face crop of a frame-table row and its uint8 mask (None: no mask).

    Raises:
        DamagedCropError: a crop is missing or cannot be decoded (cut short); the
            message names it and ends with ``repair``.
    """
    path = cache_dir / row["crop_path"]
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DamagedCropError(
            f"face crop missing or unreadable: {path} (video {row['video_key']}); {repair}"
        )
    mask = None
    if row.get("crop_mask_path"):
        mask_path = cache_dir / row["crop_mask_path"]
        mask = cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE)
        if mask is None:
            raise DamagedCropError(
                f"mask crop missing or unreadable: {mask_path} (video {row['video_key']}); {repair}"
            )
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB), mask


def read_side_array(folder: Path, row: dict[str, Any], name: str) -> np.ndarray:
    """The named per-frame array of a row: the 8-bit PNG ``<folder>/<crop_path>``."""
    path = folder / row["crop_path"]
    array = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if array is None:
        raise FileNotFoundError(f"side_data {name!r}: missing or unreadable {path}")
    return array


def frame_seed(row: dict[str, Any]) -> int:
    """A seed fixed by the frame (its crop path), the same in every run, worker and rank."""
    return zlib.crc32(str(row["crop_path"]).encode())


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    height, width = size
    if image.shape[:2] == (height, width):
        return image
    shrinking = image.shape[0] > height
    return cv2.resize(
        image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    )


class FrameSet(Dataset):
    """Frames of one set, grouped by video.

    Args:
        frames: frame-table rows of this set.
        cache_dir: root the crop paths are relative to.
        size: output (height, width).
        frames_per_video: None: every row is one item (evaluation). An int k:
            k items per video, each a frame drawn afresh on every access (training).
        augment: training augmentation at the output size.
        pseudo_fake: with it, every item is a (real, pseudo-fake) pair.
        pseudo_seed: an evaluation set's pseudo-fakes come from generators seeded by
            this and the frame (the same images on every pass); its fakes count as
            videos of their own (see :mod:`src.data.pseudo`).
        perturb: a test-time perturbation of the face crop (before resizing),
            seeded by the frame.
        pair_transform: a photometric transform with one draw for both images
            of each (real, pseudo-fake) pair, applied after ``augment``.
        side_data: ``{name: folder}`` of per-frame arrays added to the side data.
        repair: ``{video_key: what to run}`` when a video's crop turns out damaged
            (the command its frame table records); others get generic advice.
    """

    def __init__(
        self,
        frames: pd.DataFrame,
        cache_dir: str | Path,
        size: tuple[int, int],
        frames_per_video: int | None = None,
        augment: Augment | None = None,
        pseudo_fake: PseudoFakeGenerator | None = None,
        perturb: Augment | None = None,
        pair_transform: PairAugment | None = None,
        side_data: Mapping[str, str | Path] | None = None,
        repair: Mapping[str, str] | None = None,
        pseudo_seed: int | None = None,
    ) -> None:
        if frames.empty:
            raise DFBenchError("a set with no frames")
        frames = frames.sort_values(
            ["video_key", "frame_idx", "face_idx"], kind="stable"
        ).reset_index(drop=True)
        self.rows = frames.to_dict("records")
        self.cache_dir = Path(cache_dir)
        self.size = size
        self.frames_per_video = frames_per_video
        self.augment = augment
        self.pseudo_fake = pseudo_fake
        self.perturb = perturb
        self.pair_transform = pair_transform
        self.side_data = {name: Path(folder) for name, folder in (side_data or {}).items()}
        self.repair = repair or {}
        self.pseudo_seed = pseudo_seed
        if pseudo_seed is not None and (pseudo_fake is None or frames_per_video is not None):
            raise DFBenchError("pseudo_seed is for evaluation sets given a pseudo_fake generator")
        keys: list[str] = sorted(frames["video_key"].unique())
        video_of = {key: i for i, key in enumerate(keys)}
        self.video_idx = np.array([video_of[k] for k in frames["video_key"]], dtype=np.int64)
        starts = np.searchsorted(self.video_idx, np.arange(len(keys) + 1))
        self.video_rows = [np.arange(starts[v], starts[v + 1]) for v in range(len(keys))]
        self.video_keys = pseudo_video_keys(keys) if pseudo_seed is not None else keys

    def __len__(self) -> int:
        if self.frames_per_video is None:
            return len(self.rows)
        return len(self.video_keys) * self.frames_per_video

    def _row_for(self, index: int) -> int:
        if self.frames_per_video is None:
            return index
        video, slot = divmod(index, self.frames_per_video)
        rows = self.video_rows[video]
        # One frame from the slot-th of k equal stretches of the video.
        low = slot * len(rows) // self.frames_per_video
        high = max((slot + 1) * len(rows) // self.frames_per_video, low + 1)
        return int(rows[min(int(torch.randint(low, high, ())), len(rows) - 1)])

    def item_labels(self) -> np.ndarray:
        """The label of every item, in item order (what a class-balanced sampler draws from)."""
        if self.pseudo_seed is not None:
            raise RuntimeError("an evaluation set of pairs has no per-item label to sample by")
        labels = np.array([self.rows[r[0]]["label"] for r in self.video_rows], dtype=np.int64)
        if self.frames_per_video is None:
            return np.array([row["label"] for row in self.rows], dtype=np.int64)
        return np.repeat(labels, self.frames_per_video)

    def side(self, row: dict[str, Any]) -> SideData:
        """The row's side data: its fields and, when configured, its named arrays (read-only)."""
        if not self.side_data:
            return MappingProxyType(row)
        arrays = {
            name: read_side_array(folder, row, name) for name, folder in self.side_data.items()
        }
        return MappingProxyType(row | arrays)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        row_index = self._row_for(index)
        row = self.rows[row_index]
        side = self.side(row)
        image, mask = read_face(
            self.cache_dir, row, self.repair.get(row["video_key"], DEFAULT_REPAIR)
        )
        has_mask = mask is not None or row["label"] == 0
        if mask is None:
            mask = np.zeros(image.shape[:2], np.uint8)
        video, frame = int(self.video_idx[row_index]), int(row["frame_idx"])
        rng = (
            np.random.default_rng(int(torch.randint(0, 2**62, ())))
            if self.frames_per_video
            else None
        )
        if self.perturb is not None:
            image, mask = self.perturb(image, mask, np.random.default_rng(frame_seed(row)), side)
        if self.pseudo_fake is None:
            image, mask = self._prepare(image, mask, rng, side)
            return batch_item(image, mask, row["label"], has_mask, index, video, frame)
        fake_video = video
        if rng is None:
            if self.pseudo_seed is None:
                raise RuntimeError("an evaluation set of pairs needs pseudo_seed")
            rng = validation_rng(self.pseudo_seed, str(row["crop_path"]))
            fake_video = len(self.video_rows) + video
        image, fake, fake_mask = make_pseudo_fake(self.pseudo_fake, image, rng, side)
        # The pair shares every draw of the recipe (flip, crop, colour), as the
        # authors transform a real and its fake together; then the paired
        # photometric transform (SBI's) sees both at once.
        shared = int(rng.integers(2**62))
        blank = np.zeros_like(fake_mask)  # a real's blend mask (the real may be re-cropped)
        real, real_mask = self._prepare(image, blank, np.random.default_rng(shared), side)
        fake, fake_mask = self._prepare(fake, fake_mask, np.random.default_rng(shared), side)
        if self.pair_transform is not None and self.frames_per_video:
            real, fake = self.pair_transform(real, fake, rng)
        return stack_pair(
            batch_item(real, real_mask, 0, True, 2 * index, video, frame),
            batch_item(fake, fake_mask, 1, True, 2 * index + 1, fake_video, frame),
        )

    def _prepare(
        self,
        image: np.ndarray,
        mask: np.ndarray,
        rng: np.random.Generator | None,
        side: SideData,
    ) -> tuple[np.ndarray, np.ndarray]:
        image, mask = _resize(image, self.size), _resize(mask, self.size)
        if self.augment is not None and rng is not None:
            image, mask = self.augment(image, mask, rng, side)
        return image, mask
