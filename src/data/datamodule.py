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
* ``balance``: class-balanced training draws (:mod:`src.data.sampling`:
  sampling, not loss weighting, so every loss stays as its paper writes it).
  Unset, it turns itself on for an imbalanced training set (FF++ is 1 real to
  4 fakes) and off with pseudo-fakes; the choice is saved with the run's
  hyper-parameters.
* ``pseudo_fake``: a :class:`~src.contracts.PseudoFakeGenerator` (SBI, BI from
  ``src.augment``); training then uses real frames only, and each real yields
  the pair (real, its pseudo-fake) in the same batch, as LAA-Net and SBI train.
  ``batch_size`` counts reals, so a batch holds twice as many images. The
  generator's ``prepare(frames, cache_dir)`` gets the real training frames
  first (BI builds its pool of faces there).
* ``val_fakes``: what the checkpoint is chosen on. ``pseudo`` (the default with
  ``pseudo_fake``, as LAA-Net's and SBI's authors validate): the validation
  reals, each with a pseudo-fake made by the same generator with a fixed seed
  (``pseudo_val_seed``), the same images every epoch; a method that never sees
  a fake in training never picks its weights with one. ``real``: the
  validation split as it is, reals and the dataset's fakes (the default
  without ``pseudo_fake``). ``eval_batch_size`` then counts pairs. The choice
  is saved with the run's hyper-parameters (``val_fakes``).
