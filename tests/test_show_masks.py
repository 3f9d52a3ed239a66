"""The mask overlay picture: layout and pixel values by hand."""

from __future__ import annotations

import numpy as np
import pytest

from src.tools.show_masks import COLUMNS, mask_overlay_grid


def test_grid_layout_and_overlay_values() -> None:
    images = np.full((2, 8, 8, 3), 100, dtype=np.uint8)
    true = np.zeros((2, 8, 8), dtype=np.float32)
    true[:, :4] = 1.0  # top half manipulated
    predicted = np.zeros((2, 4, 4), dtype=np.float32)  # half resolution: resized to 8 x 8
    predicted[1] = 1.0
    grid = mask_overlay_grid(images, true, predicted, alpha=0.5, titles=False)
    assert grid.shape == (2 * 8, len(COLUMNS) * 8, 3)
    tile = lambda row, column: grid[8 * row : 8 * row + 8, 8 * column : 8 * column + 8]  # noqa: E731
    assert np.all(tile(0, 0) == 100)
    # True mask in green at opacity 0.5 where it is 1, the face untouched where it is 0.
    assert tile(0, 1)[0, 0].tolist() == [50, 178, 50]  # 100 * 0.5 + (0, 255, 0) * 0.5, rounded
    assert tile(0, 1)[7, 7].tolist() == [100, 100, 100]
    # Predicted mask: sample 0 predicts nothing, sample 1 everything (red).
    assert np.all(tile(0, 2) == 100)
    assert tile(1, 2)[3, 3].tolist() == [178, 50, 50]
    assert np.all(tile(0, 3) == 0) and np.all(tile(1, 3) == 255)


def test_titles_only_on_the_first_row_and_bad_inputs_named() -> None:
    images = np.full((2, 64, 64, 3), 100, dtype=np.uint8)
    masks = np.zeros((2, 64, 64))
    titled = mask_overlay_grid(images, masks, masks)
    plain = mask_overlay_grid(images, masks, masks, titles=False)
    assert not np.array_equal(titled[:64], plain[:64])
    assert np.array_equal(titled[64:], plain[64:])
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\) uint8"):
        mask_overlay_grid(images.astype(np.float32), masks, masks)
    with pytest.raises(ValueError, match="2 images but 1 true"):
        mask_overlay_grid(images, masks[:1], masks)
