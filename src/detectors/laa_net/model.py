"""LAA-Net (Nguyen et al., CVPR 2024): localized artifact attention with E-FPN.

An EfficientNet backbone feeds its C3..C6 features (C6 = the conv-head
output, which timm's ``features_only`` does not return) through an E-FPN
decoder to a 112-channel map at a quarter of the input size, read by three
heads: a heatmap of vulnerable points (1 channel), a self-consistency
embedding (256 channels) and the classifier (GAP + linear). It trains on real
faces and their pseudo-fakes (SBI or BI); the heatmap and consistency targets
come from the blend mask (:mod:`src.detectors.targets`).

Paper defaults: ``tf_efficientnet_b4`` at 384 px with mean = std = 0.5,
levels C6, C5, C4, C3, dropout 0.4 on the fed features, drop-path 0.2,
``L = BCE + 10 L_H + 100 L_C`` (Table 5's best; the authors' SBI config uses
100 and 100). Module names follow the authors' code so that their released
checkpoint loads (:mod:`src.detectors.laa_net.importer`).

Where the paper and the authors' code differ, the paper is the default and the
code an option (``configs/detectors/laa_net_authors.yaml`` sets them all, to
train what the released checkpoint was trained on; docs/laa_net.md tabulates them):

* targets: the argmax of the boundary as the one vulnerable point (paper Eq. 3);
  ``targets="authors"`` builds them as the code does (uint8 boundary, every
  quadrant maximum with its ties, about 11 Gaussians per fake;
  :func:`~src.detectors.targets.authors_laa_targets`);
* heatmap loss: plain CornerNet focal loss; ``heatmap_label_smoothing=0.35``
  scales the positive term by ``1 - 0.35 + 0.35 * 0.2 = 0.72`` as the code does;
  the code weighs it 100 (``heatmap_weight``), the paper's Table 5 best is 10;
* ``authors_layers=True``: the backbone's batch norms with momentum 0.01 (their
  ``efficientnet_pytorch`` setting), their initialisation of the up-sampling
  and head convolutions, and the inception block's statistics updated three
  times per batch from its input (they call its shared 1x1 block thrice).

Ablations (paper Tables 3 and 4) are flags: ``use_efpn`` (False: plain FPN),
``levels`` (e.g. ``[6, 5]``), ``use_heatmap``, ``use_consistency``.

The training recipe (paper Section 4.1) is the shared one of
:mod:`src.detectors.training` with LAA-Net's defaults: SAM (rho 0.05) around
Adam (lr 2e-4, weight decay 1e-4), the learning rate warmed up from 5e-5 over
the first quarter of the steps then decayed linearly to 0, and the backbone
frozen for the first 6 epochs. ``optimizer:``/``lr_scheduler:`` in the config
replace the defaults; ``sam_rho: null`` trains with one Adam pass per step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn

from src.contracts import InputContract
from src.detectors.backbones import Pretrained, staged_backbone
from src.detectors.base import Detector, DetectorOutput
from src.detectors.dense import DenseOutput
from src.detectors.layers.efpn import EFPN
from src.detectors.losses import consistency_loss, focal_loss
from src.detectors.registry import register_detector
from src.detectors.targets import authors_laa_targets, dense_supervision, laa_targets
from src.detectors.training import WarmupDecay
from src.errors import DFBenchError


def head(in_channels: int, out_channels: int, width: int = 64) -> nn.Sequential:
    """Conv3x3 (bias) + BN + ReLU + Conv1x1: the heatmap and consistency heads."""
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 3, padding=1),
        nn.BatchNorm2d(width),
        nn.ReLU(inplace=True),
        nn.Conv2d(width, out_channels, 1),
    )


def classifier(in_channels: int, width: int = 64) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 3, padding=1),
        nn.BatchNorm2d(width),
        nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(width, 1),
    )


#: The heatmap branch's output, written by predict and drawn by show-masks; its target
#: (Gaussians on vulnerable points) is no mask, so it is not scored with the pixel metrics.
HEATMAP = DenseOutput(
    key="heatmap",
    name="heatmap",
    description="vulnerable points' heatmap (paper Eq. 4), at a quarter of the input size",
)


@register_detector("laa_net")
class LAANet(Detector):
    """LAA-Net (see the module docstring).

    Args:
        backbone: a timm EfficientNet (``tf_efficientnet_b4``; ``efficientnet_b0`` in the demo).
        pretrained: False, True or a weights file (the authors used AdvProp
            weights: ``tf_efficientnet_b4.ap_in1k``).
        levels: the fed features, a contiguous run from 6 down (paper: 6, 5, 4, 3).
        use_efpn: E-FPN weighting (False: plain FPN).
        gamma: E-FPN's exponent gamma_w.
        use_heatmap, use_consistency: the two auxiliary branches.
        heatmap_weight, consistency_weight: lambda1 and lambda2.
        targets: ``"paper"`` (argmax point) or ``"authors"`` (the code's point sets).
        heatmap_label_smoothing: the code's smoothing of the focal loss's positive term.
        label_smoothing: of the classification BCE.
        feature_dropout: dropout on the fed features (training only).
        drop_path_rate: stochastic depth in the backbone.
        consistency_dim: channels of the self-consistency embedding.
        authors_padding: pad one backbone layer as the authors' model does at
            384 px (:meth:`match_authors_padding`), for their imported weights.
        authors_layers: batch-norm momentum, initialisation and inception
            statistics as the authors' code (see the module docstring).
        sam_rho, freeze_backbone_epochs: the paper's SAM radius and frozen epochs
            (:mod:`src.detectors.training`).
        **kwargs: :class:`~src.detectors.base.Detector` arguments.
    """

    default_contract = InputContract(input_size=(384, 384))
    cam_layers = ("decoder",)  # the classifier reads the decoder's output
    dense_outputs = (HEATMAP,)

    def __init__(
        self,
        backbone: str = "tf_efficientnet_b4",
        pretrained: Pretrained = False,
        levels: Sequence[int] = (6, 5, 4, 3),
        use_efpn: bool = True,
        gamma: float = 1.0,
        use_heatmap: bool = True,
        use_consistency: bool = True,
        heatmap_weight: float = 10.0,
        consistency_weight: float = 100.0,
        targets: Literal["paper", "authors"] = "paper",
        heatmap_label_smoothing: float = 0.0,
        label_smoothing: float = 0.0,
        feature_dropout: float = 0.4,
        drop_path_rate: float = 0.2,
        consistency_dim: int = 256,
        authors_padding: bool = False,
        authors_layers: bool = False,
        sam_rho: float | None = 0.05,
        freeze_backbone_epochs: int = 6,
        **kwargs: Any,
    ) -> None:
        super().__init__(sam_rho=sam_rho, freeze_backbone_epochs=freeze_backbone_epochs, **kwargs)
        levels = tuple(int(level) for level in levels)
        if not levels or levels != tuple(range(6, 6 - len(levels), -1)) or levels[-1] < 2:
            raise DFBenchError(
                "levels must run down from 6 to 2 at the lowest, without gaps (e.g. [6, 5, 4, 3]), "
                f"got {list(levels)}"
            )
        self.levels = levels
        self.use_heatmap = use_heatmap
        self.use_consistency = use_consistency
        self.heatmap_weight = heatmap_weight
        self.consistency_weight = consistency_weight
        if targets not in ("paper", "authors"):
            raise DFBenchError(f"targets must be 'paper' or 'authors', got {targets!r}")
        self.targets = targets
        self.heatmap_label_smoothing = heatmap_label_smoothing
        self.label_smoothing = label_smoothing
        self.backbone = staged_backbone(
            backbone, pretrained, num_classes=0, global_pool="", drop_path_rate=drop_path_rate
        )
        if "C6" not in self.backbone.aliases:
            raise DFBenchError(
                f"LAA-Net needs an EfficientNet-style timm backbone with a conv head, not {backbone!r}"
            )
        channels = [self.backbone.channels(f"C{level}") for level in levels]
        # C6 and C5 share a resolution; every further level doubles it.
        upsample = [level != 5 for level in levels[1:]]
        self.feature_dropout = nn.Dropout(feature_dropout)
        self.decoder = EFPN(
            channels,
            upsample,
            gamma=gamma,
            weighted=use_efpn,
            inception_passes=3 if authors_layers else 1,
        )
        width = self.decoder.out_channels
        self.hm = head(width, 1) if use_heatmap else None
        if not use_heatmap:
            self.dense_outputs = ()
        if self.hm is not None:
            nn.init.constant_(
                self.hm[3].bias, -2.19
            )  # sigmoid(-2.19) ~ 0.1: few positives at the start
        self.cstency = head(width, consistency_dim) if use_consistency else None
        self.cls = classifier(width)
        if authors_padding:
            self.match_authors_padding()
        if authors_layers:
            self.match_authors_layers()

    def forward(self, images: Tensor) -> DetectorOutput:
        taps = [f"C{level}" for level in self.levels]
        features = self.backbone.features(images, [*taps, "C6"])
        fed = [self.feature_dropout(features[tap]) for tap in taps]
        decoded = self.decoder(fed)
        quarter = (images.shape[-2] // 4, images.shape[-1] // 4)
        if decoded.shape[-2:] != quarter:
            # Only level sets other than the paper's land elsewhere than input / 4.
            decoded = nn.functional.interpolate(
                decoded, size=quarter, mode="bilinear", align_corners=False
            )
        return DetectorOutput(
            logit=self.cls(decoded).squeeze(1),
            heatmap=self.hm(decoded) if self.hm is not None else None,
            consistency=self.cstency(decoded) if self.cstency is not None else None,
            features=decoded,
        )

    def loss(self, output: DetectorOutput, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        bce = self.classification_loss(output, batch, self.label_smoothing)
        losses = {"bce": bce}
        total = bce
        supervised = dense_supervision(batch)
        if (self.use_heatmap or self.use_consistency) and supervised.any():
            # Fakes without a mask carry no dense target: they leave these terms out.
            dense = output.heatmap if output.heatmap is not None else output.consistency
            build = authors_laa_targets if self.targets == "authors" else laa_targets
            targets = build(batch["mask"][supervised], batch["label"][supervised], dense.shape[-2:])
            if self.use_heatmap:
                losses["heatmap"] = focal_loss(
                    output.heatmap[supervised, 0],
                    targets["heatmap"],
                    positive_weight=self._positive_weight(),
                )
                total = total + self.heatmap_weight * losses["heatmap"]
            if self.use_consistency:
                losses["consistency"] = consistency_loss(
                    output.consistency[supervised], targets["consistency"]
                )
                total = total + self.consistency_weight * losses["consistency"]
        losses["loss"] = total
        return losses

    def _positive_weight(self) -> float:
        smoothing = self.heatmap_label_smoothing
        return 1 - smoothing + smoothing * 0.2

    def default_optimizer(self, params: Any) -> torch.optim.Optimizer:
        return torch.optim.Adam(params, lr=2e-4, weight_decay=1e-4)

    def default_lr_scheduler(self, optimizer: torch.optim.Optimizer) -> WarmupDecay:
        return WarmupDecay(optimizer, warmup_fraction=0.25, start_factor=5e-5 / 2e-4)

    def match_authors_layers(self) -> None:
        """Batch-norm momentum and initialisation as the authors' code sets them.

        Their ``efficientnet_pytorch`` backbone normalises with momentum 0.01 (TF's
        0.99 decay) and eps 1e-3; they draw the transposed convolutions of the
        decoder and the last convolution of every head but the heatmap's from
        N(0, 2 / (k * k * out_channels)) with zero bias.
        """
        for module in self.backbone.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.momentum, module.eps = 0.01, 1e-3

        def he_normal(conv: nn.Module) -> None:
            fan_out = conv.kernel_size[0] * conv.kernel_size[1] * conv.out_channels
            nn.init.normal_(conv.weight, 0.0, math.sqrt(2.0 / fan_out))
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)

        for module in self.decoder.modules():
            if isinstance(module, nn.ConvTranspose2d):
                he_normal(module)
        if self.cstency is not None:
            he_normal(self.cstency[3])

    def match_authors_padding(self) -> None:
        """Pad like the authors' model (static TF padding computed for 380 px).

        At 384 px one layer differs from timm's dynamic padding: the stride-2,
        5x5 depthwise conv opening stage 2 pads (2, 2, 2, 2) there, not (1, 2, 1, 2).
        Called by the checkpoint importer so imported weights reproduce the
        authors' outputs.
        """
        stage = self.backbone.model.get_submodule(self.backbone.aliases["C3"])[0]
        old = stage.conv_dw
        conv = nn.Conv2d(
            old.in_channels,
            old.out_channels,
            old.kernel_size,
            old.stride,
            padding=old.kernel_size[0] // 2,
            groups=old.groups,
            bias=old.bias is not None,
        )
        conv.load_state_dict(old.state_dict())
        stage.conv_dw = conv.to(old.weight.device, old.weight.dtype)
