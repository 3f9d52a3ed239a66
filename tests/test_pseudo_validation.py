"""Real-only methods validate on the validation reals and fixed-seed pseudo-fakes of them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from src.augment.generator import PairedGenerator
from src.augment.sbi import SBI
from src.configs import config_hash, recipe_hash, resolve
from src.data import DeepfakeDataModule
from src.data.pseudo import PSEUDO_SUFFIX
from src.errors import DFBenchError
from src.synthetic import SyntheticFaceDataModule


class RandomSquare(PairedGenerator):
    """A pseudo-fake whose square lands where ``rng`` says: equal draws, equal fakes."""

    def pair(self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, side):
        height, width = image.shape[:2]
        y, x = int(rng.integers(0, height - 8)), int(rng.integers(0, width - 8))
        blend = np.zeros((height, width), np.float32)
        blend[y : y + 8, x : x + 8] = 1.0
        fake = image.copy()
        fake[blend > 0] = 255
        return image, fake, blend


class FirstDraws(RandomSquare):
    """Records the first number each pair's generator gives."""

    def __init__(self) -> None:
        self.draws: list[float] = []

    def pair(self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, side):
        self.draws.append(float(rng.random()))
        return super().pair(image, mask, rng, side)


def frame_dm(cache: Path, **kwargs) -> DeepfakeDataModule:
    options = {"cache_dir": str(cache), "train": ["toy"], "batch_size": 2, "input_size": 64}
    dm = DeepfakeDataModule(**(options | kwargs))
    dm.setup("fit")
    return dm


def all_batches(loader) -> dict[str, torch.Tensor]:
    batches = list(loader)
    return {key: torch.cat([b[key] for b in batches]) for key in batches[0]}


def test_pseudo_fake_training_validates_on_val_reals_and_their_pseudo_fakes(toy_cache) -> None:
    _, cache, _ = toy_cache
    dm = frame_dm(cache, pseudo_fake=RandomSquare(), eval_batch_size=4)
    assert dm.val_fakes == "pseudo" and dm.hparams["val_fakes"] == "pseudo"
    first, again = all_batches(dm.val_dataloader()), all_batches(dm.val_dataloader())
    # The toy cache has one real and one fake validation video of 6 frames: only the
    # real's 6 frames are used, each followed by its pseudo-fake.
    assert first["label"].tolist() == [0.0, 1.0] * 6
    assert torch.equal(first["image"], again["image"])  # the same pseudo-fakes every epoch
    reals, fakes = first["image"][0::2], first["image"][1::2]
    changed = (reals != fakes).any(dim=1)  # (6, H, W): where the square was painted
    assert changed.any(dim=(1, 2)).all()
    assert (first["mask"][0::2] == 0).all() and (first["mask"][1::2] > 0).any()
    # Each frame has its own generator (seeded by the frame), not one draw for all.
    recorder = FirstDraws()
    all_batches(frame_dm(cache, pseudo_fake=recorder).val_dataloader())
    assert len(recorder.draws) == 6 and len(set(recorder.draws)) == 6
    # A pseudo-fake is a video of its own: video-level scores never mix it with its real.
    assert first["video_idx"][0::2].unique().tolist() == [0]
    assert first["video_idx"][1::2].unique().tolist() == [1]
    assert dm.video_keys("validate") == ["toy/real/val", f"toy/real/val{PSEUDO_SUFFIX}"]
    assert first["sample_idx"].unique().numel() == 12


def test_the_seed_fixes_the_validation_pseudo_fakes(toy_cache) -> None:
    _, cache, _ = toy_cache
    images = [
        all_batches(frame_dm(cache, pseudo_fake=RandomSquare(), pseudo_val_seed=s).val_dataloader())
        for s in (0, 0, 1)
    ]
    assert torch.equal(images[0]["image"], images[1]["image"])
    assert not torch.equal(images[0]["image"], images[2]["image"])


