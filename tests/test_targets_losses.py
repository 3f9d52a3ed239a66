"""LAA-Net's dense targets and losses against naive references and hand-computed cases."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from src.detectors.losses import consistency_loss, focal_loss
from src.detectors.targets import (
    authors_boundary,
    authors_laa_targets,
    blending_boundary,
    consistency_target,
    gaussian_radius,
    laa_targets,
    run_lengths,
    vulnerable_points,
)


def cornernet_radius(h: float, w: float, o: float = 0.7) -> float:
    r1 = ((h + w) + math.sqrt((h + w) ** 2 - 4 * w * h * (1 - o) / (1 + o))) / 2
    r2 = (2 * (h + w) + math.sqrt((2 * (h + w)) ** 2 - 16 * (1 - o) * w * h)) / 2
    r3 = (-2 * o * (h + w) + math.sqrt((2 * o * (h + w)) ** 2 - 16 * o * (o - 1) * w * h)) / 2
    return min(r1, r2, r3)


def soft_disc_mask(batch: int = 2, size: int = 64) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    distance = ((yy - 30.0) ** 2 + (xx - 34.0) ** 2).sqrt()
    mask = (1 - ((distance - 14) / 6).clamp(0, 1)).float()  # 1 inside, a 6-px ramp
    return mask.expand(batch, 1, size, size).clone()


def test_run_lengths_match_a_loop() -> None:
    rng = np.random.default_rng(0)
    inside = torch.from_numpy(rng.random((3, 9, 11)) > 0.4)
    horizontal, vertical = run_lengths(inside)
    for b in range(3):
        for y in range(9):
            for x in range(11):
                if not inside[b, y, x]:
                    assert horizontal[b, y, x] == 0 and vertical[b, y, x] == 0
                    continue
                left = x
                while left > 0 and inside[b, y, left - 1]:
                    left -= 1
                right = x
                while right < 10 and inside[b, y, right + 1]:
                    right += 1
                top = y
                while top > 0 and inside[b, top - 1, x]:
                    top -= 1
                bottom = y
                while bottom < 8 and inside[b, bottom + 1, x]:
                    bottom += 1
                assert horizontal[b, y, x] == right - left + 1
                assert vertical[b, y, x] == bottom - top + 1


@pytest.mark.parametrize(("h", "w"), [(3, 5), (10, 10), (1, 40), (25, 7)])
def test_gaussian_radius_is_cornernets(h: int, w: int) -> None:
    value = gaussian_radius(torch.tensor([float(h)]), torch.tensor([float(w)]))
    assert value.item() == pytest.approx(cornernet_radius(h, w), rel=1e-5)


def test_heatmap_peaks_at_the_vulnerable_points_and_is_zero_for_reals() -> None:
    mask = soft_disc_mask()
    targets = laa_targets(mask, torch.tensor([1.0, 0.0]), (32, 32))
    heatmap, points, boundary = targets["heatmap"], targets["points"], targets["boundary"]
    assert points[0].sum() == 1 and points[1].sum() == 0
    assert heatmap[0][points[0]].item() == 1.0
    assert heatmap[0].max() == 1.0 and (heatmap[0] == 1.0).sum() == 1
    assert boundary[0].flatten().argmax() == points[0].flatten().nonzero().item()
    assert heatmap[1].abs().sum() == 0 and targets["consistency"][1].abs().sum() == 0
    # Away from the peak the Gaussian falls off and is cut at the radius.
    y, x = points[0].nonzero()[0].tolist()
    assert 0 < heatmap[0, y, x + 1] < 1
    assert heatmap[0, (y + 16) % 32, (x + 16) % 32] == 0


def test_quadrant_points_keep_ties() -> None:
    boundary = torch.zeros(1, 8, 8)
    boundary[0, 1, 1] = boundary[0, 2, 2] = 0.9  # a tie in the top-left quadrant
    boundary[0, 6, 6] = 0.5
    points = vulnerable_points(boundary, per_quadrant=True)
    assert points[0].nonzero().tolist() == [[1, 1], [2, 2], [6, 6]]


def test_consistency_target_is_one_minus_the_boundary_difference() -> None:
    mask = soft_disc_mask(batch=1)
    boundary = blending_boundary(mask, (32, 32))
    points = vulnerable_points(boundary)
    target = consistency_target(boundary, points)
    y, x = points[0].nonzero()[0].tolist()
    expected = 1 - (boundary[0, y, x] - boundary[0]).abs()
    assert torch.allclose(target[0], expected)
    assert target[0, y, x] == 1.0


def test_focal_loss_hand_computed() -> None:
    logits = torch.tensor([[[0.0, 2.0], [-1.0, 0.5]]])
    target = torch.tensor([[[1.0, 0.5], [0.0, 1.0]]])
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    pos = (
        math.log(p[0, 0, 0]) * (1 - p[0, 0, 0]) ** 2 + math.log(p[0, 1, 1]) * (1 - p[0, 1, 1]) ** 2
    )
    neg = (
        math.log(1 - p[0, 0, 1]) * p[0, 0, 1] ** 2 * 0.5**4
        + math.log(1 - p[0, 1, 0]) * p[0, 1, 0] ** 2
    )
    assert focal_loss(logits, target).item() == pytest.approx(float(-(pos + neg) / 2), rel=1e-6)
    # No positives: the negative term alone, not divided.
    zero = torch.zeros_like(target)
    expected = -(torch.log(1 - p) * p**2).sum()
    assert focal_loss(logits, zero).item() == pytest.approx(expected.item(), rel=1e-6)


def test_consistency_loss_hand_computed() -> None:
    embedding = torch.tensor([[[[1.0, 0.0]], [[0.0, 2.0]]]])  # D=2, h=1, w=2: e_0=(1,0), e_1=(0,2)
    target = torch.tensor([[[0.2, 1.0]]])  # anchor = pixel 1
    logits = torch.tensor([0.0, 4.0]) / math.sqrt(2)  # <e1,e0>=0, <e1,e1>=4
    expected = torch.nn.functional.binary_cross_entropy_with_logits(
        logits, torch.tensor([0.2, 1.0])
    )
    assert consistency_loss(embedding, target).item() == pytest.approx(expected.item(), rel=1e-6)


# ------------------------------------------------------ the authors' target code
def _reference_authors_targets(small: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """A loop transcription of LAA-Net's target code on a uint8 boundary map (h, w).

    Per quadrant, every pixel equal to the quadrant's maximum is a point; its
    run of pixels > 128 is counted from the point in each direction (the point
    twice), sigma = CornerNet radius / 3 + 1e-4, and the Gaussian patch of
    6 sigma + 1 samples starts at int(x - 3 sigma); maps combine by maximum.
    """
    h, w = small.shape
    heatmap = np.zeros((h, w), np.float32)
    consistency = np.zeros((h, w), np.float32)
    n_points = 0
    for y0, x0 in ((0, 0), (0, w // 2), (h // 2, 0), (h // 2, w // 2)):
        y1, x1 = (y0 + h // 2 if y0 == 0 else h), (x0 + w // 2 if x0 == 0 else w)
        patch = small[y0:y1, x0:x1]
        peak = patch.max() if patch.max() > 0 else 1
        ys, xs = np.nonzero(patch == peak)
        if len(ys) == 0:
            continue
        for j, i in zip(ys + y0, xs + x0, strict=True):
            n_points += 1
            vertical = horizontal = 0
            for step in (-1, 1):
                k = 0
                while 0 <= j + k < h and small[j + k, i] > 128:
                    vertical, k = vertical + 1, k + step
                k = 0
                while 0 <= i + k < w and small[j, i + k] > 128:
                    horizontal, k = horizontal + 1, k + step
            a, b = float(horizontal), float(vertical)
            o = 0.7
            r1 = (a + b + math.sqrt((a + b) ** 2 - 4 * a * b * (1 - o) / (1 + o))) / 2
            r2 = (2 * (a + b) + math.sqrt(4 * (a + b) ** 2 - 16 * (1 - o) * a * b)) / 2
            r3 = (
                -2 * o * (a + b) + math.sqrt(4 * o**2 * (a + b) ** 2 + 16 * o * (1 - o) * a * b)
            ) / 2
            sigma = min(r1, r2, r3) / 3 + 1e-4
            size = 6 * sigma + 1
            grid = np.arange(0, size, 1, np.float32)
            centre = size // 2
            g = np.exp(
                -((grid[None] - centre) ** 2 + (grid[:, None] - centre) ** 2) / (2 * sigma**2)
            )
            left, top = int(i - 3 * sigma), int(j - 3 * sigma)
            right, bottom = int(i + 3 * sigma + 1), int(j + 3 * sigma + 1)
            gx0, gx1 = max(0, -left), min(right, w) - left
            gy0, gy1 = max(0, -top), min(bottom, h) - top
            patch_g = g[gy0:gy1, gx0:gx1]
            ty, tx = max(0, top), max(0, left)
            region = heatmap[ty : ty + patch_g.shape[0], tx : tx + patch_g.shape[1]]
            np.maximum(region, patch_g, out=region)
        consistency[y0:y1, x0:x1] = 1 - np.abs(float(small.max()) - patch) / 255
    return heatmap, consistency, n_points


def _sbi_like_masks(n: int, size: int = 128, seed: int = 0) -> torch.Tensor:
    """Soft ellipses with jittered centres and blur, quantised to uint8 as the batch carries them."""
    rng = np.random.default_rng(seed)
    masks = []
    for _ in range(n):
        mask = np.zeros((size, size), np.float32)
        centre = (int(size / 2 + rng.integers(-8, 9)), int(size / 2 + rng.integers(-8, 9)))
        axes = (int(rng.integers(size // 5, size // 3)), int(rng.integers(size // 4, size // 3)))
        cv2.ellipse(mask, centre, axes, float(rng.uniform(0, 30)), 0, 360, 1.0, -1)
        mask = cv2.GaussianBlur(mask, (0, 0), float(rng.uniform(2, 6)))
        masks.append(np.round(mask / mask.max() * 255) / 255)
    return torch.from_numpy(np.stack(masks))[:, None].float()


def test_authors_targets_equal_a_loop_transcription_of_their_code() -> None:
    masks = _sbi_like_masks(6)
    label = torch.ones(6)
    targets = authors_laa_targets(masks, label, (32, 32))
    small = (targets["boundary"] * 255).round().numpy().astype(np.uint8)
    counts = []
    for k in range(6):
        heatmap, consistency, n_points = _reference_authors_targets(small[k])
        assert int(targets["points"][k].sum()) == n_points
        assert np.allclose(targets["heatmap"][k].numpy(), heatmap, atol=1e-5)
        assert np.allclose(targets["consistency"][k].numpy(), consistency, atol=1e-6)
        counts.append(n_points)
    assert max(counts) > 1  # ties on the uint8 map give several points per quadrant


@pytest.mark.parametrize("seed", [0, 1])
def test_authors_boundary_matches_their_uint8_affine_warp(seed: int) -> None:
    """Their pipeline: uint8(4M(1-M) * 255), cv2.warpAffine centre/scale to the heatmap size."""
    masks = _sbi_like_masks(4, size=128, seed=seed)
    ours = authors_boundary(masks, (32, 32)).numpy()
    for k in range(4):
        m = masks[k, 0].double().numpy()
        full = (4 * m * (1 - m) * 255).astype(np.uint8)
        scale = (128 - 1) / (32 - 1)
        src = np.float32([[63.5, 63.5], [63.5, 63.5 - 63.5], [63.5 - 63.5, 63.5]])
        dst = np.float32([[15.5, 15.5], [15.5, 15.5 - 63.5 / scale], [15.5 - 63.5 / scale, 15.5]])
        warped = cv2.warpAffine(
            full, cv2.getAffineTransform(src, dst), (32, 32), flags=cv2.INTER_LINEAR
        )
        assert np.array_equal(ours[k], warped.astype(np.float32))


def test_authors_mode_draws_several_points_for_a_soft_sbi_mask() -> None:
    """Reals get nothing; a fake gets a set of points whose heatmaps are each exactly 1 at the peak."""
    masks = _sbi_like_masks(4, size=192)
    label = torch.tensor([0.0, 1.0, 1.0, 1.0])
    targets = authors_laa_targets(masks, label, (48, 48))
    assert targets["points"][0].sum() == 0 and targets["heatmap"][0].sum() == 0
    for k in (1, 2, 3):
        assert targets["points"][k].sum() >= 4
        assert targets["heatmap"][k].max() == pytest.approx(1.0)
