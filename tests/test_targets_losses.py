"""LAA-Net's dense targets and losses against naive references and hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from src.detectors.losses import consistency_loss, focal_loss
from src.detectors.targets import (
    blending_boundary,
    consistency_target,
    gaussian_radius,
    heatmap_target,
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
    heatmap = heatmap_target(boundary, points)
    assert all(heatmap[0, y, x] == 1 for y, x in [(1, 1), (2, 2), (6, 6)])


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
