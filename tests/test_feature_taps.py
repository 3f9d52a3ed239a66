"""Feature taps of any timm backbone from timm's feature_info: HRNet, ConvNeXt, a ViT; refusals."""

from __future__ import annotations

import pytest
import timm
import torch

from src.detectors.backbones import NoFeatureTaps, SinglePassBackbone, staged_backbone

# (timm name, extra timm arguments, input side, module names, channels, reductions): the
# values timm 1.0 documents for these models, written out so a change in timm shows here too.
CASES = [
    (
        "hrnet_w18_small",
        {},
        64,
        ["stem", "stage1", "stage2", "stage3", "stage4"],
        [64, 128, 256, 512, 1024],
        [2, 4, 8, 16, 32],
    ),
    (
        "convnext_atto",
        {},
        64,
        ["stages.0", "stages.1", "stages.2", "stages.3"],
        [40, 80, 160, 320],
        [4, 8, 16, 32],
    ),
    (
        "vit_tiny_patch16_224",
        {"img_size": 32, "out_indices": tuple(range(12))},
        32,
        [f"blocks.{i}" for i in range(12)],
        [192] * 12,
        [16] * 12,
    ),
]


@pytest.mark.parametrize(("name", "extra", "side", "modules", "channels", "reductions"), CASES)
def test_taps_follow_timms_feature_info(name, extra, side, modules, channels, reductions) -> None:
    torch.manual_seed(0)
    backbone = staged_backbone(name, num_classes=0, **extra).eval()
    reference = timm.create_model(name, features_only=True, num_classes=0, **extra).feature_info
    assert backbone.names == reference.module_name() == modules
    assert [backbone.channels(tap) for tap in modules] == reference.channels() == channels
    assert [backbone.reduction(tap) for tap in modules] == reference.reduction() == reductions
    with torch.no_grad():
        features = backbone.features(torch.randn(2, 3, side, side), modules)
    for tap, width, reduction in zip(modules, channels, reductions, strict=True):
        assert features[tap].shape == (2, width, side // reduction, side // reduction), tap
    # C<k> names the last stage at reduction 2**k.
    assert backbone.aliases[f"C{reductions[-1].bit_length() - 1}"] == modules[-1]


def test_convnext_stages_resume_and_equal_one_pass() -> None:
    torch.manual_seed(0)
    backbone = staged_backbone("convnext_atto", num_classes=0).eval()
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        middle = backbone.run(images, until="C3")
        resumed = backbone.run(middle, after="C3")
        whole = backbone.model(images)[-1]
        c4 = backbone.features(images, ["C4"])["C4"]
        tapped = backbone.run(middle, after="C3", until="C4")
    assert middle.shape == (1, 80, 8, 8)
    torch.testing.assert_close(resumed, whole)
    torch.testing.assert_close(tapped, c4)


def test_single_pass_backbones_tap_but_refuse_to_resume() -> None:
    backbone = staged_backbone("hrnet_w18_small", num_classes=0).eval()
    assert isinstance(backbone, SinglePassBackbone)
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert backbone.run(images, until="C3").shape == (1, 256, 8, 8)
        assert backbone(images).shape == (1, 1024, 2, 2)
    with pytest.raises(ValueError, match="'hrnet_w18_small' computes its taps in one pass"):
        backbone.run(images, after="stage2")
    with pytest.raises(KeyError, match="no stage 'block4'.*stage1"):
        backbone.features(images, ["block4"])


def test_a_backbone_timm_cannot_tap_fails_with_one_line_naming_it() -> None:
    # timm's Inception v3 with its auxiliary classifier has no features_only network.
    with pytest.raises(NoFeatureTaps, match="backbone 'inception_v3'") as caught:
        staged_backbone("inception_v3", aux_logits=True)
    assert "\n" not in str(caught.value)
