"""SBI pseudo-fakes, their photometric steps and the landmark geometry they use."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from src.augment.landmarks import (
    FLIP_ORDER,
    FLIP_ORDER_81,
    HULL_TYPES,
    hflip,
    hull_mask,
    with_forehead,
)
from src.augment.photometric import (
    brightness_contrast_tables,
    hsv_shift,
    paired_photometric,
    rgb_shift_tables,
    source_transform,
)
from src.augment.sbi import (
    BLEND_RATIOS,
    SBI,
    affine_matrix,
    blend_mask,
    elastic_field,
    final_crop,
    sbi_region,
)


def blank(image: np.ndarray) -> np.ndarray:
    return np.zeros(image.shape[:2], np.uint8)


def face_side(landmarks: np.ndarray, box=None) -> dict:
    side = {"landmarks": landmarks}
    if box is not None:
        side |= dict(zip(("face_x0", "face_y0", "face_x1", "face_y1"), box, strict=True))
    return side


# ----------------------------------------------------------------------------- landmarks


def test_flip_twice_restores_and_swaps_sides(astronaut_face) -> None:
    image, landmarks = astronaut_face
    flipped, points = hflip(image, landmarks)
    width = image.shape[1]
    # The image-left outer eye corner (36) is the mirror of the old image-right one (45).
    assert np.allclose(points[36], [width - 1 - landmarks[45, 0], landmarks[45, 1]])
    assert np.allclose(points[48], [width - 1 - landmarks[54, 0], landmarks[54, 1]])
    assert np.allclose(points[30], [width - 1 - landmarks[30, 0], landmarks[30, 1]])
    assert points[36:42, 0].mean() < points[42:48, 0].mean()  # eyes still ordered left to right
    again, restored = hflip(flipped, points)
    assert np.array_equal(again, image) and np.allclose(restored, landmarks)
    for order in (FLIP_ORDER, FLIP_ORDER_81):
        assert np.array_equal(order[order], np.arange(len(order)))  # an involution
    # 81 points: the forehead arc of the flipped face is the mirrored arc.
    _, flipped81 = hflip(image, with_forehead(landmarks))
    assert np.allclose(flipped81[68:], with_forehead(points)[68:], atol=1e-3)


def test_forehead_points_follow_the_documented_rule() -> None:
    # A symmetric face: jaw ends at (+-50, 0), chin at (0, 100), brows up to y = -20 (y down).
    points = np.zeros((68, 2), np.float32)
    points[0:17, 0] = np.linspace(-50, 50, 17)
    points[0:17, 1] = 100 * np.cos(np.linspace(-np.pi / 2, np.pi / 2, 17))
    points[8] = (0, 100)
    points[17:27] = np.stack([np.linspace(-40, 40, 10), np.full(10, -20.0)], 1)
    points[27:68] = (0, 40)
    arc = with_forehead(points)[68:]
    # Height above the jaw ends' midpoint: 20 (brows) + 0.3 x (20 + 100) = 56.
    assert np.allclose(arc[6], (0, -56), atol=1e-4)
    angle = np.deg2rad(165)
    assert np.allclose(arc[0], (50 * np.cos(angle), -56 * np.sin(angle)), atol=1e-4)
    assert np.allclose(arc[::-1, 0], -arc[:, 0], atol=1e-4)  # symmetric, left to right
    given = np.concatenate([points, arc + 1])
    assert np.array_equal(with_forehead(given), given)  # a frame's own 81 points stay


def _union_of_hulls(shape, parts) -> np.ndarray:
    """An independent rasteriser: pixel centres inside any part's convex hull (scipy)."""
    from scipy.spatial import Delaunay

    ys, xs = np.mgrid[: shape[0], : shape[1]]
    centres = np.stack([xs.ravel(), ys.ravel()], 1)
    inside = np.zeros(len(centres), bool)
    for part in parts:
        inside |= Delaunay(part.astype(float)).find_simplex(centres) >= 0
    return inside.reshape(shape)


