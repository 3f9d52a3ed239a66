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
* ``pseudo_fake``: a :class:`~src.contracts.PseudoFakeGenerator` (SBI, BI from
  ``src.augment``); training then uses real frames only, and each real yields
  the pair (real, its pseudo-fake) in the same batch, as LAA-Net and SBI train.
  ``batch_size`` counts reals, so a batch holds twice as many images. The
  generator's ``prepare(frames, cache_dir)`` gets the real training frames
  first (BI builds its pool of faces there).
* ``train_augment``: an :class:`~src.contracts.Augment` applied to training
  faces at the input size (the papers' recipes: ``src.augment.recipes.Recipe``);
  a real and its pseudo-fake share every draw. ``pair_transform``: a
  :class:`~src.contracts.PairAugment` applied after it to each (real, fake).
* ``test_perturbation``: an :class:`~src.contracts.Augment` applied to every
  test face before resizing (``src.augment.perturb.Perturbation``), with a
  generator seeded by the frame's ``crop_path``, so every run, worker and rank
  perturbs a face the same way.
* ``side_data``: named per-frame arrays added to the side data every step
  receives, ``{name: folder}``. A frame's array is the 8-bit PNG
  ``<folder>/<crop_path>`` (the same relative path as its face crop under the
  cache), read unchanged (``cv2.IMREAD_UNCHANGED``: H x W for a grey-level
  map); e.g. ``side_data: {prle_map: data/prle_maps/ffpp_c23}`` gives PRLE's
  attention maps as ``side["prle_map"]``. Loaded in ``__getitem__`` only when
  configured; a missing file is an error that names it.

Generators, recipes and perturbations are objects given in YAML; this module
never imports ``src.augment``::

    data:
      class_path: src.data.DeepfakeDataModule
      init_args:
        pseudo_fake: {class_path: src.augment.sbi.SBI, init_args: {variant: laa}}
        train_augment: {class_path: src.augment.recipes.Recipe, init_args: {name: laa_net_sbi}}
        pair_transform: {class_path: src.augment.recipes.PairTransform, init_args: {name: laa_net_sbi}}
        test_perturbation:
          class_path: src.augment.perturb.Perturbation
          init_args: {name: blur, level: 3}
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

import cv2
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from src.contracts import Augment, PairAugment, PseudoFakeGenerator, SideData
from src.data.base import DeepfakeDataModuleBase, batch_item
from src.data.deepfakebench import read_deepfakebench_json
from src.data.preprocess import load_frame_table


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
        perturb: a test-time perturbation of the face crop (before resizing),
            seeded by the frame.
        pair_transform: a photometric transform with one draw for both images
            of each (real, pseudo-fake) pair, applied after ``augment``.
        side_data: ``{name: folder}`` of per-frame arrays added to the side data.
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
        self.side_data = {name: Path(folder) for name, folder in (side_data or {}).items()}
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
            image, mask = self.perturb(image, mask, np.random.default_rng(frame_seed(row)), side)
        if self.pseudo_fake is None:
            image, mask = self._prepare(image, mask, rng, side)
            return batch_item(image, mask, row["label"], has_mask, index, video, frame)
        if rng is None:
            raise RuntimeError("pseudo-fakes are for training sets (frames_per_video set)")
        image, fake, fake_mask = self.pseudo_fake.pair(image, mask, rng, side)
        fake_mask = np.round(np.clip(fake_mask, 0, 1) * 255).astype(np.uint8)
        # The pair shares every draw of the recipe (flip, crop, colour), as the
        # authors transform a real and its fake together; then the paired
        # photometric transform (SBI's) sees both at once.
        shared = int(rng.integers(2**62))
        blank = np.zeros_like(fake_mask)  # a real's blend mask (the real may be re-cropped)
        real, real_mask = self._prepare(image, blank, np.random.default_rng(shared), side)
        fake, fake_mask = self._prepare(fake, fake_mask, np.random.default_rng(shared), side)
        if self.pair_transform is not None:
            real, fake = self.pair_transform(real, fake, rng)
        items = [
            batch_item(real, real_mask, 0, True, 2 * index, video, frame),
            batch_item(fake, fake_mask, 1, True, 2 * index + 1, video, frame),
        ]
        return {key: torch.stack([items[0][key], items[1][key]]) for key in items[0]}

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
        pseudo_fake: train on reals, each paired with its pseudo-fake from this
            generator (e.g. ``src.augment.sbi.SBI``, ``src.augment.bi.BI``).
        train_augment: training augmentation at the input size (e.g.
            ``src.augment.recipes.Recipe``).
        pair_transform: photometric transform shared by each (real, pseudo-fake)
            pair, after ``train_augment`` (e.g. ``src.augment.recipes.PairTransform``).
        test_perturbation: a robustness perturbation of every test face (e.g.
            ``src.augment.perturb.Perturbation``), None for clean faces.
        side_data: ``{name: folder}``: per-frame arrays for the side data
            (see the module docstring for the layout).
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
        pseudo_fake: PseudoFakeGenerator | None = None,
        train_augment: Augment | None = None,
        pair_transform: PairAugment | None = None,
        test_perturbation: Augment | None = None,
        side_data: dict[str, str] | None = None,
        deepfakebench_root: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        for name, value, protocol in (
            ("pseudo_fake", pseudo_fake, PseudoFakeGenerator),
            ("train_augment", train_augment, Augment),
            ("pair_transform", pair_transform, PairAugment),
            ("test_perturbation", test_perturbation, Augment),
        ):
            if value is not None and not isinstance(value, protocol):
                raise TypeError(
                    f"{name} must implement {protocol.__name__} (src/contracts.py), got "
                    f"{type(value).__name__}; give it as class_path/init_args, "
                    "e.g. src.augment.sbi.SBI"
                )
        self.cache_dir = Path(cache_dir)
        self.deepfakebench_root = deepfakebench_root
        self.train_tables = list(train)
        self.val_tables = list(val) if val is not None else list(train)
        self.test_tables = list(test)
        self.train_frames_per_video = train_frames_per_video
        self.methods = list(methods) if methods is not None else None
        self.pseudo_fake = pseudo_fake
        self.train_augment = train_augment
        self.pair_transform = pair_transform
        self.test_perturbation = test_perturbation
        self.side_data = dict(side_data or {})
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
        dataset = FrameSet(
            frames,
            self.cache_dir,
            self.contract.input_size,
            side_data=self.side_data,
            **options,
        )
        return name, dataset, dataset.video_keys

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit"):
            train = self.frames(self.train_tables, "train")
            if self.pseudo_fake is not None:
                train = train[train["label"] == 0].reset_index(drop=True)
                self.pseudo_fake.prepare(train, self.cache_dir)
            self.sets["fit"] = [
                self._set(
                    "train",
                    train,
                    frames_per_video=self.train_frames_per_video,
                    augment=self.train_augment,
                    pair_transform=self.pair_transform if self.pseudo_fake is not None else None,
                    pseudo_fake=self.pseudo_fake,
                )
            ]
        if stage in (None, "fit", "validate"):
            self.sets["validate"] = [self._set("val", self.frames(self.val_tables, "val"))]
        if stage in (None, "test", "predict"):
            self.sets["test"] = self.sets["predict"] = [
                self._set(name, self.frames([name], "test"), perturb=self.test_perturbation)
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
