"""An in-memory synthetic face DataModule for tests and quick demos.

The people are those of the on-disk synthetic datasets (:mod:`src.synthetic.faces`),
rendered straight at the detector's input size and framed as a face crop
(the face about 60 % of the image wide), so nothing touches the disk and
nothing is resized. Splits use disjoint identities (a test face was never seen
in training); videos have several frames with head motion and talking; a share
of the videos (``fake_fraction``) are fakes whose inner face comes from another
identity of the same split, pasted in the target's pose through a soft mask that
the batch carries (:func:`~src.synthetic.swaps.swap_frame`). Every item is
rendered on demand from a seed derived from ``(seed, set, video, frame)``, so
the data is the same in every worker, rank and run.

Each test set is named after a fake style (:data:`FAKE_STYLES`):
``test_sets: [blend, matched]`` gives two test sets with differently made
fakes, reported separately.

With ``pseudo_fake`` (an SBI or BI generator) the module trains as the
real-only methods do: every training video is real and each real comes with
its pseudo-fake in the same batch; validation is, by default
(``val_fakes: pseudo``), the validation reals and their fixed-seed
pseudo-fakes (:mod:`src.data.pseudo`). The test set named ``pseudo`` is the
test identities' reals and their pseudo-fakes, made the same way: held-out
people, the real-only method's own task. BI needs a pool of real faces on
disk: one frame of every training video is written to a temporary folder
(removed at teardown) and the generator is prepared on it.

Drawing a person happens once per identity of a set (the drawings are kept,
0.3 MB each at 64 px), on a square around the head; a frame then only
composes the kept drawings, an order of magnitude less work than a person
drawn on the full photograph as the on-disk writer does.
"""

from __future__ import annotations

import shutil
import tempfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from src.contracts import PseudoFakeGenerator
from src.data.base import DeepfakeDataModuleBase, batch_item
from src.data.pseudo import (
    make_pseudo_fake,
    pseudo_video_keys,
    resolve_val_fakes,
    stack_pair,
    validation_rng,
)
from src.errors import DFBenchError
from src.synthetic.faces import Identity, Person, build_person, head_canvas, random_identity
from src.synthetic.frames import Motion, Scene, compose, random_motion, random_scene
from src.synthetic.swaps import SwapStyle, swap_frame

#: Face width (jaw to jaw) over the image side, as a 1.3x face-box crop shows it.
FACE_FRAMING: tuple[float, float] = (0.52, 0.66)


@dataclass(frozen=True)
class FakeStyle:
    """How the fakes of one in-memory set are made.

    Attributes:
        swap: region, mask edge, colour transfer and degradation of the pasted face.
        min_skin_gap: pair each target with a source whose skin gain (RGB gains
            of :class:`~src.synthetic.faces.Identity`, about 0.45-1.12) differs by
            at least this Euclidean distance, when the set has one; early face
            swaps between mismatched people left such colour seams.
    """

    swap: SwapStyle
    min_skin_gap: float = 0.0


FAKE_STYLES: dict[str, FakeStyle] = {
    # A visible seam: mismatched skin, a soft but short mask edge, no colour transfer.
    "blend": FakeStyle(SwapStyle(region="inner", mask_blur=0.05), min_skin_gap=0.25),
    # The same with a hard mask edge.
    "hard": FakeStyle(SwapStyle(region="inner", mask_blur=0.01), min_skin_gap=0.25),
    # Any pair, colours moved towards the target's, a wider edge: harder to see.
    "matched": FakeStyle(SwapStyle(region="inner", mask_blur=0.08, colour_match=0.8)),
    # A resampled, JPEG-compressed source with half colour transfer.
    "resampled": FakeStyle(
        SwapStyle(
            region="inner", mask_blur=0.05, colour_match=0.5, source_blur=0.02, source_jpeg=70
        )
    ),
}


def pick_source(
    target: int, skins: np.ndarray, min_skin_gap: float, rng: np.random.Generator
) -> int:
    """Another identity to swap onto ``target``, with a skin gap when the pool has one."""
    gaps = np.linalg.norm(skins - skins[target], axis=1)
    candidates = np.flatnonzero(gaps >= min_skin_gap)
    candidates = candidates[candidates != target]
    if candidates.size == 0:
        candidates = np.delete(np.arange(len(skins)), target)
    return int(rng.choice(candidates))


#: The in-memory test set of held-out reals and their fixed-seed pseudo-fakes.
PSEUDO_TEST_SET = "pseudo"


