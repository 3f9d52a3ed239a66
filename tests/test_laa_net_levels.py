"""LAA-Net's ``levels`` option and the E-FPN's per-level flags: bad values are refused by name."""

from __future__ import annotations

import re

import pytest
import torch

from src.detectors import LAANet
from src.detectors.layers.efpn import EFPN

DEMO = {"backbone": "efficientnet_b0", "input_size": 64, "sam_rho": None}


def levels_error(levels: list[int]) -> str:
    return re.escape(
        "levels must run down from 6 to 2 at the lowest, without gaps (e.g. [6, 5, 4, 3]), "
        f"got {levels}"
    )


@pytest.mark.parametrize(
    "levels",
    [
        pytest.param([], id="empty"),
        pytest.param([6, 4, 3], id="gap"),
        pytest.param([5, 4, 3], id="not-from-6"),
        pytest.param([6, 5, 4, 3, 2, 1], id="below-2"),
        pytest.param([7, 6, 5], id="above-6"),
        pytest.param([6, 5, 5], id="repeated"),
    ],
)
def test_levels_outside_a_run_from_six_to_two_are_refused_by_name(levels: list[int]) -> None:
    """Each case takes one clause of the check; without it each goes through or fails elsewhere.

    Without the check, ``[6, 4, 3]``, ``[5, 4, 3]``, ``[6, 5, 4, 3, 2, 1]`` and
    ``[6, 5, 5]`` all build a model that runs forward without complaint (its
    decoder resized to input / 4), none of them the paper's; ``[]`` fails inside
    the E-FPN with a message that does not name the option, and ``[7, 6, 5]`` in
    the backbone.
    """
    with pytest.raises(ValueError, match=f"^{levels_error(levels)}$"):
        LAANet(**DEMO, levels=levels)


@pytest.mark.parametrize("levels", [(6,), (6, 5, 4, 3, 2)])
def test_the_shortest_and_the_longest_runs_are_accepted(levels: tuple[int, ...]) -> None:
    model = LAANet(**DEMO, levels=list(levels)).eval()
    assert model.levels == levels
    # One decoder stage per fed level after the first, then the final one.
    assert model.decoder.levels == len(levels) - 1
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 64))
    assert out.heatmap.shape == (1, 1, 16, 16)


def test_efpn_wants_one_upsampling_flag_per_level_after_the_first() -> None:
    with pytest.raises(ValueError, match="^upsample needs one flag per feature after the first$"):
        EFPN([8, 4, 2], [False])
    with pytest.raises(ValueError, match="^upsample needs one flag per feature after the first$"):
        EFPN([8, 4], [False, True])
    assert EFPN([8, 4, 2], [False, True]).levels == 2
