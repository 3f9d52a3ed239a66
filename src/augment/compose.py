"""Augmentations applied one after another, each with its own draws from the frame's generator."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from src.contracts import NO_SIDE_DATA, Augment, SideData
from src.errors import DFBenchError


class Chain:
    """Run augmentations in order, e.g. PRLE's removal (which needs the cached geometry)
    before a recipe's flips and crops.

    Args:
        augments: the augmentations, first applied first.
    """

    def __init__(self, augments: Sequence[Augment]) -> None:
        if not augments:
            raise DFBenchError("Chain needs at least one augmentation")
        self.augments = list(augments)

    def __repr__(self) -> str:
        return f"Chain({self.augments!r})"

    def __call__(
        self,
        image: np.ndarray,
        mask: np.ndarray,
        rng: np.random.Generator,
        side: SideData = NO_SIDE_DATA,
    ) -> tuple[np.ndarray, np.ndarray]:
        for augment in self.augments:
            image, mask = augment(image, mask, rng, side)
        return image, mask