def test_real_fakes_remain_an_option_and_the_default_without_pseudo_fakes(toy_cache) -> None:
    _, cache, _ = toy_cache
    for dm in (frame_dm(cache, pseudo_fake=RandomSquare(), val_fakes="real"), frame_dm(cache)):
        batch = all_batches(dm.val_dataloader())
        assert dm.val_fakes == "real"
        assert sorted(batch["label"].tolist()) == [0.0] * 6 + [1.0] * 6
        assert dm.video_keys("validate") == ["toy/Swap/val", "toy/real/val"]


def test_validation_alone_prepares_the_generator(toy_cache) -> None:
    _, cache, _ = toy_cache

    class NeedsPool(RandomSquare):
        prepared: list[int] = []

        def prepare(self, frames, cache_dir) -> None:
            assert (frames["label"] == 0).all() and set(frames["split"]) == {"train"}
            self.prepared.append(len(frames))

    generator = NeedsPool()
    dm = DeepfakeDataModule(
        cache_dir=str(cache), train=["toy"], input_size=64, pseudo_fake=generator
    )
    dm.setup("validate")
    assert generator.prepared == [6]  # the real training frames, as for a fit
    assert len(dm.sets["validate"][0][1]) == 6


def test_bad_val_fakes_are_refused_in_one_line() -> None:
    with pytest.raises(DFBenchError, match="val_fakes=pseudo needs data.init_args.pseudo_fake"):
        DeepfakeDataModule(val_fakes="pseudo")
    with pytest.raises(DFBenchError, match="val_fakes must be 'pseudo', 'real' or null"):
        DeepfakeDataModule(pseudo_fake=RandomSquare(), val_fakes="fake")


def test_in_memory_faces_pair_reals_with_pseudo_fakes_and_test_on_held_out_pairs() -> None:
    dm = SyntheticFaceDataModule(
        train_videos=6,
        val_videos=3,
        test_videos=3,
        frames_per_video=2,
        pseudo_fake=SBI(),
        test_sets=["pseudo", "blend"],
        input_size=64,
        batch_size=3,
    )
    dm.setup("fit")
    train = next(iter(dm.train_dataloader()))
    assert train["label"].tolist() == [0.0, 1.0] * 3
    assert train["image"].shape == (6, 3, 64, 64)
    val, again = all_batches(dm.val_dataloader()), all_batches(dm.val_dataloader())
    assert torch.equal(val["image"], again["image"])
    assert val["label"].tolist() == [0.0, 1.0] * 6
    assert val["video_idx"][1::2].min() == 3  # pseudo-fake videos follow the 3 real ones
    assert (val["mask"][1::2].flatten(1).amax(1) > 0).all()
    dm.setup("test")
    pseudo, blend = dm.test_dataloader()
    assert all_batches(pseudo)["label"].tolist() == [0.0, 1.0] * 6
    assert sorted(set(all_batches(blend)["label"].tolist())) == [0.0, 1.0]
    dm.teardown("fit")
    with pytest.raises(DFBenchError, match="test set 'pseudo' needs data.init_args.pseudo_fake"):
        SyntheticFaceDataModule(test_sets=["pseudo"])


def test_the_default_and_its_explicit_spelling_are_one_identity() -> None:
    base = ["-c", "configs/data/ffpp.yaml", "-c", "configs/detectors/laa_net.yaml"]
    default = resolve(base)
    explicit = resolve([*base, "--data.init_args.val_fakes=pseudo"])
    real = resolve([*base, "--data.init_args.val_fakes=real"])
    assert config_hash(default) == config_hash(explicit) != config_hash(real)
    assert recipe_hash(default) == recipe_hash(explicit) != recipe_hash(real)
    plain = ["-c", "configs/data/ffpp.yaml", "-c", "configs/detectors/xception.yaml"]
    for unread in ("val_fakes=real", "pseudo_val_seed=3"):
        assert config_hash(resolve(plain)) == config_hash(
            resolve([*plain, f"--data.init_args.{unread}"])
        )
    seeded = resolve([*base, "--data.init_args.pseudo_val_seed=3"])
    assert config_hash(seeded) != config_hash(default)