def _face_xray_parts(p: np.ndarray, hull_type: str) -> list[np.ndarray]:
    """Face X-ray's mask parts, listed from its definitions (indices into the 68 points)."""
    if hull_type == "dfl":
        return [
            p[[*range(17), *range(48, 68), 0, 8, 16]],
            p[[27, 28, 29, 30, 33]],
            p[[*range(17, 27), 0, 27, 16, 33]],
        ]
    if hull_type == "extended":
        p = p.copy()
        ml, mr = (p[36] + p[0]) // 2, (p[16] + p[45]) // 2
        ql, qr = (p[36] + ml) // 2, (p[45] + mr) // 2
        p[17:22] += (p[17:22] - np.stack([ql, p[36], p[37], p[38], p[39]])) // 2
        p[22:27] += (p[22:27] - np.stack([p[42], p[43], p[44], p[45], qr])) // 2
    nose = list(range(31, 36))
    return [
        p[[*range(9), 17]],
        p[[*range(8, 17), 26]],
        p[[17, 18, 19, 8]],
        p[[24, 25, 26, 8]],
        p[[*range(19, 25), 8]],
        p[[*range(17, 22), 27, *nose, 8]],
        p[[*range(22, 27), 27, *nose, 8]],
        p[[27, 28, 29, 30, *nose]],
    ]


@pytest.mark.parametrize("hull_type", ["dfl", "extended", "components"])
def test_hulls_are_face_xrays_definitions(astronaut_face, hull_type: str) -> None:
    image, landmarks = astronaut_face
    mask = hull_mask(landmarks, image.shape[:2], hull_type) > 0
    points = np.trunc(landmarks).astype(np.int64)
    expected = _union_of_hulls(image.shape[:2], _face_xray_parts(points, hull_type))
    iou = (mask & expected).sum() / (mask | expected).sum()
    assert iou > 0.985  # rasterisation rules differ only along the edges


def test_hull_types_cover_what_they_should(astronaut_face) -> None:
    image, landmarks = astronaut_face
    shape = image.shape[:2]
    masks = {t: hull_mask(landmarks, shape, t) for t in HULL_TYPES}
    nose = landmarks[30].astype(int)
    assert all(m[nose[1], nose[0]] == 1 for m in masks.values())
    assert masks["facehull"].min() + 1 > 0 and set(np.unique(masks["dfl"])) == {0.0, 1.0}
    # Components keep concavities a hull fills; extended reaches above the brows.
    assert masks["components"].sum() < masks["facehull"].sum()
    brow_top = landmarks[17:27, 1].min()
    rows = np.nonzero(masks["extended"].any(1))[0]
    assert rows.min() < brow_top - 5 and rows.min() < np.nonzero(masks["components"].any(1))[0][0]
    # Only the convex hull uses the forehead points.
    with_81 = with_forehead(landmarks)
    for hull_type in ("dfl", "extended", "components"):
        assert np.array_equal(hull_mask(with_81, shape, hull_type), masks[hull_type])
    assert hull_mask(with_81, shape, "facehull").sum() > 1.2 * masks["facehull"].sum()
    with pytest.raises(ValueError, match="unknown hull type"):
        hull_mask(landmarks, shape, "round")


# ---------------------------------------------------------------------------- geometry


def test_elastic_field_matches_a_full_resolution_field() -> None:
    """Displacement std and correlation length of albumentations' alpha 50 / sigma 7 field."""
    shape, alpha, sigma = (384, 320), 50.0, 7.0
    rng = np.random.default_rng(0)
    reference = [
        alpha * gaussian_filter(rng.uniform(-1, 1, shape), sigma, mode="constant") for _ in range(4)
    ]
    ours = [d for seed in range(2) for d in elastic_field(shape, np.random.default_rng(seed))]
    core = (slice(40, -40), slice(40, -40))  # away from the borders' zero padding

    def lag_correlation(fields, lag: int) -> float:
        return float(
            np.mean(
                [
                    np.corrcoef(f[core][:, :-lag].ravel(), f[core][:, lag:].ravel())[0, 1]
                    for f in fields
                ]
            )
        )

    ref_std = np.mean([f[core].std() for f in reference])
    our_std = np.mean([f[core].std() for f in ours])
    assert ref_std == pytest.approx(1.16, rel=0.08)  # 50 x sqrt(1/3 / (4 pi 7^2))
    assert our_std == pytest.approx(ref_std, rel=0.12)
    for lag in (4, 10):
        assert lag_correlation(ours, lag) == pytest.approx(lag_correlation(reference, lag), abs=0.1)


