"""The learnable local similarity module and its pair-map target, against literal references."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from src.detectors.layers.llsm import LearnableLocalSimilarity
from src.detectors.losses import dense_bce
from src.detectors.targets import pair_map_target


def loop_over_pairs(module: LearnableLocalSimilarity, features: torch.Tensor) -> torch.Tensor:
    """The paper's Eq. 1 position by position: stack (F_i, F_j) as a 2 x 1 image, convolve."""
    b, c, h, w = features.shape
    conv = module.pair_conv
    rows = []
    for n in range(b):
        for i in range(h * w):
            for j in range(h * w):
                fi = features[n, :, i // w, i % w]
                fj = features[n, :, j // w, j % w]
                pair = torch.stack((fi, fj), dim=1).view(1, c, 2, 1)
                response = F.conv2d(pair, conv.weight, conv.bias)  # (1, K, 1, 1)
                if module.mix is not None:
                    response = F.conv2d(F.relu(response), module.mix.weight, module.mix.bias)
                rows.append(response.view(()))
    return torch.stack(rows).view(b, h * w, h * w)


def values_and_gradients(
    module: LearnableLocalSimilarity, features: torch.Tensor, weights: torch.Tensor, fn
) -> list[torch.Tensor]:
    """The map, then the gradients of sum(map * weights) w.r.t. the input and every parameter."""
    features = features.clone().requires_grad_(True)
    module.zero_grad()
    values = fn(module, features)
    (values * weights).sum().backward()
    return [values.detach(), features.grad, *(p.grad.clone() for p in module.parameters())]


@pytest.mark.parametrize("width", [1, 3])
def test_outer_sum_equals_the_pairwise_convolution_values_and_gradients(width: int) -> None:
    torch.manual_seed(0)
    module = LearnableLocalSimilarity(in_channels=7, width=width)
    features = torch.randn(2, 7, 2, 3)  # not square: row-major i * W + j is checked
    weights = torch.randn(2, 6, 6)
    reference = values_and_gradients(module, features, weights, loop_over_pairs)
    fast = values_and_gradients(module, features, weights, LearnableLocalSimilarity.forward)
    pairwise = values_and_gradients(
        module, features, weights, LearnableLocalSimilarity.forward_pairwise
    )
    assert fast[0].shape == (2, 6, 6)
    assert len(reference) == 2 + len(list(module.parameters()))
    for a, b, c in zip(fast, reference, pairwise, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(c, b, atol=1e-5, rtol=1e-5)


def test_outer_sum_matches_pairwise_at_a_realistic_width() -> None:
    torch.manual_seed(2)
    module = LearnableLocalSimilarity(in_channels=728)
    features = torch.randn(2, 728, 5, 5)
    torch.testing.assert_close(
        module(features), module.forward_pairwise(features), atol=1e-5, rtol=1e-5
    )


def test_orientation_first_kernel_row_meets_the_row_position() -> None:
    module = LearnableLocalSimilarity(in_channels=1)
    with torch.no_grad():
        module.pair_conv.weight.copy_(torch.tensor([1.0, 10.0]).view(1, 1, 2, 1))
        module.pair_conv.bias.fill_(0.5)
    features = torch.tensor([1.0, 2.0]).view(1, 1, 1, 2)
    # M[i, j] = 1 * F_i + 10 * F_j + 0.5
    expected = torch.tensor([[[11.5, 21.5], [12.5, 22.5]]])
    torch.testing.assert_close(module(features), expected)


def test_width_must_be_positive() -> None:
    with pytest.raises(ValueError, match="width"):
        LearnableLocalSimilarity(8, width=0)


def exactly_one(positions: set[int], n: int) -> torch.Tensor:
    return torch.tensor(
        [[float((i in positions) != (j in positions)) for j in range(n)] for i in range(n)]
    )


def test_pair_map_on_a_hand_made_4x4_mask() -> None:
    mask = torch.tensor(
        [
            [0, 0, 0, 0],
            [0, 1, 1, 0],
            [0, 0, 0, 0],
            [0, 0, 0, 1],
        ],
        dtype=torch.float32,
    ).view(1, 1, 4, 4)
    target = pair_map_target(mask, torch.tensor([1.0]), (4, 4))
    # Manipulated positions, row-major: (1, 1) -> 5, (1, 2) -> 6, (3, 3) -> 15.
    expected = exactly_one({5, 6, 15}, 16)
    assert target.shape == (1, 16, 16)
    torch.testing.assert_close(target[0], expected)
    assert target[0, 5, 0] == 1 and target[0, 5, 6] == 0 and target[0, 0, 1] == 0
    assert torch.equal(target[0], target[0].T)  # |m_i - m_j| is symmetric


def test_pair_map_downsamples_by_area_then_binarises_the_difference() -> None:
    mask = torch.zeros(1, 1, 4, 8)
    mask[0, 0, :2, :4] = 1.0  # cell (0, 0): 1.0
    mask[0, 0, :2, 4:7] = 1.0  # cell (0, 1): 0.75
    mask[0, 0, 2:, 0] = 1.0  # cell (1, 0): 0.25 ; cell (1, 1): 0
    target = pair_map_target(mask, torch.tensor([1.0]), (2, 2))
    # |differences|: (0,1) .25, (0,2) .75, (0,3) 1, (1,2) .5, (1,3) .75, (2,3) .25; > 0.5 -> 1
    expected = torch.tensor(
        [
            [0.0, 0.0, 1.0, 1.0],
            [0.0, 0.0, 0.0, 1.0],
            [1.0, 0.0, 0.0, 0.0],
            [1.0, 1.0, 0.0, 0.0],
        ]
    )
    torch.testing.assert_close(target[0], expected)
    looser = pair_map_target(mask, torch.tensor([1.0]), (2, 2), threshold=0.2)
    assert looser[0, 1, 2] == 1 and looser[0, 0, 1] == 1


def test_pair_map_is_zero_for_reals() -> None:
    mask = torch.zeros(2, 1, 8, 8)
    mask[:, :, :4] = 1.0
    target = pair_map_target(mask, torch.tensor([0.0, 1.0]), (4, 4))
    assert target[0].sum() == 0
    assert target[1].sum() == 2 * 8 * 8  # 8 manipulated x 8 pristine cells, both orders


def test_dense_bce_averages_over_the_selected_maps_only() -> None:
    logits = torch.tensor([[[0.0, 2.0]], [[-1.0, 3.0]], [[5.0, 5.0]]], requires_grad=True)
    target = torch.tensor([[[0.0, 1.0]], [[1.0, 0.0]], [[0.0, 0.0]]])
    selected = torch.tensor([True, True, False])

    def bce(x: float, y: float) -> float:
        p = 1 / (1 + torch.exp(torch.tensor(-x)))
        return float(-(y * torch.log(p) + (1 - y) * torch.log(1 - p)))

    expected = (bce(0, 0) + bce(2, 1) + bce(-1, 1) + bce(3, 0)) / 4
    assert dense_bce(logits, target, selected).item() == pytest.approx(expected, rel=1e-6)
    none = dense_bce(logits, target, torch.zeros(3, dtype=torch.bool))
    none.backward()
    assert none.item() == 0 and logits.grad is not None and torch.all(logits.grad == 0)