@dataclass(frozen=True)
class _Clip:
    """Everything one item needs: who, how they move, where, and the pixel-noise RNG."""

    target: int
    source: int
    motion: Motion
    source_motion: Motion
    scene: Scene
    rng: np.random.Generator


class SyntheticFaceDataset(Dataset):
    """``n_videos x frames_per_video`` rendered frames following the batch contract.

    Args:
        name: the set's name; it seeds the set, so train/val/test differ.
        n_videos: number of videos (face sequences).
        frames_per_video: frames rendered per video.
        size: image size in pixels (square).
        style: how fakes are made.
        fake_fraction: share of videos that are fakes.
        n_identities: identities the set draws its people from (default: one per video).
        seed: global seed.
        resample: give every item on every access a new pairing of the set's people,
            new motion and new scene, from torch's RNG (which Lightning seeds per worker
            and epoch): an endless training stream that cannot be memorised. Labels stay
            fixed; the people come from the set's identities, so each is drawn once.
        flip_labels: report every item's label swapped (real as fake and fake as real)
            while the pictures stay as they are: a data set that lies, against which a
            working pipeline must score the mirror of its honest result.
        pseudo_fake: every video is real and every item a (real, pseudo-fake) pair.
        pseudo_seed: with ``pseudo_fake``, a fixed-seed evaluation set of pairs (see
            :mod:`src.data.pseudo`); None: a training set, fresh draws every access.
        output_size: with ``pseudo_fake``, pairs are made at ``size`` (the face crop a
            generator blends on) and then resized to this (default: ``size``).
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
        flip_labels: bool = False,
        pseudo_fake: PseudoFakeGenerator | None = None,
        pseudo_seed: int | None = None,
        output_size: int | None = None,
    ) -> None:
        if n_videos < 1 or frames_per_video < 1:
            raise DFBenchError(f"set {name!r}: n_videos and frames_per_video must be positive")
        self.name = name
        self.frames_per_video = frames_per_video
        self.size = size
        self.style = style
        self.resample = resample
        self.flip_labels = flip_labels
        self.pseudo_fake = pseudo_fake
        self.pseudo_seed = pseudo_seed
        self.output_size = output_size or size
        if pseudo_fake is not None:
            fake_fraction = 0.0
        self._seed = [seed, zlib.crc32(name.encode())]
        rng = np.random.default_rng(self._seed)
        n_identities = max(2, n_identities or n_videos)
        self.identities: list[Identity] = [random_identity(rng) for _ in range(n_identities)]
        self._skins = np.array([identity.skin_gain for identity in self.identities])
        n_fake = int(round(n_videos * fake_fraction))
        self.labels = (rng.permutation(n_videos) < n_fake).astype(np.float32)
        self.targets = rng.integers(0, n_identities, n_videos)
        self.sources = np.array(
            [pick_source(t, self._skins, style.min_skin_gap, rng) for t in self.targets]
        )
        self.motions = [random_motion(rng) for _ in range(n_videos)]
        # The source actor's own motion drives the pasted face's expression.
        self.source_motions = [random_motion(rng) for _ in range(n_videos)]
        self.real_video_keys = [f"synthetic/{name}/{v:05d}" for v in range(n_videos)]
        self.video_keys = (
            pseudo_video_keys(self.real_video_keys)
            if pseudo_seed is not None
            else self.real_video_keys
        )
        self.canvas = head_canvas(FACE_FRAMING[1] * size)
        self._people: dict[int, Person] = {}

    def __len__(self) -> int:
        return len(self.labels) * self.frames_per_video

    def person(self, identity: int) -> Person:
        """Identity ``identity`` drawn at this set's size (drawn once, then kept)."""
        if identity not in self._people:
            self._people[identity] = build_person(self.identities[identity], self.canvas)
        return self._people[identity]

    def _scene(self, rng: np.random.Generator) -> Scene:
        return random_scene(rng, self.size, self.size, face_frac=FACE_FRAMING)

    def _clip(self, video: int, frame: int) -> _Clip:
        if self.resample:
            rng = np.random.default_rng([*self._seed, 3, int(torch.randint(0, 2**62, ()))])
            target = int(rng.integers(len(self.identities)))
            source = pick_source(target, self._skins, self.style.min_skin_gap, rng)
            motions = random_motion(rng), random_motion(rng)
            return _Clip(target, source, *motions, self._scene(rng), rng)
        scene = self._scene(np.random.default_rng([*self._seed, 1, video]))
        rng = np.random.default_rng([*self._seed, 2, video, frame])
        return _Clip(
            int(self.targets[video]),
            int(self.sources[video]),
            self.motions[video],
            self.source_motions[video],
            scene,
            rng,
        )

    def render_real(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The real frame of item ``index`` (before any swap) and its 68 landmarks."""
        video, frame = divmod(index, self.frames_per_video)
        clip = self._clip(video, frame)
        return compose(self.person(clip.target), clip.motion, clip.scene, frame, clip.rng)

    def side(self, index: int, landmarks: np.ndarray) -> dict[str, Any]:
        """What a pseudo-fake generator reads of item ``index``: landmarks, frame and video keys."""
        video, frame = divmod(index, self.frames_per_video)
        key = self.real_video_keys[video]
        return {"landmarks": landmarks, "crop_path": f"{key}/{frame:06d}.png", "video_key": key}

    def render(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """uint8 RGB image (H, W, 3) and float32 mask (H, W) of item ``index``."""
        video, frame = divmod(index, self.frames_per_video)
        clip = self._clip(video, frame)
        target = self.person(clip.target)
        image, landmarks = compose(target, clip.motion, clip.scene, frame, clip.rng)
        if not self.labels[video]:
            return image, np.zeros((self.size, self.size), np.float32)
        return swap_frame(
            image,
            landmarks,
            target,
            self.person(clip.source),
            clip.motion,
            clip.source_motion,
            clip.scene,
            frame,
            self.style.swap,
            clip.rng,
        )

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        if self.pseudo_fake is not None:
            return self._pair(index)
        image, mask = self.render(index)
        video, frame = divmod(index, self.frames_per_video)
        mask_u8 = np.round(mask * 255).astype(np.uint8)
        label = int(self.labels[video]) ^ int(self.flip_labels)
        return batch_item(image, mask_u8, label, True, index, video, frame)

    def _pair(self, index: int) -> dict[str, Any]:
        video, frame = divmod(index, self.frames_per_video)
        image, landmarks = self.render_real(index)
        side = self.side(index, landmarks)
        if self.pseudo_seed is None:
            rng = np.random.default_rng(int(torch.randint(0, 2**62, ())))
            fake_video = video
        else:
            rng = validation_rng(self.pseudo_seed, side["crop_path"])
            fake_video = len(self.real_video_keys) + video
        real, fake, fake_mask = make_pseudo_fake(self.pseudo_fake, image, rng, side)
        size = (self.output_size, self.output_size)
        real, fake, fake_mask = (
            cv2.resize(a, size, interpolation=cv2.INTER_AREA) if a.shape[:2] != size else a
            for a in (real, fake, fake_mask)
        )
        blank = np.zeros_like(fake_mask)
        return stack_pair(
            batch_item(real, blank, 0, True, 2 * index, video, frame),
            batch_item(fake, fake_mask, 1, True, 2 * index + 1, fake_video, frame),
        )

    def write_pool(self, folder: Path) -> pd.DataFrame:
        """Frame 0 of every video as PNG under ``folder``, and its frame table (BI's pool)."""
        rows = []
        for video in range(len(self.real_video_keys)):
            index = video * self.frames_per_video
            image, landmarks = self.render_real(index)
            side = self.side(index, landmarks)
            path = folder / side["crop_path"]
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            rows.append(side | {"label": 0, "frame_idx": 0})
        return pd.DataFrame(rows)


class SyntheticFaceDataModule(DeepfakeDataModuleBase):
    """Synthetic train / val / test sets of rendered faces (see the module docstring).

    Args:
        train_videos, val_videos, test_videos: videos per set.
        frames_per_video: frames per validation and test video.
        train_frames_per_video: frames per training video.
        fake_fraction: share of fake videos in every set.
        train_style: fake style of the training and validation sets.
        test_sets: one test set per named fake style.
        resample_train: a new pairing, motion and scene for every training item every
            epoch (see :class:`SyntheticFaceDataset`); validation and test stay fixed.
        seed: global seed.
        flip_labels: swap real and fake labels in every set (pictures unchanged): the
            control that a detector's scores follow the labels it is given.
        pseudo_fake: train on reals, each with its pseudo-fake from this generator
            (see the module docstring); ``batch_size`` counts reals.
        val_fakes: ``pseudo`` (the default with ``pseudo_fake``) or ``real``, as
            :class:`~src.data.datamodule.DeepfakeDataModule` takes it.
        pseudo_val_seed: seed of the validation and ``pseudo`` test pseudo-fakes.
        pseudo_crop_size: with ``pseudo_fake``, reals are rendered at least this large,
            blended, and resized to the input size, as the suite blends on cached face
            crops of their own size (a 64 px input is not what SBI's and BI's pixel
            sizes of masks and blurs were set for).
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
        flip_labels: bool = False,
        pseudo_fake: PseudoFakeGenerator | None = None,
        val_fakes: str | None = None,
        pseudo_val_seed: int = 0,
        pseudo_crop_size: int = 128,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        unknown = sorted({train_style, *test_sets} - FAKE_STYLES.keys() - {PSEUDO_TEST_SET})
        if unknown:
            raise DFBenchError(
                f"unknown fake styles {unknown}; choose from {sorted(FAKE_STYLES)} "
                f"or {PSEUDO_TEST_SET!r} (reals and their pseudo-fakes)"
            )
        if PSEUDO_TEST_SET in test_sets and pseudo_fake is None:
            raise DFBenchError(
                f"test set {PSEUDO_TEST_SET!r} needs data.init_args.pseudo_fake (the generator)"
            )
        self.pseudo_fake = pseudo_fake
        self.val_fakes = resolve_val_fakes(val_fakes, pseudo_fake)
        self.pseudo_val_seed = pseudo_val_seed
        self.pseudo_crop_size = pseudo_crop_size
        self.save_hyperparameters({"val_fakes": self.val_fakes})
        self._pool_dir: Path | None = None
        self.counts = {"train": train_videos, "val": val_videos, "test": test_videos}
        self.frames_per_video = frames_per_video
        self.train_frames_per_video = train_frames_per_video
        self.fake_fraction = fake_fraction
        self.train_style = train_style
        self.test_styles = list(test_sets)
        self.resample_train = resample_train
        self.seed = seed
        self.flip_labels = flip_labels

    def _dataset(
        self,
        seed_name: str,
        n_videos: int,
        style: str,
        frames: int,
        resample: bool = False,
        pairs: str | None = None,
    ) -> SyntheticFaceDataset:
        """A set; ``pairs``: None (its own fakes), "train" or "eval" (pseudo-fake pairs), or
        "pool" (the reals a generator is prepared on, at the pairs' size)."""
        height, width = self.contract.input_size
        if height != width:
            raise DFBenchError(f"synthetic faces are square; got input size {height}x{width}")
        return SyntheticFaceDataset(
            seed_name,
            n_videos,
            frames,
            max(height, self.pseudo_crop_size) if pairs else height,
            FAKE_STYLES[style],
            self.fake_fraction,
            seed=self.seed,
            resample=resample,
            flip_labels=self.flip_labels,
            pseudo_fake=self.pseudo_fake if pairs in ("train", "eval") else None,
            pseudo_seed=self.pseudo_val_seed if pairs == "eval" else None,
            output_size=height,
        )

    def _prepare_generator(self, train: SyntheticFaceDataset) -> None:
        """Give the generator its real training faces (BI's pool) in a temporary folder."""
        if self._pool_dir is None:
            self._pool_dir = Path(tempfile.mkdtemp(prefix="dfbench-pool-"))
            self.pseudo_fake.prepare(train.write_pool(self._pool_dir), self._pool_dir)

    def teardown(self, stage: str) -> None:
        if self._pool_dir is not None and stage == "fit":
            shutil.rmtree(self._pool_dir, ignore_errors=True)
            self._pool_dir = None

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit"):
            train = self._dataset(
                "train",
                self.counts["train"],
                self.train_style,
                self.train_frames_per_video,
                self.resample_train,
                pairs="train" if self.pseudo_fake is not None else None,
            )
            self.sets["fit"] = [("train", train, train.video_keys)]
        if self.pseudo_fake is not None and stage in (None, "fit", "validate", "test", "predict"):
            self._prepare_generator(
                self._dataset("train", self.counts["train"], self.train_style, 1, pairs="pool")
            )
        if stage in (None, "fit", "validate"):
            pairs = "eval" if self.val_fakes == "pseudo" else None
            val = self._dataset(
                "val", self.counts["val"], self.train_style, self.frames_per_video, pairs=pairs
            )
            self.sets["validate"] = [("val", val, val.video_keys)]
        if stage in (None, "test", "predict"):
            tests = [
                (
                    style,
                    self._dataset(
                        f"test_{style}",
                        self.counts["test"],
                        self.train_style if style == PSEUDO_TEST_SET else style,
                        self.frames_per_video,
                        pairs="eval" if style == PSEUDO_TEST_SET else None,
                    ),
                )
                for style in self.test_styles
            ]
            self.sets["test"] = self.sets["predict"] = [
                (style, ds, ds.video_keys) for style, ds in tests
            ]
