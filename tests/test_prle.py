"""PRLE: stage-1 fusion against a loop transcription of the paper, stage-2 removal by hand."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from src.augment.prle import (
    PrimaryRegionRemoval,
    average_fusion,
    decode_map,
    encode_map,
    fuse_maps,
    landmark_region_mask,
    neighbourhood_flags,
    neighbouring_fusion,
    random_rectangle_mask,
    removal_count,
    top_fraction_mask,
)


def smooth_maps(seed: int, count: int = 3, shape: tuple[int, int] = (14, 11)) -> np.ndarray:
    """CAM-like maps: coarse random grids upsampled, plus a little noise, in [0, 1]."""
    rng = np.random.default_rng(seed)
    maps = []
    for _ in range(count):
        coarse = rng.random((3, 3)).astype(np.float32)
        fine = cv2.resize(coarse, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
        maps.append(np.clip(fine + rng.normal(0, 0.03, shape), 0, 1))
    return np.stack(maps).astype(np.float32)


def loop_neighbouring(maps: np.ndarray, tau1: float, lam: float, unflagged: str) -> np.ndarray:
    """Paper Eq. 6-8 written pixel by pixel: the independent reference."""
    count, height, width = maps.shape
    out = np.zeros((height, width))
    for y in range(height):
        for x in range(width):
            window = [
                (yy, xx)
                for yy in range(y - 1, y + 2)
                for xx in range(x - 1, x + 2)
                if 0 <= yy < height and 0 <= xx < width
            ]
            flagged = False
            for j in range(count):
                for k in range(count):
                    total = sum(
                        abs(float(maps[j, yy, xx]) - float(maps[k, y, x])) for yy, xx in window
                    )
                    if total / len(window) > lam:
                        flagged = True
            if flagged:
                out[y, x] = max(float(maps[j, yy, xx]) for j in range(count) for yy, xx in window)
            elif unflagged == "average":
                mean = float(np.mean(maps[:, y, x].astype(np.float64)))
                out[y, x] = mean if mean > tau1 else 0.0
    return out


@pytest.mark.parametrize("unflagged", ["average", "zero"])
@pytest.mark.parametrize(("seed", "count", "lam"), [(0, 3, 0.15), (1, 2, 0.1), (2, 3, 0.25)])
def test_neighbouring_fusion_equals_the_loop_transcription(
    unflagged: str, seed: int, count: int, lam: float
) -> None:
    maps = smooth_maps(seed, count)
    expected = loop_neighbouring(maps, 0.3, lam, unflagged)
    flags = neighbourhood_flags(torch.from_numpy(maps), lam).numpy()
    # Both branches of Eq. 8 are exercised, or the comparison proves little.
    assert flags.any() and not flags.all()
    fused = neighbouring_fusion(torch.from_numpy(maps), tau1=0.3, lam=lam, unflagged=unflagged)
    np.testing.assert_allclose(fused.numpy(), expected, atol=1e-6)


def test_fusion_is_batched_over_leading_dimensions() -> None:
    stack = torch.from_numpy(np.stack([smooth_maps(s) for s in range(4)]))
    batched = fuse_maps(stack)
    single = torch.stack([fuse_maps(stack[i]) for i in range(4)])
    assert batched.shape == (4, 14, 11)
    torch.testing.assert_close(batched, single)


def test_average_fusion_by_hand() -> None:
    maps = torch.tensor([[[0.9, 0.2], [0.3, 0.0]], [[0.5, 0.2], [0.4, 0.6]]])
    # Means 0.7, 0.2, 0.35, 0.3: only values strictly above tau1 = 0.3 survive.
    expected = torch.tensor([[0.7, 0.0], [0.35, 0.0]])
    torch.testing.assert_close(average_fusion(maps, 0.3), expected)
    torch.testing.assert_close(fuse_maps(maps, "average", tau1=0.3), expected)
    with pytest.raises(ValueError, match="unknown PRLE fusion 'max'"):
        fuse_maps(maps, "max")


def test_single_map_fusion_expands_only_at_steep_edges() -> None:
    # One map, a step of 0.8: the pixels next to the step see neighbours differing by
    # 0.8 on 3 of 9 (6 at a border) positions, above lambda = 0.15, and take the max.
    step = np.zeros((1, 5, 6), np.float32)
    step[0, :, 3:] = 0.8
    fused = neighbouring_fusion(torch.from_numpy(step), tau1=0.3, lam=0.15).numpy()
    expected = np.zeros((5, 6), np.float32)
    expected[:, 2:] = 0.8
    np.testing.assert_allclose(fused, expected)


def test_eight_bit_round_trip() -> None:
    values = np.random.default_rng(0).random((33, 17)).astype(np.float32)
    values[0, :3] = (0.0, 1.0, 0.5)
    stored = encode_map(values)
    assert stored.dtype == np.uint8
    assert np.abs(decode_map(stored) - values).max() <= 0.5 / 255 + 1e-7
    assert decode_map(stored)[0, 0] == 0.0 and decode_map(stored)[0, 1] == 1.0
    np.testing.assert_array_equal(encode_map(torch.from_numpy(values)), stored)


def test_removal_count_is_the_top_fraction() -> None:
    assert removal_count(0.3, 10) == 3  # 0.3 * 10 is 3.0000000000000004 in floats
    assert removal_count(0.25, 10) == 3  # rounded up
    assert removal_count(1.0, 10) == 10
    assert removal_count(1e-6, 10) == 1
    assert removal_count(0.5, 0) == 0


def test_top_fraction_mask_on_a_hand_made_map() -> None:
    fused = np.array(
        [
            [0.0, 0.9, 0.8, 0.0],
            [0.7, 0.6, 0.0, 0.5],
            [0.0, 0.4, 0.3, 0.2],
            [0.1, 0.0, 0.0, 0.0],
        ],
        np.float32,
    )  # 10 nonzero pixels, all distinct
    half = top_fraction_mask(fused, 0.5)
    np.testing.assert_array_equal(half, fused >= 0.5)
    assert top_fraction_mask(fused, 0.3).sum() == 3
    np.testing.assert_array_equal(top_fraction_mask(fused, 1.0), fused > 0)


def test_ties_at_the_cut_are_drawn_to_the_exact_count() -> None:
    fused = np.array([[0.9, 0.5, 0.5], [0.5, 0.5, 0.0], [0.2, 0.0, 0.0]], np.float32)
    rng = np.random.default_rng(3)
    picked = set()
    for _ in range(40):
        chosen = top_fraction_mask(fused, 0.5, rng)  # ceil(0.5 * 6) = 3 pixels
        assert chosen.sum() == 3 and chosen[0, 0]
        assert not chosen[2, 0] and not (chosen & (fused == 0)).any()
        picked |= {tuple(p) for p in np.argwhere(chosen & (fused == 0.5))}
    assert len(picked) == 4  # every tied pixel can be chosen: no raster-order bias


def side_for(fused: np.ndarray) -> dict:
    return {"prle_map": encode_map(fused)}


def test_removal_zeroes_exactly_the_top_alpha_pixels() -> None:
    image = np.full((4, 4, 3), 200, np.uint8)
    mask = np.full((4, 4), 255, np.uint8)
    fused = np.arange(16, dtype=np.float32).reshape(4, 4) / 15  # 15 nonzero values
    removal = PrimaryRegionRemoval(p=1.0, alpha_range=(0.19, 0.2))
    out, out_mask = removal(image, mask, np.random.default_rng(0), side_for(fused))
    removed = out[..., 0] == 0
    # alpha in (0.19, 0.2]: ceil(alpha * 15) = 3, the three largest values, at the end of the raster.
    expected = np.zeros(16, bool)
    expected[-3:] = True
    np.testing.assert_array_equal(removed.reshape(-1), expected)
    assert (out[~removed] == 200).all() and (out[removed] == 0).all()
    np.testing.assert_array_equal(out_mask == 0, removed)
    assert (image == 200).all()  # the input is not modified


def test_keep_probability_and_alpha_range() -> None:
    fused = np.random.default_rng(1).random((16, 16)).astype(np.float32)
    image = np.full((16, 16, 3), 100, np.uint8)
    assert PrimaryRegionRemoval(p=0.0)(image, None, np.random.default_rng(0), {})[0] is image
    removal = PrimaryRegionRemoval(p=0.5, alpha_range=(0.5, 1.0))
    rng = np.random.default_rng(0)
    fractions = []
    for _ in range(400):
        out, _ = removal(image, None, rng, side_for(fused))
        fractions.append(np.mean(out[..., 0] == 0))
    fractions = np.array(fractions)
    kept = fractions == 0
    assert 0.42 < kept.mean() < 0.58
    assert fractions[~kept].min() >= 0.5 - 1 / 256 and fractions[~kept].max() <= 1.0


def test_without_the_dynamic_step_every_nonzero_pixel_goes() -> None:
    fused = np.zeros((8, 8), np.float32)
    fused[2:5, 1:7] = np.linspace(0.1, 1.0, 18).reshape(3, 6)
    image = np.full((8, 8, 3), 50, np.uint8)
    out, _ = PrimaryRegionRemoval(p=1.0, dynamic=False)(
        image, None, np.random.default_rng(0), side_for(fused)
    )
    np.testing.assert_array_equal(out[..., 0] == 0, fused > 0)


def test_random_colours_fill_only_the_removed_pixels() -> None:
    fused = np.zeros((32, 32), np.float32)
    fused[8:24, 8:24] = 1.0
    image = np.full((32, 32, 3), 7, np.uint8)
    removal = PrimaryRegionRemoval(p=1.0, fill="random", dynamic=False)
    out, _ = removal(image, None, np.random.default_rng(0), side_for(fused))
    inside = out[8:24, 8:24]
    assert (np.delete(out.reshape(-1, 3), np.flatnonzero(fused.reshape(-1)), 0) == 7).all()
    assert inside.std() > 50 and len(np.unique(inside.reshape(-1, 3), axis=0)) > 200


def test_map_is_resized_to_the_image() -> None:
    fused = np.zeros((64, 64), np.float32)
    fused[:, 32:] = 1.0  # right half of a crop-resolution map
    image = np.full((16, 16, 3), 9, np.uint8)
    out, _ = PrimaryRegionRemoval(p=1.0, dynamic=False)(
        image, None, np.random.default_rng(0), side_for(fused)
    )
    assert (out[:, 8:] == 0).all() and (out[:, :7] == 9).all()


def test_random_and_landmark_masks_have_the_primary_area() -> None:
    rng = np.random.default_rng(0)
    for area in (1, 7, 50, 199, 640, 1024):
        rectangle = random_rectangle_mask((32, 32), area, rng)
        assert rectangle.sum() == area
        rows, cols = np.nonzero(rectangle)
        box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        assert box - area < rows.max() - rows.min() + 1  # a rectangle less part of one column
    landmarks = np.zeros((68, 2), np.float32)
    landmarks[:, 0] = np.linspace(4, 28, 68)
    landmarks[:, 1] = 16 + 6 * np.sin(np.arange(68))
    for area in (5, 60, 900):
        assert landmark_region_mask((32, 32), landmarks, area, rng).sum() == area


def test_landmark_mask_starts_inside_the_chosen_part() -> None:
    landmarks = np.full((68, 2), 2.0, np.float32)
    landmarks[48:68] = [[20, 20], [30, 20], [30, 26], [20, 26]] * 5  # the mouth: a box
    only_mouth = {"mouth": (48, 68)}
    mask = landmark_region_mask((40, 40), landmarks, 30, np.random.default_rng(0), only_mouth)
    rows, cols = np.nonzero(mask)
    assert mask.sum() == 30
    assert rows.min() >= 20 and rows.max() <= 26 and cols.min() >= 20 and cols.max() <= 30


def test_landmark_ablation_scales_crop_landmarks_to_the_image() -> None:
    fused = np.zeros((16, 16), np.float32)
    fused[:4, :4] = 1.0  # 16 pixels of primary region
    landmarks = np.zeros((68, 2), np.float32)
    landmarks[:] = [60, 60]  # every part sits at (60, 60) of a 64 px crop -> (15, 15)
    side = side_for(fused) | {
        "landmarks": landmarks.reshape(-1),
        "crop_x0": 10.0,
        "crop_y0": 20.0,
        "crop_x1": 74.0,
        "crop_y1": 84.0,
    }
    removal = PrimaryRegionRemoval(p=1.0, region="landmark", dynamic=False)
    out, _ = removal(np.full((16, 16, 3), 9, np.uint8), None, np.random.default_rng(0), side)
    removed = out[..., 0] == 0
    assert removed.sum() == 16 and removed[15, 15] and not removed[:4, :4].any()
    random = PrimaryRegionRemoval(p=1.0, region="random", dynamic=False)
    out, _ = random(np.full((16, 16, 3), 9, np.uint8), None, np.random.default_rng(0), side)
    assert (out[..., 0] == 0).sum() == 16


def test_clear_errors() -> None:
    image = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(KeyError, match="no primary-region map.*'prle_map'"):
        PrimaryRegionRemoval(p=1.0)(image, None, np.random.default_rng(0), {})
    with pytest.raises(ValueError, match="alpha_range"):
        PrimaryRegionRemoval(alpha_range=(0.6, 0.5))
    with pytest.raises(ValueError, match="unknown PRLE region 'eyes'"):
        PrimaryRegionRemoval(region="eyes")
    side = {"prle_map": np.full((8, 8), 255, np.uint8), "landmarks": np.zeros(136)}
    with pytest.raises(ValueError, match="crop size"):
        PrimaryRegionRemoval(p=1.0, region="landmark")(image, None, np.random.default_rng(0), side)
