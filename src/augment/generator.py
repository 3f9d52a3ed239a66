"""The shared base of pseudo-fake generators (:class:`src.contracts.PseudoFakeGenerator`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from src.contracts import SideData
from src.errors import DFBenchError

if TYPE_CHECKING:
    import pandas as pd


def side_landmarks(side: SideData) -> np.ndarray:
    """The frame's landmarks from its side data, as an (N, 2) float32 array."""
    if "landmarks" not in side or side["landmarks"] is None:
        raise DFBenchError(
            "a pseudo-fake generator needs the frame's landmarks in its side data "
            f"(side['landmarks']); got keys {sorted(side)}"
        )
    return np.asarray(side["landmarks"], dtype=np.float32).reshape(-1, 2)


class PairedGenerator:
    """A generator defined by :meth:`pair`; ``prepare`` does nothing unless overridden.

    Calling it is the :class:`src.contracts.Augment` form: ``(image, mask, rng,
    side) -> (fake, fake_mask)``, for code that wants the fake alone.
    """

    def prepare(self, frames: pd.DataFrame, cache_dir: str | Path) -> None:
        """Nothing to prepare: the generator works from one face at a time."""

    def pair(
        self,
        image: np.ndarray,
        mask: np.ndarray,
        rng: np.random.Generator,
        side: SideData,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(real, fake, fake_mask)``: the real may differ from ``image``."""
        raise NotImplementedError

    def __call__(
        self,
        image: np.ndarray,
        mask: np.ndarray,
        rng: np.random.Generator,
        side: SideData,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(fake, fake_mask)``; the fake's background is :meth:`pair`'s real."""
        _, fake, fake_mask = self.pair(image, mask, rng, side)
        return fake, fake_mask
