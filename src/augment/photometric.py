"""SBI's photometric steps as the authors' albumentations 1.3.1 runs them, with lookup tables.

Two pipelines, both from SBI's code (and copied unchanged into LAA-Net's):

* the *source transform* (:func:`source_transform`), applied to either the
  blend's source or its target: RGB shift +-20 (p 0.3), hue / saturation /
  value shift +-0.3 (p 1), brightness and contrast +-0.1 (p 1), then, equally
  likely, a x2 or x4 down-and-up scaling (nearest down, linear up) or a
  sharpening (alpha 0.2-0.5, lightness 0.5-1);
* the *paired transform* (:func:`paired_photometric`), applied with one draw
  to a real and its fake: RGB shift +-20 (p 0.3), hue / saturation / value
  shift +-0.3 (p 0.3), brightness and contrast +-0.3 (p 0.3), JPEG quality
  40-100 (p 0.5).

What albumentations 1.3.1 does with uint8 images, and so what is done here:
every shift or scaling is a 256-entry table per channel whose values are
clipped to 0-255 and then *truncated* to integers (``astype(uint8)``), not
rounded. The hue / saturation / value shift converts to OpenCV's 8-bit HSV
(hue 0-179) and back; with the authors' limits of +-0.3 a positive shift
truncates to no change and a negative one to minus one level, and the round
trip through HSV itself moves colours by a fraction of a grey level on
average, so the step is small but not nothing. Brightness is added as
``beta * 255``. JPEG encodes the RGB array as OpenCV's codec receives it
(as if it were BGR), which is what albumentations' ``ImageCompression`` does.
"""

from __future__ import annotations

import cv2
import numpy as np

_LEVELS = np.arange(256, dtype=np.float32)


def _table(values: np.ndarray) -> np.ndarray:
    """Float table(s) -> uint8, clipped then truncated (albumentations 1.x's ``astype``)."""
    return np.clip(values, 0, 255).astype(np.uint8)


def _apply(image: np.ndarray, tables: np.ndarray) -> np.ndarray:
    """One 256-entry table per channel (``tables`` is 3 x 256), in one OpenCV pass."""
    return cv2.LUT(image, np.ascontiguousarray(tables.T).reshape(1, 256, 3))


def rgb_shift_tables(shifts: np.ndarray) -> np.ndarray:
    """Tables adding ``shifts[c]`` grey levels to channel c."""
    return _table(_LEVELS[None] + np.asarray(shifts, np.float32)[:, None])


def brightness_contrast_tables(alpha: float, beta: float) -> np.ndarray:
    """Tables of ``alpha * x + beta * 255`` (brightness relative to the maximum)."""
    return np.repeat(_table(_LEVELS * alpha + beta * 255)[None], 3, axis=0)


def hsv_shift(image: np.ndarray, hue: float, saturation: float, value: float) -> np.ndarray:
    """Shift OpenCV 8-bit HSV channels (hue modulo 180) and convert back to RGB."""
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
    tables = np.stack(
        [
            np.mod(_LEVELS + hue, 180).astype(np.uint8),
            _table(_LEVELS + saturation),
            _table(_LEVELS + value),
        ]
    )
    return cv2.cvtColor(_apply(hsv, tables), cv2.COLOR_HSV2RGB)


def down_up_scale(image: np.ndarray, factor: int) -> np.ndarray:
    """Down-scale by ``factor`` (nearest) and back (linear): SBI's ``RandomDownScale``."""
    height, width = image.shape[:2]
    small = cv2.resize(
        image,
        (max(int(width / factor), 1), max(int(height / factor), 1)),
        interpolation=cv2.INTER_NEAREST,
    )
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def sharpen(image: np.ndarray, alpha: float, lightness: float) -> np.ndarray:
    """Blend of identity and a Laplacian-like sharpening kernel, as albumentations' ``Sharpen``."""
    effect = np.full((3, 3), -1.0, np.float32)
    effect[1, 1] = 8 + lightness
    identity = np.zeros((3, 3), np.float32)
    identity[1, 1] = 1
    return cv2.filter2D(image, -1, (1 - alpha) * identity + alpha * effect)


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """JPEG round trip of the array as OpenCV reads it (channel order untouched)."""
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError(f"OpenCV failed to JPEG-encode an image of shape {image.shape}")
    return cv2.imdecode(data, cv2.IMREAD_UNCHANGED)


def source_transform(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """SBI's source/target transform (see the module docstring)."""
    if rng.random() < 0.3:
        image = _apply(image, rgb_shift_tables(rng.uniform(-20, 20, 3)))
    image = hsv_shift(image, *rng.uniform(-0.3, 0.3, 3))
    alpha, beta = 1 + rng.uniform(-0.1, 0.1), rng.uniform(-0.1, 0.1)
    image = _apply(image, brightness_contrast_tables(alpha, beta))
    if rng.random() < 0.5:
        return down_up_scale(image, int(rng.choice((2, 4))))
    return sharpen(image, rng.uniform(0.2, 0.5), rng.uniform(0.5, 1.0))


def paired_photometric(
    real: np.ndarray, fake: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """SBI's paired transform: one draw of every step, applied to both images."""
    tables = None
    if rng.random() < 0.3:
        tables = rgb_shift_tables(rng.uniform(-20, 20, 3))
    hsv = rng.uniform(-0.3, 0.3, 3) if rng.random() < 0.3 else None
    if rng.random() < 0.3:
        alpha, beta = 1 + rng.uniform(-0.3, 0.3), rng.uniform(-0.3, 0.3)
    else:
        alpha, beta = None, None
    quality = int(rng.integers(40, 101)) if rng.random() < 0.5 else None
    out = []
    for image in (real, fake):
        if tables is not None:
            image = _apply(image, tables)
        if hsv is not None:
            image = hsv_shift(image, *hsv)
        if alpha is not None:
            image = _apply(image, brightness_contrast_tables(alpha, beta))
        if quality is not None:
            image = jpeg(image, quality)
        out.append(image)
    return out[0], out[1]
