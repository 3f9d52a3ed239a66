"""The shared DataModule: frame tables of one or more datasets -> batches.

Sets come from frame tables written by ``dfbench preprocess``
(``<cache_dir>/tables/<name>.parquet``), or from DeepfakeBench JSON indexes
(a path ending in ``.json``: frames that benchmark already extracted), named
in the config::

    data:
      class_path: src.data.DeepfakeDataModule
      init_args:
        cache_dir: data/cache
        train: [ffpp_c23]            # rows of split "train"
        val: null                    # default: the training tables' "val" rows
        test: [ffpp_c23, cdf2, dfd]  # each table's "test" rows, reported separately

Training draws ``train_frames_per_video`` frames per video afresh every epoch
(from torch's RNG, which Lightning seeds per worker and epoch), one from each
of that many equal stretches of the video's cached frames, so they spread over
the video and never repeat within an epoch. Validation and test use every
cached frame, in a fixed order, so ``sample_idx`` and ``video_idx`` are the same
on every rank.

Options for the papers' protocols:

* ``methods``: keep only these manipulations' fakes (reals always stay), for
  cross-manipulation (train on one FF++ method, test on each).
* ``pseudo_fake``: a generator ``(image, landmarks, rng) -> (fake, mask)``
  (SBI, BI from ``src.augment``); training then uses real frames only, and each
  real yields the pair (real, its pseudo-fake) in the same batch, as LAA-Net and
  SBI train. ``batch_size`` counts reals, so a batch holds twice as many images.
  A generator with a ``prepare(frames, cache_dir)`` method gets the training
  frames first (BI needs the pool of faces).
* ``train_augment``: a callable ``(image, mask, rng) -> (image, mask)`` applied
  to training faces at the input size (paper recipes come from ``src.augment``).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from src.data.base import DeepfakeDataModuleBase, batch_item
from src.data.deepfakebench import read_deepfakebench_json
from src.data.preprocess import load_frame_table


class PseudoFakeGenerator(Protocol):
    """Turns a real face into a fake with a known blend mask (SBI, BI, ...).

    ``__call__(image, landmarks, rng, row=None) -> (fake, mask)``: ``image`` is
    the RGB uint8 face crop, ``landmarks`` its 68 x 2 points in crop pixels,
    ``row`` the frame-table row (for generators that need the video, e.g. BI
    excludes faces of the same video); ``mask`` is float32 in [0, 1].

    A generator may also define ``pair(image, landmarks, rng, row=None) ->
    (real, fake, mask)`` when it may change the real as well (SBI transforms
    either the source or the target); the DataModule then uses that real.
    """

    def __call__(
        self,
        image: np.ndarray,
        landmarks: np.ndarray,
        rng: np.random.Generator,
        row: dict | None = None,
    ) -> tuple[np.ndarray, np.ndarray]: ...


Augment = Callable[[np.ndarray, np.ndarray, np.random.Generator], tuple[np.ndarray, np.ndarray]]
PairAugment = Callable[[np.ndarray, np.ndarray, np.random.Generator], tuple[np.ndarray, np.ndarray]]


def resolve_table(name: str, cache_dir: str | Path) -> Path:
    """A table name (``<cache_dir>/tables/<name>.parquet``), or a path to a .parquet or .json file."""
    if name.endswith((".parquet", ".json")):
        return Path(name)
    return Path(cache_dir) / "tables" / f"{name}.parquet"


def read_face(cache_dir: Path, row: dict[str, Any]) -> tuple[np.ndarray, np.ndarray | None]:
    """The cached RGB face crop of a frame-table row and its uint8 mask (None: no mask)."""
    path = cache_dir / row["crop_path"]
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(
            f"face crop missing or unreadable: {path} (re-run `dfbench preprocess`)"
        )
    mask = None
    if row.get("crop_mask_path"):
        mask_path = cache_dir / row["crop_mask_path"]
        mask = cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE)
        if mask is None:
            raise FileNotFoundError(f"mask crop missing or unreadable: {mask_path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB), mask


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
        perturb: a test-time perturbation of the face crop (before resizing).
        pair_transform: ``(real, fake, rng) -> (real, fake)`` with shared random
            parameters, applied to each (real, pseudo-fake) pair after ``augment``.
    """

    def __init__(
        self,
        frames: pd.DataFrame,
        cache_dir: str | Path,
        size: tuple[int, int],
        frames_per_video: int | None = None,
        augment: Augment | None = None,
        pseudo_fake: PseudoFakeGenerator | None = None,
        perturb: Callable[[np.ndarray, dict], np.ndarray] | None = None,
        pair_transform: PairAugment | None = None,
    ) -> None:
        if frames.empty:
            raise ValueError("a set with no frames")
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
        self.video_keys: list[str] = sorted(frames["video_key"].unique())
        video_of = {key: i for i, key in enumerate(self.video_keys)}
        self.video_idx = np.array([video_of[k] for k in frames["video_key"]], dtype=np.int64)
        starts = np.searchsorted(self.video_idx, np.arange(len(self.video_keys) + 1))
        self.video_rows = [np.arange(starts[v], starts[v + 1]) for v in range(len(self.video_keys))]

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

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        row_index = self._row_for(index)
        row = self.rows[row_index]
        image, mask = read_face(self.cache_dir, row)
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
            image = self.perturb(image, row)
        if self.pseudo_fake is None:
            image, mask = self._prepare(image, mask, rng)
            return batch_item(image, mask, row["label"], has_mask, index, video, frame)
        pair = getattr(self.pseudo_fake, "pair", None)
        if pair is not None:
            image, fake, fake_mask = pair(image, row["landmarks"], rng, row)
        else:
            fake, fake_mask = self.pseudo_fake(image, row["landmarks"], rng, row)
        fake_mask = np.round(np.clip(fake_mask, 0, 1) * 255).astype(np.uint8)
        # The pair shares every draw of the recipe (flip, crop, colour), as the
        # authors transform a real and its fake together; then the paired
        # photometric transform (SBI's) sees both at once.
        shared = int(rng.integers(2**62))
        real, real_mask = self._prepare(image, mask, np.random.default_rng(shared))
        fake, fake_mask = self._prepare(fake, fake_mask, np.random.default_rng(shared))
        if self.pair_transform is not None:
            real, fake = self.pair_transform(real, fake, rng)
        items = [
            batch_item(real, real_mask, 0, True, 2 * index, video, frame),
            batch_item(fake, fake_mask, 1, True, 2 * index + 1, video, frame),
        ]
        return {key: torch.stack([items[0][key], items[1][key]]) for key in items[0]}

    def _prepare(
        self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator | None
    ) -> tuple[np.ndarray, np.ndarray]:
        image, mask = _resize(image, self.size), _resize(mask, self.size)
        if self.augment is not None and rng is not None:
            image, mask = self.augment(image, mask, rng)
        return image, mask


