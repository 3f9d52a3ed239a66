"""Contracts shared by ``src.data``, ``src.augment`` and ``src.detectors`` (none imports another).

The batch contract (DESIGN.md): a batch is a dict with

==============  ==================  =============================================
key             shape / dtype       meaning
==============  ==================  =============================================
``image``       (B,3,H,W) float     normalised as the detector's contract asks
``label``       (B,) float          1 = fake, 0 = real
``mask``        (B,1,H,W) float     blend/manipulation mask in [0, 1]; 0 for reals
``has_mask``    (B,) bool           whether ``mask`` is a valid target: True for reals
                                    (all zero) and for fakes with a mask, False
                                    for fakes whose dataset has none
``sample_idx``  (B,) long           unique index of the item in its split
``video_idx``   (B,) long           integer id of the video (face sequence)
``frame_idx``   (B,) long           frame number in the video
==============  ==================  =============================================

Datasets emit ``image`` and ``mask`` as uint8 at the contract's size (a
quarter of the bytes to move to the device); the DataModule converts and
normalises them on the device in ``on_after_batch_transfer``.

Augmentations, pseudo-fake generators and test perturbations are written in
``src.augment`` and handed to the DataModule as objects (LightningCLI
``class_path``/``init_args``); the DataModule knows them only by the
protocols below. Each call gets the frame's :data:`SideData`: the frame-table
row plus any named per-frame arrays the DataModule was told to load, so that
a step needing more than the pixels (landmarks for a blend mask, the video key
to keep a video out, PRLE's attention map) reads it from there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

SideData = Mapping[str, Any]
"""What a step may know about a frame besides its pixels (read-only).

The frame table's fields (``src.data.tables.FRAME_COLUMNS``), among them
``landmarks`` ((68, 2) or (81, 2) float32, crop pixels), ``video_key``,
``crop_path``, ``label``, the face box in crop pixels ``face_x0 .. face_y1``;
and every named per-frame array the DataModule's ``side_data`` option
loads (e.g. ``prle_map``: uint8 H x W, the crop's size). Steps must not
modify it.
"""

NO_SIDE_DATA: SideData = MappingProxyType({})
"""Side data of a face known by its pixels only (a default for steps that need none)."""


@runtime_checkable
class Augment(Protocol):
    """A transform of a face and its mask: training recipes, test perturbations.

    ``image`` is RGB uint8 H x W x 3, ``mask`` uint8 H x W (0-255); ``rng`` is
    the only source of randomness (so one state gives one output); ``side``
    is the frame's :data:`SideData`. Returns the new ``(image, mask)``; the
    inputs are not modified. An implementation's ``__call__`` has this exact
    signature (LightningCLI checks it when a config names the class).
    """

    def __call__(
        self,
        image: np.ndarray,
        mask: np.ndarray,
        rng: np.random.Generator,
        side: SideData,
    ) -> tuple[np.ndarray, np.ndarray]: ...


@runtime_checkable
class PairAugment(Protocol):
    """A photometric transform with one random draw shared by a real and its pseudo-fake."""

    def __call__(
        self, real: np.ndarray, fake: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]: ...


@runtime_checkable
class PseudoFakeGenerator(Protocol):
    """Turns a real face into a fake with a known blend mask (SBI, BI, ...).

    ``pair(image, mask, rng, side) -> (real, fake, fake_mask)``: ``image`` is
    the RGB uint8 face crop, ``mask`` its uint8 mask (zeros for a real),
    ``side`` the frame's :data:`SideData` (``side["landmarks"]`` places the
    blend). The real may differ from ``image`` (SBI transforms the target or
    crops the pair); real and fake have one size, and ``fake_mask`` is
    float32 H x W in [0, 1].

    ``prepare(frames, cache_dir)`` is called once with the real training
    frames (a frame table) before the first ``pair``: a generator that needs
    the pool of faces (BI) builds it there; the others do nothing.
    """

    def prepare(self, frames: pd.DataFrame, cache_dir: str | Path) -> None: ...

    def pair(
        self,
        image: np.ndarray,
        mask: np.ndarray,
        rng: np.random.Generator,
        side: SideData,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...


BATCH_KEYS = ("image", "label", "mask", "has_mask", "sample_idx", "video_idx", "frame_idx")


@dataclass(frozen=True)
class InputContract:
    """What a detector expects of its input, the way timm's pretrained_cfg says it.

    Faces are resized to ``input_size`` (height, width) and normalised as
    ``(uint8 / 255 - mean) / std``.
    """

    input_size: tuple[int, int]
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)


def as_size(size: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    """An int or a (height, width) pair as a (height, width) tuple of ints."""
    if isinstance(size, int):
        return (size, size)
    height, width = size
    return (int(height), int(width))
