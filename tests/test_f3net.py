"""F3-Net's FAD branch: DCT against scipy, band masks by hand, the widened conv, training."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft
import timm
import torch
from conftest import TINY_SIZE

from src.detectors import F3Net, build_detector
from src.detectors.f3net import widen_input_conv
from src.detectors.layers.fad import (
    BandFilter,
    FrequencyAwareDecomposition,
    band_mask,
    dct_matrix,
    f3net_bands,
)


def test_dct_matches_scipy_and_inverts() -> None:
    images = torch.randn(2, 3, 10, 10, dtype=torch.float32)
    fad = FrequencyAwareDecomposition(10)
    spectrum = fad.spectrum(images)
    reference = scipy.fft.dctn(images.numpy(), type=2, norm="ortho", axes=(-2, -1))
    np.testing.assert_allclose(spectrum.numpy(), reference, atol=1e-5)
    torch.testing.assert_close(fad.inverse(spectrum), images, atol=1e-5, rtol=0)
    identity = dct_matrix(10) @ dct_matrix(10).T
    torch.testing.assert_close(identity, torch.eye(10), atol=1e-6, rtol=0)


def test_band_masks_on_a_small_grid() -> None:
    # s = 6: floor(6 / 2.82) = 2, 6 // 2 = 3; both ends of a band included.
    assert f3net_bands(6) == {"low": (0, 2), "mid": (2, 3), "high": (3, 12), "all": (0, 12)}
    low = [
        [1, 1, 1, 0, 0, 0],
        [1, 1, 0, 0, 0, 0],
        [1, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0],
    ]
    mid = [
        [0, 0, 1, 1, 0, 0],
        [0, 1, 1, 0, 0, 0],
        [1, 1, 0, 0, 0, 0],
        [1, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0],
    ]
    high = [
        [0, 0, 0, 1, 1, 1],
        [0, 0, 1, 1, 1, 1],
        [0, 1, 1, 1, 1, 1],
        [1, 1, 1, 1, 1, 1],
        [1, 1, 1, 1, 1, 1],
        [1, 1, 1, 1, 1, 1],
    ]
    masks = {name: band_mask(6, *band) for name, band in f3net_bands(6).items()}
    np.testing.assert_array_equal(masks["low"].numpy(), low)
    np.testing.assert_array_equal(masks["mid"].numpy(), mid)
    np.testing.assert_array_equal(masks["high"].numpy(), high)
    np.testing.assert_array_equal(masks["all"].numpy(), np.ones((6, 6)))
    # At 299 px the cuts are the authors' 106 and 149.
    assert f3net_bands(299)["low"] == (0, 106) and f3net_bands(299)["high"] == (149, 598)


def test_fixed_bands_filter_the_spectrum() -> None:
    images = torch.randn(1, 3, 6, 6)
    fad = FrequencyAwareDecomposition(6, learnable=False)
    out = fad(images)
    assert out.shape == (1, 12, 6, 6)
    spectrum = scipy.fft.dctn(images.numpy(), norm="ortho", axes=(-2, -1))
    for slot, name in enumerate(("low", "mid", "high", "all")):
        mask = band_mask(6, *f3net_bands(6)[name]).numpy()
        expected = scipy.fft.idctn(spectrum * mask, norm="ortho", axes=(-2, -1))
        np.testing.assert_allclose(out[:, 3 * slot : 3 * slot + 3].numpy(), expected, atol=1e-5)
    torch.testing.assert_close(out[:, 9:], images, atol=1e-5, rtol=0)  # "all" is the identity


def test_learnable_part_is_a_symmetric_offset() -> None:
    torch.manual_seed(0)
    band = BandFilter(64, 0, 10)
    offset = band.response() - band.base
    expected = 2 * torch.sigmoid(band.weight) - 1
    torch.testing.assert_close(offset, expected)
    assert 0.08 < band.weight.std().item() < 0.12
    assert offset.abs().max() < 0.25  # starts near the fixed mask


def test_widened_conv_responds_like_the_original_on_tiled_input() -> None:
    conv = torch.nn.Conv2d(3, 8, 3, stride=2, bias=True)
    wide = widen_input_conv(conv, 12)
    x = torch.randn(2, 3, 9, 9)
    torch.testing.assert_close(wide(x.repeat(1, 4, 1, 1)), conv(x))
    torch.testing.assert_close(wide.weight[:, 3:6], conv.weight / 4)
    with pytest.raises(ValueError, match="not a multiple"):
        widen_input_conv(conv, 10)


def test_pretrained_weights_are_loaded_then_split_over_the_bands(tmp_path) -> None:
    torch.manual_seed(0)
    reference = timm.create_model("legacy_xception", pretrained=False)
    path = tmp_path / "xception.pth"
    torch.save(reference.state_dict(), path)
    model = F3Net(pretrained=str(path), input_size=TINY_SIZE)
    expected = reference.conv1.weight.repeat(1, 4, 1, 1) / 4
    torch.testing.assert_close(model.backbone.model.conv1.weight, expected)
    torch.testing.assert_close(
        model.backbone.model.conv4.pointwise.weight, reference.conv4.pointwise.weight
    )


def test_parameter_count() -> None:
    model = build_detector("f3net", pretrained=False)  # 299 px, the paper's size
    trainable = sum(p.numel() for p in model.parameters())
    xception = timm.create_model("legacy_xception", pretrained=False, num_classes=0)
    expected = (
        sum(p.numel() for p in xception.parameters())
        + 32 * 9 * 3 * 3  # the first conv's nine extra input channels
        + 4 * 299 * 299  # learnable band offsets
        + 2048
        + 1  # the linear head
    )
    assert trainable == expected
    # The authors also count the fixed band masks and D, D^T (frozen parameters there).
    authors = trainable + 4 * 299 * 299 + 2 * 299 * 299
    assert abs(authors - 21.7e6) < 0.05e6
    assert [m for m in model.cam_target_layers()] == [model.backbone.model.conv4]


def test_one_step_lowers_the_loss() -> None:
    # 32 px keeps this fast; the generic detector test runs f3net at the demo's 64 px.
    torch.manual_seed(0)
    model = F3Net(input_size=32, drop_rate=0.0)
    batch = {
        "image": torch.randn(4, 3, 32, 32),
        "label": torch.tensor([0.0, 1.0, 0.0, 1.0]),
    }
    optimizer = model.configure_optimizers()
    model.train()
    before_fad = model.fad.bands["low"].weight.detach().clone()
    before_conv = model.backbone.model.conv1.weight.detach().clone()
    loss = model.loss(model(batch["image"]), batch)
    assert set(loss) == {"loss", "bce"}
    optimizer.zero_grad()
    loss["loss"].backward()
    optimizer.step()
    with torch.no_grad():
        after = model.loss(model(batch["image"]), batch)["loss"]
    assert after < loss["loss"].detach()
    assert not torch.equal(model.fad.bands["low"].weight, before_fad)
    assert not torch.equal(model.backbone.model.conv1.weight, before_conv)


def test_input_size_errors() -> None:
    with pytest.raises(ValueError, match="square input_size"):
        F3Net(input_size=(64, 48))
    model = F3Net(input_size=TINY_SIZE)
    with pytest.raises(ValueError, match="built for 64 x 64"):
        model(torch.randn(1, 3, 32, 32))