def test_affine_scales_axes_independently_about_the_region_centre() -> None:
    rng = np.random.default_rng(0)
    matrices = np.stack([affine_matrix((200, 100), rng) for _ in range(400)])
    scale_x, scale_y = matrices[:, 0, 0], matrices[:, 1, 1]
    assert scale_x.min() >= 0.95 and scale_x.max() <= 1 / 0.95 and scale_y.min() >= 0.95
    assert abs(np.corrcoef(scale_x, scale_y)[0, 1]) < 0.15
    assert (matrices[:, [0, 1], [1, 0]] == 0).all()
    # The shift is what the centre (49.5, 99.5) moves by: x +-3 % of 100, y +-1.5 % of 200.
    centre = np.array([49.5, 99.5, 1.0])
    moved = matrices @ centre - centre[:2]
    assert np.abs(moved[:, 0]).max() <= 3 and np.abs(moved[:, 0]).max() > 2.5
    assert np.abs(moved[:, 1]).max() <= 3 and np.abs(moved[:, 1]).max() > 2.5


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
    # Part of a larger region is blurred at the region's scale: the same weights as
    # cutting the blend mask of the whole region.
    region = np.zeros((400, 400), np.float32)
    region[110:290, 110:290] = 1
    whole = blend_mask(region, np.random.default_rng(3), (200, 200))
    part = blend_mask(region[50:350, 50:350], np.random.default_rng(3), (200, 200), (400, 400))
    assert np.abs(whole[50:350, 50:350] - part).max() < 0.05


def test_regions_and_final_crop_margins() -> None:
    points = np.zeros((68, 2), np.float32)
    points[:, 0] = np.linspace(100, 200, 68)
    points[:, 1] = np.linspace(50, 250, 68)
    # Box 100 x 200: half the width left and right, the height above, 0.4 of it below.
    assert sbi_region(points) == (50, -150, 251, 331)
    rng = np.random.default_rng(0)
    boxes = np.array([final_crop((100.0, 50.0, 200.0, 250.0), rng) for _ in range(2000)])
    widths, heights = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    # Per side 0.2-0.8 x 25 px (width) or 50 px (height), int() cut, +1 at the far end.
    assert widths.min() >= 100 + 10 - 1 and widths.max() <= 100 + 40 + 2
    assert heights.min() >= 200 + 20 - 1 and heights.max() <= 200 + 80 + 2
    assert abs(widths.mean() - 126) < 1.5
    left = 100 - boxes[:, 0]
    assert abs(np.corrcoef(left, boxes[:, 2] - 200)[0, 1]) < 0.1  # sides drawn independently


# -------------------------------------------------------------------------- photometric


def test_tables_truncate_as_albumentations_1x() -> None:
    tables = brightness_contrast_tables(1.0, 0.1)  # +25.5 grey levels
    assert tables[0, 0] == 25 and tables[0, 100] == 125 and tables[0, 240] == 255
    shift = rgb_shift_tables(np.array([5.7, -5.7, 0.0]))
    assert shift[0, 10] == 15 and shift[1, 10] == 4 and shift[1, 3] == 0 and shift[2, 7] == 7


def test_hsv_step_is_small_but_not_nothing(astronaut_face) -> None:
    image, _ = astronaut_face
    grey = np.full((4, 4, 3), 128, np.uint8)
    # Negative shifts truncate to one level down (here value), positive ones to nothing.
    assert (hsv_shift(grey, 0.2, 0.2, -0.2) == 127).all()
    assert np.array_equal(hsv_shift(grey, 0.2, 0.2, 0.2), grey)
    moved = np.abs(hsv_shift(image, 0.1, 0.1, 0.1).astype(int) - image).mean()
    assert 0.05 < moved < 3  # the HSV round trip alone


def test_source_transform_and_paired_transform(astronaut_face) -> None:
    image, _ = astronaut_face
    changed = [
        np.abs(source_transform(image, np.random.default_rng(s)).astype(int) - image).mean()
        for s in range(10)
    ]
    assert min(changed) > 0.5
    for seed in range(12):
        real, fake = paired_photometric(image, image.copy(), np.random.default_rng(seed))
        assert np.array_equal(real, fake)  # one draw for both


# --------------------------------------------------------------------------- generator


