"""Test-time robustness perturbations: the DeeperForensics-1.0 set, five levels each.

Jiang et al., "DeeperForensics-1.0: A Large-Scale Dataset for Real-World Face
Forgery Detection" (CVPR 2020) define seven distortions at five levels; their
released ``perturbation`` code (``add_distortion_to_video.py`` and
``distortions.py`` in github.com/EndlessSora/DeeperForensics-1.0) fixes the
parameters below. LipForensics and LAA-Net (Table 2: Saturation, Contrast,
Block, Noise, Blur, Pixel) evaluate with the same set. Video compression (DF-1.0
"VC", H.264 CRF) works on whole videos and is out of scope here.

========== ======= ================================================ ============================
name       DF-1.0  what level 1..5 means                            levels 1, 2, 3, 4, 5
========== ======= ================================================ ============================
saturation CS      chroma (Cb, Cr) scaled by the factor             0.4, 0.3, 0.2, 0.1, 0.0
contrast   CC      every pixel value multiplied by the factor       0.85, 0.725, 0.6, 0.475, 0.35
block      BW      number of 8 x 8 grey (128) blocks per 256 px     16, 32, 48, 64, 80
noise      GNC     variance of white Gaussian noise in YCbCr        0.001, 0.002, 0.005, 0.01, 0.05
blur       GB      Gaussian kernel size (sigma = size / 6)          7, 9, 13, 17, 21
pixelation JPEG    down-scale factor (bilinear down, bilinear up)   2, 3, 4, 5, 6
jpeg       --      JPEG quality                                     25, 18, 15, 10, 7
========== ======= ================================================ ============================

Sources: the first six rows are DeeperForensics-1.0's released parameters. The
distortion DF-1.0 names "JPEG" is a down- and up-scaling, i.e. pixelation,
which is what LAA-Net's "Pixel" column and LipForensics' "pixelation" report.
DF-1.0 has no real JPEG distortion; ``jpeg`` takes the five qualities of
ImageNet-C's ``jpeg_compression`` (Hendrycks & Dietterich, ICLR 2019), the
usual five-level JPEG benchmark.

How each follows DF-1.0's definition, and where this module departs from it:

- saturation: DF-1.0 converts to YCbCr and moves Cb and Cr towards grey by the
  factor. With the luma fixed this is exactly ``Y + f * (RGB - Y)`` in RGB
  (Y = BT.601 luma), which is what is computed here (no colour-space round
  trip). Level 5 (factor 0) is the grey-scale image.
- contrast: as in DF-1.0, a multiplication of every value by the factor (it
  darkens as much as it flattens).
- block: DF-1.0 draws ``param * (min(H, W) // 256)`` blocks, which is zero for
  faces smaller than 256 px and would silently leave them clean; here the
  multiplier is at least 1. Block corners are uniform in ``[0, W - 9]`` and
  ``[0, H - 9]`` as there; blocks may overlap.
- noise: DF-1.0 adds N(0, variance) to YCbCr scaled to [0, 1] in studio range
  (luma over 219 levels, chroma over 224). In 8-bit full-range units that is a
  standard deviation of ``255 * sqrt(v) * 255 / 219`` on Y and
  ``255 * sqrt(v) * 255 / 224`` on Cb and Cr (about 9 levels at level 1, 66 at
  level 5). The noise is mapped to RGB through the BT.601 inverse matrix and
  added there, which is the same thing without converting the image.
- blur and pixelation: as in DF-1.0 (OpenCV, default borders/interpolation).
- Every result is rounded to the nearest integer and clipped to [0, 255]
  (DF-1.0 truncates with ``astype(uint8)``).

Images are RGB uint8 ``H x W x 3``; the input is never modified. Randomness
(block positions, noise) comes only from the ``rng`` argument, so a generator
in the same state gives the same output.

:class:`Perturbation` is one perturbation at one level in the
:class:`~src.contracts.Augment` form the DataModule's ``test_perturbation``
takes (the image changes, the mask does not)::

    test_perturbation: {class_path: src.augment.perturb.Perturbation, init_args: {name: blur, level: 3}}
"""

from __future__ import annotations

import operator
from collections.abc import Callable

