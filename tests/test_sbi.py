"""SBI pseudo-fakes and the landmark geometry they use."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from src.augment.landmarks import FLIP_ORDER, HULL_TYPES, hflip, hull_mask
from src.augment.sbi import BLEND_RATIOS, SBI, blend_mask


def blank(image: np.ndarray) -> np.ndarray:
    return np.zeros(image.shape[:2], np.uint8)


def test_flip_twice_restores_and_swaps_sides(astronaut_face) -> None:
    image, landmarks = astronaut_face
    flipped, points = hflip(image, landmarks)
    width = image.shape[1]
    # The image-left outer eye corner (36) is the mirror of the old image-right one (45).
    assert np.allclose(points[36], [width - 1 - landmarks[45, 0], landmarks[45, 1]])
    assert np.allclose(points[48], [width - 1 - landmarks[54, 0], landmarks[54, 1]])
    assert np.allclose(
        points[30], [width - 1 - landmarks[30, 0], landmarks[30, 1]]
    )  # nose tip stays
    assert points[36:42, 0].mean() < points[42:48, 0].mean()  # eyes still ordered left to right
    again, restored = hflip(flipped, points)
    assert np.array_equal(again, image) and np.allclose(restored, landmarks)
    assert sorted(FLIP_ORDER.tolist()) == list(range(68))
    assert np.array_equal(FLIP_ORDER[FLIP_ORDER], np.arange(68))  # an involution


@pytest.mark.parametrize("hull_type", HULL_TYPES)
def test_hulls_cover_the_face(astronaut_face, hull_type: str) -> None:
    image, landmarks = astronaut_face
    mask = hull_mask(landmarks, image.shape[:2], hull_type)
    assert set(np.unique(mask)) == {0.0, 1.0}
    nose = landmarks[30].astype(int)
    assert mask[nose[1], nose[0]] == 1
    assert 0.1 < mask.mean() < 0.6
    if hull_type == "extended":
        assert mask.sum() > hull_mask(landmarks, image.shape[:2], "facehull").sum()
    with pytest.raises(ValueError, match="unknown hull type"):
        hull_mask(landmarks, image.shape[:2], "round")


@pytest.mark.parametrize("variant", ["sbi", "laa"])
def test_mask_bounds_and_the_fake_outside_it(astronaut_face, variant: str) -> None:
    image, landmarks = astronaut_face
    generator = SBI(variant=variant)
    hull = hull_mask(landmarks, image.shape[:2], "extended")
    # Affine (<= 3 % shift, 5 % scale), elastic and the blurs move the edge by well under 15 % of the image.
    reach = int(0.15 * image.shape[0]) * 2 + 1
    allowed = cv2.dilate(hull, np.ones((reach, reach), np.uint8)) > 0
    for seed in range(8):
        real, fake, mask = generator.pair(
            image, blank(image), np.random.default_rng(seed), {"landmarks": landmarks}
        )
        assert mask.dtype == np.float32 and mask.shape == image.shape[:2]
        assert mask.min() >= 0 and mask.max() <= 1 and mask.max() > 0.2
        assert (mask[~allowed] == 0).all()
        outside = mask == 0
        assert np.array_equal(fake[outside], real[outside])
        if variant == "sbi":
            assert any(np.isclose(mask.max(), r, atol=0.01) for r in BLEND_RATIOS)
        else:
            assert np.isclose(
                mask.max(), 1.0, atol=0.01
            )  # LAA-Net returns the mask before the ratio
    # Where the mask is 1, the fake is the (transformed, shifted) source, not the target.
    real, fake, mask = SBI().pair(
        image, blank(image), np.random.default_rng(1), {"landmarks": landmarks}
    )
    assert np.abs(fake.astype(int) - real.astype(int))[mask > 0.99].mean() > 1


def test_same_rng_same_output(astronaut_face) -> None:
    image, landmarks = astronaut_face
    a = SBI(variant="laa").pair(
        image, blank(image), np.random.default_rng(7), {"landmarks": landmarks}
    )
    b = SBI(variant="laa").pair(
        image, blank(image), np.random.default_rng(7), {"landmarks": landmarks}
    )
    c = SBI(variant="laa").pair(
        image, blank(image), np.random.default_rng(8), {"landmarks": landmarks}
    )
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[1], c[1])
    fake, mask = SBI()(image, blank(image), np.random.default_rng(7), {"landmarks": landmarks})
    assert fake.shape == image.shape and fake.dtype == np.uint8


def test_blend_mask_keeps_the_core_and_feathers_the_edge() -> None:
    mask = np.zeros((300, 300), np.float32)
    mask[60:240, 60:240] = 1
    weights = blend_mask(mask, np.random.default_rng(0))
    assert weights[150, 150] == pytest.approx(1.0, abs=1e-3)
    assert weights[5, 5] == 0
    profile = weights[150, :151]  # from outside to the centre
    assert (np.diff(profile) >= -1e-6).all()
    assert ((profile > 0.05) & (profile < 0.95)).sum() >= 3  # a feathered seam, not a step
    assert blend_mask(np.zeros((50, 50), np.float32), np.random.default_rng(0)).max() == 0


def test_bad_options() -> None:
    with pytest.raises(ValueError, match="variant"):
        SBI(variant="x")
    with pytest.raises(ValueError, match="unknown hull types"):
        SBI(hull_types=["blob"])


def test_sbi_in_the_datamodule(toy_cache) -> None:
    import torch

    from src.data import DeepfakeDataModule

    _, cache, _ = toy_cache
    dm = DeepfakeDataModule(
        cache_dir=str(cache),
        train=["toy"],
        test=["toy"],
        pseudo_fake=SBI(variant="laa"),
        batch_size=2,
        train_frames_per_video=2,
        input_size=64,
    )
    dm.setup("fit")
    torch.manual_seed(0)
    batch = next(iter(dm.train_dataloader()))
    assert batch["label"].tolist() == [0.0, 1.0, 0.0, 1.0]
    assert batch["mask"][0::2].max() == 0 and (batch["mask"][1::2] > 0).flatten(1).any(1).all()
    outside = batch["mask"][1::2] == 0
    reals, fakes = batch["image"][0::2], batch["image"][1::2]
    assert torch.equal(reals[outside.expand_as(reals)], fakes[outside.expand_as(fakes)])