* ``train_augment``: an :class:`~src.contracts.Augment` applied to training
  faces at the input size (the papers' recipes: ``src.augment.recipes.Recipe``);
  a real and its pseudo-fake share every draw. ``pair_transform``: a
  :class:`~src.contracts.PairAugment` applied after it to each (real, fake).
* ``test_perturbation``: an :class:`~src.contracts.Augment` applied to every
  test face before resizing (``src.augment.perturb.Perturbation``), with a
  generator seeded by the frame's ``crop_path``, so every run, worker and rank
  perturbs a face the same way.
* ``side_data``: named per-frame arrays added to the side data every training
  step receives, ``{name: folder}`` (only training generators and augmentations
  read side data, so validation and test frames need none). A frame's array is
  the 8-bit PNG ``<folder>/<crop_path>`` (the same relative path as its face
  crop under the cache), read unchanged (``cv2.IMREAD_UNCHANGED``: H x W for a
  grey-level map); e.g. ``side_data: {prle_map: data/prle_maps/ffpp_c23}`` gives PRLE's
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

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pytorch_lightning.utilities import rank_zero_info
from torch.utils.data import DataLoader

from src.contracts import Augment, PairAugment, PseudoFakeGenerator
from src.data.base import DeepfakeDataModuleBase
from src.data.deepfakebench import read_deepfakebench_json
from src.data.frameset import FrameSet
from src.data.paths import check_name
from src.data.preprocess import load_frame_table, repair_hint
from src.data.pseudo import pairs_collate, resolve_val_fakes
from src.data.sampling import BalancedSampler
from src.errors import DFBenchError

__all__ = ["BALANCED_RATIOS", "DeepfakeDataModule", "resolve_table"]

#: Real:fake video ratios inside which a training set counts as balanced already.
BALANCED_RATIOS = (0.8, 1.25)


def resolve_table(name: str, cache_dir: str | Path) -> Path:
    """A table name (``<cache_dir>/tables/<name>.parquet``), or a path to a .parquet or .json file.

    A name is a plain file name: ``../../x`` is refused rather than read from outside the cache.
    """
    if name.endswith((".parquet", ".json")):
        return Path(name)
    return Path(cache_dir) / "tables" / f"{check_name(name)}.parquet"


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
        side_data: ``{name: folder}``: per-frame arrays for the side data of
            the training frames (see the module docstring for the layout).
        deepfakebench_root: where the relative frame paths of DeepfakeBench JSON
            indexes (tables given as ``.json`` files) start.
        balance: draw real and fake training items equally every epoch
            (:class:`~src.data.sampling.BalancedSampler`, right under DDP). None
            (default): on when the training videos' real:fake ratio is outside
            0.8-1.25, off with ``pseudo_fake`` (balanced by construction). The
            choice is saved in the DataModule's hyper-parameters (``balance``).
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
        balance: bool | None = None,
        val_fakes: str | None = None,
        pseudo_val_seed: int = 0,
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
                raise DFBenchError(
                    f"{name} must implement {protocol.__name__} (src/contracts.py), got "
                    f"{type(value).__name__}; give it as class_path/init_args, "
                    "e.g. src.augment.sbi.SBI"
                )
        self.cache_dir = Path(cache_dir)
        self.deepfakebench_root = deepfakebench_root
        self.train_tables = list(train)
        self.val_tables = list(val) if val is not None else list(train)
        self._val_default = val is None
        self.test_tables = list(test)
        self.train_frames_per_video = train_frames_per_video
        self.methods = list(methods) if methods is not None else None
        self.pseudo_fake = pseudo_fake
        self.train_augment = train_augment
        self.pair_transform = pair_transform
        self.test_perturbation = test_perturbation
        self.side_data = dict(side_data or {})
        if balance is not None and not isinstance(balance, bool):
            raise DFBenchError(f"balance must be true, false or null (automatic), got {balance!r}")
        if balance and pseudo_fake is not None:
            raise DFBenchError(
                "balance=true with pseudo_fake: each real is trained with its own pseudo-fake, "
                "so batches are balanced by construction; leave balance unset"
            )
        self.balance = balance
        #: ``"pseudo"`` or ``"real"``: what validation's fakes are (see the module docstring).
        self.val_fakes = resolve_val_fakes(val_fakes, pseudo_fake)
        self.pseudo_val_seed = pseudo_val_seed
        self._prepared = False  # the generator has seen the training reals
        self.save_hyperparameters({"val_fakes": self.val_fakes})
        #: What ``balance`` resolved to for the training set (set by ``setup``).
        self.balanced: bool | None = None
        self._tables: dict[str, pd.DataFrame] = {}
        #: video key -> what repairs its damaged crops (the command its table records).
        self._repair: dict[str, str] = {}

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
                hint = repair_hint(path)
                self._repair.update(dict.fromkeys(self._tables[name]["video_key"].unique(), hint))
        return self._tables[name]

    def frames(self, names: Sequence[str], split: str) -> pd.DataFrame:
        """Rows of ``split`` from the named tables, after the method filter.

        Raises:
            DFBenchError: no tables, or no rows; the message names the setting
                (``data.init_args.<split>``) and what to give.
        """
        setting = f"data.init_args.{split}"
        if split == "val" and self._val_default:
            setting = "data.init_args.val (default: the train tables)"
        if not names:
            raise DFBenchError(
                f"{setting} is empty: give the frame tables whose {split} rows to use, "
                f"e.g. --data.init_args.{split} '[ffpp_c23]'"
            )
        parts = [self.table(name) for name in names]
        frames = pd.concat([p[p["split"] == split] for p in parts], ignore_index=True)
        if self.methods is not None:
            frames = frames[(frames["label"] == 0) | frames["method"].isin(self.methods)]
        if frames.empty:
            found = sorted(set().union(*(p["split"].unique() for p in parts)))
            raise DFBenchError(
                f"{setting}: tables {list(names)} hold no {split} frames"
                + (f" of methods {self.methods}" if self.methods is not None else "")
                + f" (splits found: {', '.join(found) or 'none'}); give tables with {split} rows"
            )
        return frames.reset_index(drop=True)

    def _set(
        self, name: str, frames: pd.DataFrame, **options: Any
    ) -> tuple[str, FrameSet, list[str]]:
        dataset = FrameSet(
            frames, self.cache_dir, self.contract.input_size, repair=self._repair, **options
        )
        return name, dataset, dataset.video_keys

    def _real_training_frames(self) -> pd.DataFrame:
        """The training reals, after the pseudo-fake generator has been prepared on them."""
        train = self.frames(self.train_tables, "train")
        train = train[train["label"] == 0].reset_index(drop=True)
        self.pseudo_fake.prepare(train, self.cache_dir)
        self._prepared = True
        return train

    def _validation_set(self) -> tuple[str, FrameSet, list[str]]:
        val = self.frames(self.val_tables, "val")
        if self.val_fakes == "real":
            return self._set("val", val)
        if not self._prepared:
            self._real_training_frames()  # BI draws validation faces from the training pool
        reals = val[val["label"] == 0].reset_index(drop=True)
        if reals.empty:
            raise DFBenchError(
                f"val_fakes=pseudo: tables {self.val_tables} hold no real val frames to make "
                "pseudo-fakes from; give tables with real val rows or use val_fakes: real"
            )
        return self._set(
            "val", reals, pseudo_fake=self.pseudo_fake, pseudo_seed=self.pseudo_val_seed
        )

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit"):
            if self.pseudo_fake is not None:
                train = self._real_training_frames()
            else:
                train = self.frames(self.train_tables, "train")
            self._resolve_balance(train)
            self.sets["fit"] = [
                self._set(
                    "train",
                    train,
                    frames_per_video=self.train_frames_per_video,
                    augment=self.train_augment,
                    pair_transform=self.pair_transform if self.pseudo_fake is not None else None,
                    pseudo_fake=self.pseudo_fake,
                    side_data=self.side_data,
                )
            ]
        if stage in (None, "fit", "validate"):
            self.sets["validate"] = [self._validation_set()]
        if stage in ("test", "predict") and not self.test_tables:
            self.frames(self.test_tables, "test")  # says which setting to fill
        if stage in (None, "test", "predict"):
            self.sets["test"] = self.sets["predict"] = [
                self._set(name, self.frames([name], "test"), perturb=self.test_perturbation)
                for name in self.test_tables
            ]

    def _resolve_balance(self, train: pd.DataFrame) -> None:
        """Decide class balance for this training set and record the choice in the hparams.

        Unset (None), it is on when the real:fake video ratio lies outside
        :data:`BALANCED_RATIOS` (real FF++ is 1:4) and off with pseudo-fakes.
        The chosen value and the counts it came from are saved as the
        DataModule's hyper-parameters, which every logger records with the run.
        """
        videos = train.drop_duplicates("video_key")
        reals, fakes = int((videos["label"] == 0).sum()), int((videos["label"] != 0).sum())
        if self.pseudo_fake is not None:
            chosen = False
        elif self.balance is None:
            ratio = reals / fakes if fakes else float("inf")
            low, high = BALANCED_RATIOS
            chosen = bool(reals and fakes) and not low <= ratio <= high
        else:
            chosen = self.balance
        if chosen and not (reals and fakes):
            raise DFBenchError(
                f"balance=true needs real and fake training videos, got {reals} reals and "
                f"{fakes} fakes in {self.train_tables}"
            )
        self.balanced = chosen
        self.save_hyperparameters(
            {"balance": chosen, "train_real_videos": reals, "train_fake_videos": fakes}
        )
        rank_zero_info(
            f"class balance {'on' if chosen else 'off'}: {reals} real and {fakes} fake "
            f"training videos{' (pseudo-fakes pair every real)' if self.pseudo_fake else ''}"
        )

    def train_dataloader(self) -> DataLoader:
        ((_, dataset, _),) = self.sets["fit"]
        collate = pairs_collate(dataset)
        sampler = None
        if self.balanced:
            trainer = getattr(self, "trainer", None)
            sampler = BalancedSampler(
                dataset.item_labels(),
                num_replicas=trainer.world_size if trainer is not None else 1,
                rank=trainer.global_rank if trainer is not None else 0,
                seed=int(os.environ.get("PL_GLOBAL_SEED", 0)),
            )
        size = len(sampler) if sampler is not None else len(dataset)
        return self._loader(
            dataset,
            self.batch_size,
            shuffle=True,
            drop_last=size > self.batch_size,
            collate_fn=collate,
            sampler=sampler,
        )
