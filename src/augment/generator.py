"""The base of pseudo-fake generators (the DataModule's ``PseudoFakeGenerator`` protocol)."""

from __future__ import annotations

import numpy as np


class PairedGenerator:
    """A generator defined by :meth:`pair`; calling it returns only ``(fake, mask)``."""

    def pair(
        self,
        image: np.ndarray,
        landmarks: np.ndarray,
        rng: np.random.Generator,
        row: dict | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(real, fake, mask)``: the real may differ from ``image`` (SBI may transform it)."""
        raise NotImplementedError

    def __call__(
        self,
        image: np.ndarray,
        landmarks: np.ndarray,
        rng: np.random.Generator,
        row: dict | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(fake, mask)``; the fake's background is :meth:`pair`'s real."""
        _, fake, mask = self.pair(image, landmarks, rng, row)
        return fake, mask