import cv2
import numpy as np

from src.contracts import NO_SIDE_DATA, SideData
from src.errors import DFBenchError

LEVELS: tuple[int, ...] = (1, 2, 3, 4, 5)

#: Parameter of each perturbation at levels 1..5 (see the module docstring for units and sources).
PARAMETERS: dict[str, tuple[float, ...]] = {
    "saturation": (0.4, 0.3, 0.2, 0.1, 0.0),
    "contrast": (0.85, 0.725, 0.6, 0.475, 0.35),
    "block": (16, 32, 48, 64, 80),
    "noise": (0.001, 0.002, 0.005, 0.01, 0.05),
    "blur": (7, 9, 13, 17, 21),
    "pixelation": (2, 3, 4, 5, 6),
    "jpeg": (25, 18, 15, 10, 7),
}

#: DeeperForensics-1.0's code for each perturbation (``jpeg`` has none).
DEEPERFORENSICS_CODES: dict[str, str | None] = {
    "saturation": "CS",
    "contrast": "CC",
    "block": "BW",
    "noise": "GNC",
    "blur": "GB",
    "pixelation": "JPEG",
    "jpeg": None,
}

_BLOCK_WIDTH = 8
_BLOCK_GREY = 128
# BT.601 luma weights, and the matrix taking a (Y, Cb, Cr) offset to an (R, G, B) offset.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_YCBCR_TO_RGB = np.array(
    [[1.0, 0.0, 1.402], [1.0, -0.344136, -0.714136], [1.0, 1.772, 0.0]], dtype=np.float32
)


def _to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def color_saturation(image: np.ndarray, factor: float) -> np.ndarray:
    """Scale the chroma of ``image`` by ``factor`` (0 = grey scale, 1 = unchanged)."""
    rgb = image.astype(np.float32)
    luma = rgb @ _LUMA
    return _to_uint8(luma[..., None] + factor * (rgb - luma[..., None]))


def color_contrast(image: np.ndarray, factor: float) -> np.ndarray:
    """Multiply every value by ``factor`` (DeeperForensics-1.0's contrast change)."""
    return _to_uint8(image.astype(np.float32) * factor)


