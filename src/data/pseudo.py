"""Real faces paired with their pseudo-fakes, for training and for validation.

A detector trained on reals and pseudo-fakes (SBI, BI) sees each real next to
its own pseudo-fake in the same batch. Its authors also choose its checkpoint
without a real fake: on the validation reals and pseudo-fakes made from them.
dfbench makes those validation pseudo-fakes with a generator seeded by
``(seed, frame)``, so every epoch, worker and rank validates on the same
images and the validation curve is comparable from epoch to epoch.

In a validation set of pairs, a real keeps its video index and its
pseudo-fake is counted as a video of its own (index ``n_videos + video``,
key ``<video key>#pseudo-fake``): video-level scores never average a real
with its fake.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
import torch
from torch.utils.data import default_collate

from src.contracts import PseudoFakeGenerator, SideData
from src.errors import DFBenchError

#: Validation fakes: pseudo-fakes of the validation reals, or the dataset's own fakes.
ValFakes = Literal["pseudo", "real"]
VAL_FAKES: tuple[str, ...] = ("pseudo", "real")
#: Appended to a video key for the video of its pseudo-fakes in a validation set.
PSEUDO_SUFFIX = "#pseudo-fake"


def resolve_val_fakes(val_fakes: str | None, pseudo_fake: PseudoFakeGenerator | None) -> str:
    """What a DataModule validates on: ``"pseudo"`` by default when it trains on pseudo-fakes.

    Raises:
        DFBenchError: an unknown value, or ``"pseudo"`` without a ``pseudo_fake`` generator.
    """
    if val_fakes is not None and val_fakes not in VAL_FAKES:
        raise DFBenchError(
            f"data.init_args.val_fakes must be 'pseudo', 'real' or null, got {val_fakes!r}"
        )
    if val_fakes == "pseudo" and pseudo_fake is None:
        raise DFBenchError(
            "data.init_args.val_fakes=pseudo needs data.init_args.pseudo_fake (the generator "
            "that makes the validation pseudo-fakes); give one or use val_fakes: real"
        )
    if val_fakes is None:
        return "pseudo" if pseudo_fake is not None else "real"
    return val_fakes


def validation_rng(seed: int, frame_key: str) -> np.random.Generator:
    """The generator of a validation pseudo-fake: fixed by the seed and the frame's key."""
    return np.random.default_rng([seed, zlib.crc32(frame_key.encode())])


def pseudo_video_keys(keys: Sequence[str]) -> list[str]:
    """Video keys of a validation set of pairs: the reals', then their pseudo-fakes'."""
    return [*keys, *(f"{key}{PSEUDO_SUFFIX}" for key in keys)]


def make_pseudo_fake(
    generator: PseudoFakeGenerator, image: np.ndarray, rng: np.random.Generator, side: SideData
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(real, fake, fake_mask)`` of a real face; the mask as uint8 0-255."""
    real, fake, fake_mask = generator.pair(image, np.zeros(image.shape[:2], np.uint8), rng, side)
    return real, fake, np.round(np.clip(fake_mask, 0, 1) * 255).astype(np.uint8)


def stack_pair(real: dict[str, torch.Tensor], fake: dict[str, torch.Tensor]) -> dict:
    """Two batch items as one item of two (collated by :func:`collate_pairs`)."""
    return {key: torch.stack([real[key], fake[key]]) for key in real}


def pairs_collate(dataset: object) -> Callable | None:
    """:func:`collate_pairs` for a dataset of pairs (one given a ``pseudo_fake``), else None."""
    return collate_pairs if getattr(dataset, "pseudo_fake", None) is not None else None


def collate_pairs(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Collate (real, pseudo-fake) pairs into one flat batch: real, fake, real, fake, ..."""
    batch = default_collate(items)
    return {key: value.flatten(0, 1) for key, value in batch.items()}