@pytest.mark.parametrize("variant", ["sbi", "laa"])
def test_mask_bounds_and_the_fake_outside_it(astronaut_face, variant: str) -> None:
    image, landmarks = astronaut_face
    generator = SBI(variant=variant, photometric=False)
    for seed in range(8):
        real, fake, mask = generator.pair(
            image, blank(image), np.random.default_rng(seed), face_side(landmarks)
        )
        assert mask.dtype == np.float32 and mask.shape == real.shape[:2] == fake.shape[:2]
        assert mask.min() >= 0 and mask.max() <= 1 and mask.max() > 0.2
        outside = mask == 0
        assert outside.any() and np.array_equal(fake[outside], real[outside])
        if variant == "sbi":
            assert any(np.isclose(mask.max(), r, atol=0.01) for r in BLEND_RATIOS)
        else:
            assert np.isclose(mask.max(), 1.0, atol=0.01)  # before the ratio
    real, fake, mask = SBI(photometric=False).pair(
        image, blank(image), np.random.default_rng(1), face_side(landmarks)
    )
    assert np.abs(fake.astype(int) - real.astype(int))[mask > 0.99 * mask.max()].mean() > 1


def test_final_crops_of_each_variant(astronaut_face) -> None:
    image, landmarks = astronaut_face
    box = (60.0, 40.0, 320.0, 340.0)
    sizes = []
    for seed in range(40):
        real, _, _ = SBI().pair(
            image, blank(image), np.random.default_rng(seed), face_side(landmarks, box)
        )
        sizes.append(real.shape[:2])
    heights, widths = np.array(sizes).T
    # Width 260 + 2 x (0.2-0.8) x 65, cut to the 380 px crop; height 300 + up to 150, cut too.
    assert widths.min() >= 260 + 26 - 1 and widths.max() <= min(260 + 104 + 2, 380)
    assert len(set(widths)) > 10 and heights.max() <= 380 and heights.min() >= 300 + 30 - 1
    # LAA-Net: 5-24 px of 256 trimmed from every side (here 380 px: 7-36 px).
    laa = [
        SBI(variant="laa")
        .pair(image, blank(image), np.random.default_rng(s), face_side(landmarks))[0]
        .shape[0]
        for s in range(40)
    ]
    assert min(laa) >= 380 - 2 * 36 and max(laa) <= 380 - 2 * 7 and len(set(laa)) > 5


def test_forehead_share_and_the_cut_to_68(astronaut_face) -> None:
    image, landmarks = astronaut_face
    brow_top = landmarks[17:27, 1].min()
    side = face_side(landmarks)

    def reaches_forehead(generator: SBI, seed: int) -> bool:
        *_, mask = generator.pair(image, blank(image), np.random.default_rng(seed), side)
        return bool((mask[: int(brow_top) - 25] > 0.05).any())

    hull_only = SBI(variant="laa", hull_types=("facehull",), photometric=False, final_crop=False)
    share = np.mean([reaches_forehead(hull_only, s) for s in range(60)])
    assert 0.55 < share < 0.95  # 0.75: the 81 points unless cut to 68 (p 0.25)
    never = SBI(variant="laa", hull_types=("facehull",), forehead=False, final_crop=False)
    assert not any(reaches_forehead(never, s) for s in range(10))


def test_same_rng_same_output(astronaut_face) -> None:
    image, landmarks = astronaut_face
    side = face_side(landmarks)
    a = SBI(variant="laa").pair(image, blank(image), np.random.default_rng(7), side)
    b = SBI(variant="laa").pair(image, blank(image), np.random.default_rng(7), side)
    c = SBI(variant="laa").pair(image, blank(image), np.random.default_rng(8), side)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[2], c[2])
    fake, mask = SBI()(image, blank(image), np.random.default_rng(7), side)
    assert fake.dtype == np.uint8 and fake.shape[:2] == mask.shape


def test_bad_options() -> None:
    with pytest.raises(ValueError, match="variant"):
        SBI(variant="x")
    with pytest.raises(ValueError, match="unknown hull types"):
        SBI(hull_types=["blob"])
    with pytest.raises(ValueError, match="landmarks"):
        SBI().pair(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.uint8), None, {})


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
    outside = (batch["mask"][1::2] == 0).expand(-1, 3, -1, -1)
    reals, fakes = batch["image"][0::2].int(), batch["image"][1::2].int()
    # Identical outside the mask, up to the resize's rounding where the mask rounds to 0.
    assert (reals - fakes).abs()[outside].max() <= 1
    assert (reals - fakes).abs()[~outside].float().mean() > 1