class TestPerturbation:
    """A robustness perturbation of a test face, seeded by the frame so every run,
    worker and rank perturbs a face the same way."""

    def __init__(self, name: str, level: int) -> None:
        self.name, self.level = name, level

    def __call__(self, image: np.ndarray, row: dict) -> np.ndarray:
        from src.augment.perturb import perturb

        rng = np.random.default_rng(zlib.crc32(str(row["crop_path"]).encode()))
        return perturb(image, self.name, self.level, rng)


def named_pseudo_fake(name: str) -> PseudoFakeGenerator | None:
    """``sbi``, ``sbi_laa``, ``bi`` or ``none`` as a generator."""
    if name == "none":
        return None
    if name in ("sbi", "sbi_laa"):
        from src.augment.sbi import SBI

        return SBI(variant="laa" if name == "sbi_laa" else "sbi")
    if name == "bi":
        from src.augment.bi import BI

        return BI()
    raise ValueError(
        f"unknown pseudo_fake {name!r}; choose sbi, sbi_laa, bi or none (or give a generator)"
    )


def collate_pairs(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Collate (real, pseudo-fake) pairs into one flat batch: real, fake, real, fake, ..."""
    batch = default_collate(items)
    return {key: value.flatten(0, 1) for key, value in batch.items()}


class DeepfakeDataModule(DeepfakeDataModuleBase):
    """Train / val / test sets from frame tables (see the module docstring).

    Args:
        cache_dir: the frame cache (``dfbench preprocess --cache``).
        train: tables whose ``train`` rows train the detector.
        val: tables whose ``val`` rows choose the checkpoint (default: ``train``'s).
        test: tables whose ``test`` rows are evaluated, each reported under its name.
        train_frames_per_video: frames per training video drawn every epoch.
        methods: fakes of these methods only (None: all).
        pseudo_fake: train on reals, each paired with its pseudo-fake: a
            generator, or a name: ``sbi``, ``sbi_laa`` (LAA-Net's variant),
            ``bi``, ``none``.
        train_augment: training augmentation at the input size: a callable or
            the name of a paper recipe (:func:`src.augment.recipes.build_recipe`).
        test_perturbation: a robustness perturbation applied to every test
            face (:data:`src.augment.perturb.PERTURBATIONS`), None for clean.
        test_perturbation_level: its severity, 1-5.
        deepfakebench_root: where the relative frame paths of DeepfakeBench JSON
            indexes (tables given as ``.json`` files) start.
        **kwargs: :class:`~src.data.base.DeepfakeDataModuleBase` arguments.
    """

    def __init__(
        self,
        cache_dir: str = "data/cache",
        train: Sequence[str] = (),
        val: Sequence[str] | None = None,
        test: Sequence[str] = (),
        train_frames_per_video: int = 8,
        methods: Sequence[str] | None = None,
        pseudo_fake: str | PseudoFakeGenerator | None = None,
        train_augment: str | Augment | None = None,
        test_perturbation: str | None = None,
        test_perturbation_level: int = 3,
        deepfakebench_root: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.cache_dir = Path(cache_dir)
        self.deepfakebench_root = deepfakebench_root
        self.train_tables = list(train)
        self.val_tables = list(val) if val is not None else list(train)
        self.test_tables = list(test)
        self.train_frames_per_video = train_frames_per_video
        self.methods = list(methods) if methods is not None else None
        self.pseudo_fake = (
            named_pseudo_fake(pseudo_fake) if isinstance(pseudo_fake, str) else pseudo_fake
        )
        self.train_augment = train_augment
        self.test_perturbation = test_perturbation
        self.test_perturbation_level = test_perturbation_level
        self._tables: dict[str, pd.DataFrame] = {}

    def table(self, name: str) -> pd.DataFrame:
        if name not in self._tables:
            path = resolve_table(name, self.cache_dir)
            if path.suffix == ".json":
                table = read_deepfakebench_json(path, data_root=self.deepfakebench_root)
                table["landmarks"] = [
                    np.full((68, 2), np.nan, np.float32)
                    if v is None
                    else np.asarray(v, np.float32).reshape(-1, 2)
                    for v in table["landmarks"]
                ]
                self._tables[name] = table
            else:
                self._tables[name] = load_frame_table(path)
        return self._tables[name]

    def frames(self, names: Sequence[str], split: str) -> pd.DataFrame:
        """Rows of ``split`` from the named tables, after the method filter."""
        if not names:
            raise ValueError(f"no tables given for the {split} split")
        parts = [self.table(name) for name in names]
        frames = pd.concat([p[p["split"] == split] for p in parts], ignore_index=True)
        if self.methods is not None:
            frames = frames[(frames["label"] == 0) | frames["method"].isin(self.methods)]
        if frames.empty:
            raise ValueError(
                f"tables {list(names)} hold no {split} frames"
                + (f" of methods {self.methods}" if self.methods is not None else "")
            )
        return frames.reset_index(drop=True)

    def _set(
        self, name: str, frames: pd.DataFrame, **options: Any
    ) -> tuple[str, FrameSet, list[str]]:
        dataset = FrameSet(frames, self.cache_dir, self.contract.input_size, **options)
        return name, dataset, dataset.video_keys

    def _train_augment(self) -> tuple[Augment | None, PairAugment | None]:
        """The recipe and, for (real, pseudo-fake) pairs, its paired photometric transform."""
        if not isinstance(self.train_augment, str):
            return self.train_augment, None
        from src.augment.recipes import build_pair_transform, build_recipe

        pair = build_pair_transform(self.train_augment) if self.pseudo_fake is not None else None
        return build_recipe(self.train_augment), pair

    def _test_perturb(self) -> Callable[[np.ndarray, dict], np.ndarray] | None:
        if self.test_perturbation is None:
            return None
        from src.augment.perturb import PERTURBATIONS

        name, level = self.test_perturbation, self.test_perturbation_level
        if name not in PERTURBATIONS:
            raise ValueError(
                f"unknown test perturbation {name!r}; choose from {sorted(PERTURBATIONS)}"
            )
        return TestPerturbation(name, level)

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit"):
            train = self.frames(self.train_tables, "train")
            if self.pseudo_fake is not None:
                train = train[train["label"] == 0].reset_index(drop=True)
                prepare = getattr(self.pseudo_fake, "prepare", None)
                if prepare is not None:
                    prepare(train, self.cache_dir)
            augment, pair_transform = self._train_augment()
            self.sets["fit"] = [
                self._set(
                    "train",
                    train,
                    frames_per_video=self.train_frames_per_video,
                    augment=augment,
                    pair_transform=pair_transform,
                    pseudo_fake=self.pseudo_fake,
                )
            ]
        if stage in (None, "fit", "validate"):
            self.sets["validate"] = [self._set("val", self.frames(self.val_tables, "val"))]
        if stage in (None, "test", "predict"):
            self.sets["test"] = self.sets["predict"] = [
                self._set(name, self.frames([name], "test"), perturb=self._test_perturb())
                for name in self.test_tables
            ]

    def train_dataloader(self) -> DataLoader:
        ((_, dataset, _),) = self.sets["fit"]
        collate = collate_pairs if self.pseudo_fake is not None else None
        return self._loader(
            dataset,
            self.batch_size,
            shuffle=True,
            drop_last=len(dataset) > self.batch_size,
            collate_fn=collate,
        )
