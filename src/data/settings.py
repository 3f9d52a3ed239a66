"""The settings of a preprocessing run, checked when they are made.

Each video's marker records the settings that shape its crops
(:meth:`PreprocessConfig.settings`): a video made with other settings is redone.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Annotated, Any

from src.data.faces import MIN_DETECTABLE
from src.data.options import Interval, describe, matches
from src.data.tables import SPLITS
from src.errors import DFBenchError

#: Frames per video for a split that ``PreprocessConfig.frames`` does not name.
DEFAULT_FRAMES = 32

_SETTINGS_SCHEMA: dict[str, Any] = {
    "crop_scale": Annotated[float, Interval(0, None, low_open=True)],
    "keep_all_faces": bool,
    "detect_size": Annotated[int, Interval(MIN_DETECTABLE, None)],
    "min_face_fraction": Annotated[float, Interval(0, 1, low_open=True)],
    "threshold": Annotated[float, Interval(0, 1)],
    "mask_threshold": Annotated[int, Interval(1, 255)],
    "png_compression": Annotated[int, Interval(0, 9)],
}
_FRAME_COUNT = Annotated[int, Interval(1, None)]


@dataclass
class PreprocessConfig:
    """Settings of one preprocessing run (each video's marker records those that shape it).

    Values are checked on construction; a bad one is a one-line ``ValueError``
    naming the setting, the value and what is allowed.

    Attributes:
        frames: frames per video for each split (protocol defaults: 32; LAA-Net
            trains on 128); a split not named gets 32.
        crop_scale: side of the square crop over the face box's longer side (> 0).
        keep_all_faces: keep every face at least half the largest's size
            (``face_idx`` 0 is the largest) instead of the largest only.
        detect_size: shorter side of the frame MTCNN sees (>= 12, MTCNN's window).
        min_face_fraction: smallest face MTCNN looks for, relative to that side (0, 1].
        threshold: minimum face probability [0, 1].
        mask_threshold: mask-video pixels at or above this (1-255) are manipulated.
        png_compression: PNG compression level 0-9 (lossless either way; 1 is
            fast). It changes no pixel, so changing it redoes nothing.
    """

    frames: dict[str, int] = field(default_factory=lambda: {"train": 32, "val": 32, "test": 32})
    crop_scale: float = 1.3
    keep_all_faces: bool = False
    detect_size: int = 360
    min_face_fraction: float = 0.1
    threshold: float = 0.9
    mask_threshold: int = 128
    png_compression: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.frames, dict):
            raise DFBenchError(
                f"preprocess setting frames must be a mapping split -> count, got {self.frames!r}"
            )
        for split, count in self.frames.items():
            if split not in SPLITS:
                raise DFBenchError(
                    f"preprocess setting frames names the unknown split {split!r}; "
                    f"expected some of {', '.join(SPLITS)}"
                )
            _check_setting(f"frames[{split!r}]", count, _FRAME_COUNT)
        self.frames = {split: int(count) for split, count in self.frames.items()}
        for name, hint in _SETTINGS_SCHEMA.items():
            _check_setting(name, getattr(self, name), hint)
        # Plain Python values: they are compared with the ones a marker stored as JSON.
        for name in ("crop_scale", "min_face_fraction", "threshold"):
            setattr(self, name, float(getattr(self, name)))
        for name in ("detect_size", "mask_threshold", "png_compression"):
            setattr(self, name, int(getattr(self, name)))
        self.keep_all_faces = bool(self.keep_all_faces)

    def frames_for(self, split: str) -> int:
        return self.frames.get(split, DEFAULT_FRAMES)

    def settings(self, split: str) -> dict[str, Any]:
        """The settings that shape the crops of a video of ``split`` (recorded in its marker)."""
        values = asdict(self)
        del values["frames"], values["png_compression"]
        return values | {"frames": self.frames_for(split)}

    def digest(self) -> str:
        return hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


def _check_setting(name: str, value: Any, hint: Any) -> None:
    if not matches(value, hint):
        raise DFBenchError(f"preprocess setting {name} must be {describe(hint)}, got {value!r}")
