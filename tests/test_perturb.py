"""Robustness perturbations: severity grows with the level, determinism, argument checks."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage.data import astronaut

from src.augment.perturb import LEVELS, PARAMETERS, PERTURBATIONS, perturb

NAMES = ["saturation", "contrast", "block", "noise", "blur", "pixelation", "jpeg"]
RANDOM = {"block", "noise"}


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    return cv2.resize(astronaut(), (128, 128), interpolation=cv2.INTER_AREA)


def psnr(clean: np.ndarray, other: np.ndarray) -> float:
    mse = np.mean((clean.astype(np.float64) - other) ** 2)
    return float(10 * np.log10(255**2 / mse))


def test_registry_names_and_levels() -> None:
    assert list(PERTURBATIONS) == NAMES
    assert set(PARAMETERS) == set(NAMES)
    assert all(len(values) == len(LEVELS) for values in PARAMETERS.values())


@pytest.mark.parametrize("name", NAMES)
def test_severity_grows_with_level(face: np.ndarray, name: str) -> None:
    seeds = range(3) if name in RANDOM else range(1)
    scores = [
        np.mean([psnr(face, perturb(face, name, level, np.random.default_rng(s))) for s in seeds])
        for level in LEVELS
    ]
    assert all(a > b for a, b in zip(scores, scores[1:], strict=False)), scores
    assert scores[0] < 40, "level 1 should visibly change the image"


@pytest.mark.parametrize("name", NAMES)
def test_same_rng_same_output_and_contract(face: np.ndarray, name: str) -> None:
    original = face.copy()
    first = perturb(face, name, 3, np.random.default_rng(7))
    second = perturb(face, name, 3, np.random.default_rng(7))
    np.testing.assert_array_equal(first, second)
    assert first.shape == face.shape and first.dtype == np.uint8
    np.testing.assert_array_equal(face, original)  # input untouched
    via_registry = PERTURBATIONS[name](face, 3, np.random.default_rng(7))
    np.testing.assert_array_equal(first, via_registry)
    if name in RANDOM:
        other = perturb(face, name, 3, np.random.default_rng(8))
        assert not np.array_equal(first, other)


@pytest.mark.parametrize("name", NAMES)
def test_odd_shapes(name: str) -> None:
    image = np.random.default_rng(0).integers(0, 256, (37, 61, 3), dtype=np.uint8)
    out = perturb(image, name, 5, np.random.default_rng(0))
    assert out.shape == image.shape and out.dtype == np.uint8


def test_definitions(face: np.ndarray) -> None:
    grey = perturb(face, "saturation", 5, np.random.default_rng(0))
    assert np.abs(grey.astype(int) - grey[..., :1]).max() <= 1  # factor 0: no chroma left
    darker = perturb(face, "contrast", 1, np.random.default_rng(0))
    np.testing.assert_array_equal(darker, np.rint(face * 0.85).astype(np.uint8))
    white = np.full((64, 64, 3), 255, np.uint8)
    blocks = perturb(white, "block", 1, np.random.default_rng(0))
    painted = (blocks == 128).all(axis=2)
    assert painted.any() and set(np.unique(blocks)) <= {128, 255}


def test_deterministic_ones_leave_rng_alone(face: np.ndarray) -> None:
    rng = np.random.default_rng(3)
    for name in sorted(set(NAMES) - RANDOM):
        perturb(face, name, 2, rng)
    assert rng.integers(1 << 30) == np.random.default_rng(3).integers(1 << 30)


@pytest.mark.parametrize("name", ["Saturation", "GNC", "video", ""])
def test_unknown_name(face: np.ndarray, name: str) -> None:
    with pytest.raises(ValueError, match="saturation, contrast, block"):
        perturb(face, name, 1, np.random.default_rng(0))


@pytest.mark.parametrize("level", [0, 6, -1, 2.5, "3", True, None])
def test_bad_level(face: np.ndarray, level: object) -> None:
    with pytest.raises(ValueError, match=r"\[1, 2, 3, 4, 5\]"):
        perturb(face, "blur", level, np.random.default_rng(0))  # type: ignore[arg-type]


def test_numpy_int_level_accepted(face: np.ndarray) -> None:
    out = perturb(face, "blur", np.int64(2), np.random.default_rng(0))
    np.testing.assert_array_equal(out, perturb(face, "blur", 2, np.random.default_rng(0)))


def test_bad_image() -> None:
    with pytest.raises(TypeError):
        perturb(np.zeros((8, 8, 3), np.float32), "blur", 1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="H x W x 3"):
        perturb(np.zeros((8, 8), np.uint8), "blur", 1, np.random.default_rng(0))
