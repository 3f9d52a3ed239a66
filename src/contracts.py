"""Contracts shared by ``src.data`` and ``src.detectors`` (neither imports the other).

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
"""

from __future__ import annotations

from dataclasses import dataclass

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
