"""F3-Net's frequency branch (FAD + Xception), one of the backbones PRLE augments.

Qian et al., "Thinking in Frequency" (ECCV 2020). The image is split into four
frequency bands (:class:`~src.detectors.layers.fad.FrequencyAwareDecomposition`,
12 channels) and classified by an Xception whose first convolution takes those
12 channels; ReLU -> global average pooling -> dropout 0.2 -> one logit.

The 12-channel first convolution starts from the 3-channel one (ImageNet weights
when ``pretrained``): its kernel divided by 4 is copied into each of the four
band slots, so on an image whose bands sum back to it the layer starts out
responding as the 3-channel one would, as the authors initialise it. This is
done here explicitly, after loading, whatever timm would do with ``in_chans``.

Not built: the full F3-Net's second branch (LFS, local frequency statistics)
and the MixBlock that fuses the two branches; the model here is the FAD branch
alone.

The paper trains at 299 px (Xception's size, mean = std = 0.5); PRLE at 256 px
(``input_size: 256`` in its config). The DCT is built for the input size, so
the detector is tied to it: a different size needs a new detector.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from src.contracts import InputContract
from src.detectors.backbones import Pretrained, staged_backbone
from src.detectors.base import Detector, DetectorOutput
from src.detectors.layers import BinaryHead
from src.detectors.layers.fad import FrequencyAwareDecomposition
from src.detectors.registry import register_detector
from src.errors import DFBenchError

#: FAD's output: 3 colour channels in each of 4 bands.
FAD_CHANNELS = 12


def widen_input_conv(conv: nn.Conv2d, in_channels: int) -> nn.Conv2d:
    """A copy of ``conv`` taking ``in_channels`` (a multiple of its own): the kernel tiled and
    divided by the tiling factor, so an input of identical groups gives the same output."""
    if in_channels % conv.in_channels:
        raise DFBenchError(
            f"cannot widen a {conv.in_channels}-channel conv to {in_channels} channels "
            "(not a multiple)"
        )
    repeats = in_channels // conv.in_channels
    wide = nn.Conv2d(
        in_channels,
        conv.out_channels,
        conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        groups=conv.groups,
        bias=conv.bias is not None,
        padding_mode=conv.padding_mode,
    )
    with torch.no_grad():
        wide.weight.copy_(conv.weight.repeat(1, repeats, 1, 1) / repeats)
        if conv.bias is not None:
            wide.bias.copy_(conv.bias)
    return wide


@register_detector("f3net")
class F3Net(Detector):
    """FAD (12 frequency-band channels) -> Xception -> ReLU -> GAP -> dropout -> one logit.

    Args:
        pretrained: Xception weights (False, True, or a local file; see
            :mod:`src.detectors.backbones`), loaded before the first conv is widened.
        drop_rate: dropout before the linear layer (F3-Net: 0.2).
        learnable_bands: the FAD filters' learnable offsets (F3-Net: on).
        label_smoothing: smoothing of the BCE targets (0 = none).
        **kwargs: :class:`~src.detectors.base.Detector` arguments (``input_size`` ...).
    """

    default_contract = InputContract(input_size=(299, 299), mean=(0.5,) * 3, std=(0.5,) * 3)
    # The authors read F3-Net's Grad-CAM from its Xception's last convolution.
    cam_layers = ("backbone.model.conv4",)

    def __init__(
        self,
        pretrained: Pretrained = False,
        drop_rate: float = 0.2,
        learnable_bands: bool = True,
        label_smoothing: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        height, width = self.input_contract.input_size
        if height != width:
            raise DFBenchError(
                f"F3-Net's full-image DCT needs a square input_size, got {height} x {width}"
            )
        self.label_smoothing = label_smoothing
        self.fad = FrequencyAwareDecomposition(height, learnable=learnable_bands)
        self.backbone = staged_backbone("legacy_xception", pretrained, num_classes=0)
        self.backbone.model.conv1 = widen_input_conv(self.backbone.model.conv1, FAD_CHANNELS)
        # The last stage (conv4 + BN + ReLU) already ends in the paper's ReLU.
        self.head = BinaryHead(self.backbone.channels("conv4"), drop_rate)

    def forward(self, images: Tensor) -> DetectorOutput:
        bands = self.fad(images)
        features = self.backbone(bands).mean(dim=(2, 3))
        return DetectorOutput(logit=self.head(features), features=features)

    def loss(self, output: DetectorOutput, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        bce = self.classification_loss(output, batch, self.label_smoothing)
        return {"loss": bce, "bce": bce}