def block_wise(image: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Paint ``count`` grey 8 x 8 blocks per 256 px of the shorter side at random places."""
    height, width = image.shape[:2]
    size = min(_BLOCK_WIDTH, height, width)
    n_blocks = int(count) * max(1, min(height, width) // 256)
    tops = rng.integers(0, max(1, height - size), size=n_blocks)
    lefts = rng.integers(0, max(1, width - size), size=n_blocks)
    offsets = np.arange(size)
    # One fancy-indexed write paints every block: rows (n, size, 1) x cols (n, 1, size).
    rows = tops[:, None, None] + offsets[None, :, None]
    cols = lefts[:, None, None] + offsets[None, None, :]
    out = image.copy()
    out[rows, cols] = _BLOCK_GREY
    return out


def gaussian_noise_color(
    image: np.ndarray, variance: float, rng: np.random.Generator
) -> np.ndarray:
    """Add white Gaussian noise of ``variance`` (DF-1.0 units) to Y, Cb and Cr."""
    height, width = image.shape[:2]
    std = 255.0 * np.sqrt(variance) * np.array([255 / 219, 255 / 224, 255 / 224], np.float32)
    noise = rng.standard_normal((height, width, 3), dtype=np.float32) * std
    return _to_uint8(image.astype(np.float32) + noise @ _YCBCR_TO_RGB.T)


def gaussian_blur(image: np.ndarray, kernel_size: int) -> np.ndarray:
    """Gaussian blur with a square odd kernel and sigma = kernel_size / 6."""
    k = int(kernel_size)
    return cv2.GaussianBlur(image, (k, k), k / 6)


def pixelation(image: np.ndarray, factor: int) -> np.ndarray:
    """Down-scale by ``factor`` and back (bilinear both ways)."""
    height, width = image.shape[:2]
    small = cv2.resize(image, (max(1, width // factor), max(1, height // factor)))
    return cv2.resize(small, (width, height))


def jpeg_compression(image: np.ndarray, quality: int) -> np.ndarray:
    """Encode as JPEG at ``quality`` and decode."""
    # OpenCV's codec reads BGR; encoding RGB as if it were BGR would weight the luma wrongly.
    ok, encoded = cv2.imencode(
        ".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    )
    if not ok:
        raise RuntimeError(f"OpenCV failed to JPEG-encode an image of shape {image.shape}")
    return cv2.cvtColor(cv2.imdecode(encoded, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _check_level(name: str, level: int) -> int:
    try:
        value = operator.index(level)
    except TypeError:
        value = None
    if value is None or isinstance(level, bool) or value not in LEVELS:
        raise DFBenchError(
            f"perturbation level must be one of {list(LEVELS)}, got {level!r} (for {name!r})"
        )
    return value


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise TypeError(
            f"expected an RGB uint8 numpy array, got {type(image).__name__}"
            f" of dtype {getattr(image, 'dtype', None)}"
        )
    if image.ndim != 3 or image.shape[2] != 3:
        raise DFBenchError(f"expected an H x W x 3 RGB image, got shape {image.shape}")


def _leveled(name: str) -> Callable[[np.ndarray, int, np.random.Generator], np.ndarray]:
    """``(image, level, rng) -> image`` for perturbation ``name``."""

    def apply(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
        _check_image(image)
        param = PARAMETERS[name][_check_level(name, level) - 1]
        if name == "saturation":
            return color_saturation(image, param)
        if name == "contrast":
            return color_contrast(image, param)
        if name == "block":
            return block_wise(image, int(param), rng)
        if name == "noise":
            return gaussian_noise_color(image, param, rng)
        if name == "blur":
            return gaussian_blur(image, int(param))
        if name == "pixelation":
            return pixelation(image, int(param))
        return jpeg_compression(image, int(param))

    apply.__name__ = f"perturb_{name}"
    apply.__doc__ = (
        f"The {name!r} perturbation at ``level`` (1..5); see :mod:`src.augment.perturb`."
    )
    return apply


#: ``PERTURBATIONS[name](image, level, rng)``, the same as ``perturb(image, name, level, rng)``.
PERTURBATIONS: dict[str, Callable[[np.ndarray, int, np.random.Generator], np.ndarray]] = {
    name: _leveled(name) for name in PARAMETERS
}


def perturb(image: np.ndarray, name: str, level: int, rng: np.random.Generator) -> np.ndarray:
    """Apply perturbation ``name`` at ``level`` to an RGB uint8 image.

    Args:
        image: RGB uint8 ``H x W x 3``; not modified.
        name: one of ``saturation, contrast, block, noise, blur, pixelation, jpeg``.
        level: severity, 1 (mildest) to 5.
        rng: source of randomness (block positions, noise); the other perturbations
            are deterministic and leave it untouched.

    Returns:
        The perturbed image, same shape and dtype.

    Raises:
        ValueError: unknown ``name`` or ``level`` outside 1..5.
    """
    if name not in PERTURBATIONS:
        raise DFBenchError(
            f"unknown perturbation {name!r}; valid names: {', '.join(PERTURBATIONS)}"
        )
    return PERTURBATIONS[name](image, level, rng)


class Perturbation:
    """Perturbation ``name`` at ``level``, as an :class:`~src.contracts.Augment`.

    Args:
        name: one of ``saturation, contrast, block, noise, blur, pixelation, jpeg``.
        level: severity, 1 (mildest) to 5.

    Raises:
        ValueError: unknown ``name`` or ``level`` outside 1..5.
    """

    def __init__(self, name: str, level: int = 3) -> None:
        if name not in PERTURBATIONS:
            raise DFBenchError(
                f"unknown perturbation {name!r}; valid names: {', '.join(PERTURBATIONS)}"
            )
        self.name, self.level = name, _check_level(name, level)

    def __repr__(self) -> str:
        return f"Perturbation({self.name!r}, level={self.level})"

    def __call__(
        self,
        image: np.ndarray,
        mask: np.ndarray,
        rng: np.random.Generator,
        side: SideData = NO_SIDE_DATA,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The perturbed image and the mask unchanged (``side`` unused)."""
        return perturb(image, self.name, self.level, rng), mask
