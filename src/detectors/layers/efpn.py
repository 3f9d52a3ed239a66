"""LAA-Net's Enhanced FPN (paper Eq. 9) and the small blocks it is built from.

Module names and nesting follow the authors' code, so their checkpoint's
decoder and head keys load unchanged: ``deconv_1`` .. ``deconv_n``,
``inception_block`` (the same module is also ``deconv_n.0``).

At each level the decoder feature E is concatenated with the backbone skip
feature weighted by ``(1 - sigmoid(E)) ** gamma``: skip pixels the decoder
already "explains" are damped, so redundant information is not passed on
(E-FPN). With ``weighted=False`` the skip is concatenated as is (plain FPN,
the paper's ablation).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from src.errors import DFBenchError


def conv_bn_relu(in_channels: int, out_channels: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def upsample2(channels: int) -> list[nn.Module]:
    """A x2 transposed convolution (kernel 4, stride 2, padding 1) and BN, no activation."""
    return [
        nn.ConvTranspose2d(channels, channels, 4, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(channels),
    ]


class InceptionBlock(nn.Module):
    """Four branches over one shared 1x1 reduction: [pw, 3x3(pw), 5x5(pw), pw(maxpool)].

    ``passes`` > 1 runs the reduction of the input that many times in training:
    the outputs are identical, but the batch-norm running statistics are
    updated as often as the authors' code does (it calls the block once per branch).
    """

    def __init__(self, channels: int, passes: int = 1) -> None:
        super().__init__()
        self.passes = passes
        width = channels // 4
        self.pw_block = conv_bn_relu(channels, width, 1)
        self.mp_layer = nn.MaxPool2d(3, stride=1, padding=1)
        self.conv3_block = conv_bn_relu(width, width, 3)
        self.conv5_block = conv_bn_relu(width, width, 5)

    def forward(self, x: Tensor) -> Tensor:
        reduced = self.pw_block(x)
        if self.training:
            with torch.no_grad():
                for _ in range(self.passes - 1):
                    self.pw_block(x)
        return torch.cat(
            [
                reduced,
                self.conv3_block(reduced),
                self.conv5_block(reduced),
                self.pw_block(self.mp_layer(x)),
            ],
            1,
        )


class EFPN(nn.Module):
    """Decoder over backbone features from coarse to fine.

    Args:
        channels: channels of the fed features, coarsest first (e.g. C6, C5, C4, C3
            of EfficientNet-B4: 1792, 448, 160, 56).
        upsample: for each feature after the first, whether it is twice the
            previous one's resolution (False: the same, as C5 beside C6).
        gamma: exponent of the weighting (the paper's gamma_w; 1 in all its runs).
        weighted: E-FPN weighting (True) or plain FPN concatenation (False).
        inception_passes: see :class:`InceptionBlock`.

    The output has ``2 * channels[-1]`` channels (or ``channels[0]`` with one
    feature) at twice the finest feature's resolution.
    """

    def __init__(
        self,
        channels: Sequence[int],
        upsample: Sequence[bool],
        gamma: float = 1.0,
        weighted: bool = True,
        inception_passes: int = 1,
    ) -> None:
        super().__init__()
        if len(upsample) != len(channels) - 1:
            raise DFBenchError("upsample needs one flag per feature after the first")
        self.gamma = gamma
        self.weighted = weighted
        self.levels = len(channels) - 1
        in_channels = channels[0]
        for level, (out_channels, up) in enumerate(
            zip(channels[1:], upsample, strict=True), start=1
        ):
            layers: list[nn.Module] = [conv_bn_relu(in_channels, out_channels, 3)]
            if up:
                layers += upsample2(out_channels)
            self.add_module(f"deconv_{level}", nn.Sequential(*layers))
            in_channels = 2 * out_channels
        self.out_channels = in_channels
        self.inception_block = InceptionBlock(in_channels, inception_passes)
        final = nn.Sequential(self.inception_block, *upsample2(in_channels))
        self.add_module(f"deconv_{self.levels + 1}", final)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        x = features[0]
        for level, skip in enumerate(features[1:], start=1):
            x = getattr(self, f"deconv_{level}")(x)
            if self.weighted:
                weight = 1 - torch.sigmoid(x)
                skip = skip * (weight if self.gamma == 1.0 else weight**self.gamma)
            x = torch.cat([x, skip], 1)
        return self.relu(getattr(self, f"deconv_{self.levels + 1}")(x))
