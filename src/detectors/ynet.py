"""Learnable-local-similarity Y-net (Leng, Fei and Dai): detection and forgery localisation.

A Y-shaped network: an ImageNet Xception encoder (224 px, mean = std = 0.5),
a decoder that localises the forgery (the FLM with its cross-level attention
gates, :mod:`src.detectors.layers.localisation`) and a classifier head on the
decoder's output (global average pooling -> fully connected -> logit). The
learnable local similarity module (LLSM, :mod:`src.detectors.layers.llsm`)
reads one middle encoder layer and predicts, for every ordered pair of its
positions, whether exactly one of the two was manipulated.

Loss (paper Eq. 8): ``L = L_cls + alpha L_LS + beta L_LOC``, all BCE. The
dense terms use only the samples whose mask is known (reals, whose targets are
zero, and fakes with a mask; :func:`~src.detectors.targets.dense_supervision`).
With FF++ the targets come from the dataset's manipulation masks; with SBI or
BI pseudo-fakes the batch's mask is the blend mask, so it is the target.

Defaults for what the paper leaves open (it only says alpha, beta in [0, 1],
"a middle layer", one 2 x 1 x C kernel):

* ``alpha = beta = 1``: the top of the paper's range; every term is a mean
  BCE, so they start on the same scale as the classification loss.
* ``llsm_tap = "block7"``: Xception's middle flow (block4 .. block11) keeps
  one shape (728 channels, input / 16: 14 x 14 at 224 px, a 196 x 196 pair
  map); block7 sits at its middle, deep enough for features that describe a
  region yet with half the middle flow left to turn the similarity cue into
  the classifier's and decoder's features.
* ``llsm_width = 1``: the paper's single kernel.
* decoder skips ``block11, block2, block1, stem`` (the last output at each
  resolution below the bottom ``conv4``), widths 256, 128, 64, 64; dropout
  0.2 before the final linear layer, as the Xception baseline.

Ablations (paper Table IV) are flags: ``use_llsm`` and ``use_flm``. Without
the FLM there is no decoder and the classifier reads the encoder's last
feature, so ``use_llsm=False, use_flm=False`` is the Xception baseline.
``use_claffm=False`` keeps the decoder with plain skips.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor

from src.contracts import InputContract
from src.detectors.backbones import Pretrained, backbone_data_config, staged_backbone
from src.detectors.base import Detector, DetectorOutput
from src.detectors.dense import manipulation_mask_output
from src.detectors.layers import BinaryHead
from src.detectors.layers.llsm import LearnableLocalSimilarity
from src.detectors.layers.localisation import ForgeryLocalisation
from src.detectors.losses import dense_bce
from src.detectors.registry import register_detector
from src.detectors.targets import dense_supervision, localisation_target, pair_map_target

#: The encoder's last stage: where decoding starts and what the head reads without the FLM.
BOTTOM = "conv4"


@register_detector("ynet")
class YNet(Detector):
    """The local-similarity Y-net (see the module docstring).

    Args:
        backbone: a timm Xception (``legacy_xception``); the tap names are its stages.
        pretrained: False, True (timm's ImageNet weights) or a local weights file.
        llsm_tap: encoder stage the LLSM reads.
        skip_taps: encoder stages the decoder fuses, deepest first.
        decoder_channels: output channels of each decoder level (one per skip).
        use_llsm, use_flm: the paper's ablation switches.
        use_claffm: the cross-level attention gates inside the FLM.
        llsm_width: K kernels of the LLSM (1 = the paper's).
        alpha, beta: weights of the similarity and localisation losses.
        pair_threshold: binarisation of ``|m_i - m_j|`` in the pair-map target.
        attention_reduction: hidden width of the gates = channels / this.
        drop_rate: dropout before the classifier's linear layer.
        label_smoothing: of the classification BCE.
        **kwargs: :class:`~src.detectors.base.Detector` arguments.

    Output: ``logit`` (B,); ``mask_logit`` (B, 1, H, W) at the input size (FLM
    on), declared as the dense output scored against the manipulation mask
    (``pixel_auc``, ``pixel_iou``, ``pixel_f1``); ``features`` the map the head pools; ``extras["pair_logit"]`` (B, hw,
    hw), the LLSM's logit that a pair mixes manipulated and pristine positions,
    and ``extras["llsm_input"]``, the tapped feature whose h x w it is (LLSM on).
    """

    def __init__(
        self,
        backbone: str = "legacy_xception",
        pretrained: Pretrained = False,
        llsm_tap: str = "block7",
        skip_taps: Sequence[str] = ("block11", "block2", "block1", "stem"),
        decoder_channels: Sequence[int] = (256, 128, 64, 64),
        use_llsm: bool = True,
        use_flm: bool = True,
        use_claffm: bool = True,
        llsm_width: int = 1,
        alpha: float = 1.0,
        beta: float = 1.0,
        pair_threshold: float = 0.5,
        attention_reduction: int = 4,
        drop_rate: float = 0.2,
        label_smoothing: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        data = backbone_data_config(backbone)
        self.default_contract = InputContract((224, 224), data["mean"], data["std"])
        self.use_llsm = use_llsm
        self.use_flm = use_flm
        self.alpha = alpha
        self.beta = beta
        self.pair_threshold = pair_threshold
        self.label_smoothing = label_smoothing
        self.llsm_tap = llsm_tap
        self.skip_taps = tuple(skip_taps)
        self.backbone = staged_backbone(backbone, pretrained, num_classes=0)
        for tap in (llsm_tap, *self.skip_taps):
            self.backbone.stage(tap)  # a wrong name fails here, listing the taps
        self.llsm = (
            LearnableLocalSimilarity(self.backbone.channels(llsm_tap), llsm_width)
            if use_llsm
            else None
        )
        self.flm = (
            ForgeryLocalisation(
                self.backbone.channels(BOTTOM),
                [self.backbone.channels(tap) for tap in self.skip_taps],
                decoder_channels,
                use_attention=use_claffm,
                reduction=attention_reduction,
            )
            if use_flm
            else None
        )
        self.dense_outputs = (manipulation_mask_output("mask_logit"),) if use_flm else ()
        head_channels = self.flm.out_channels if self.flm else self.backbone.channels(BOTTOM)
        self.head = BinaryHead(head_channels, drop_rate)
        # Grad-CAM reads what the classifier pools: the last (gated) decoder level or the encoder.
        if self.flm is None:
            self.cam_layers = ("backbone.model.act4",)
        else:
            last = len(self.flm.blocks) - 1
            self.cam_layers = (
                f"flm.gates.{last}" if self.flm.gates is not None else f"flm.blocks.{last}",
            )

    def forward(self, images: Tensor) -> DetectorOutput:
        taps = [BOTTOM]
        if self.flm is not None:
            taps += self.skip_taps
        if self.llsm is not None:
            taps.append(self.llsm_tap)
        features = self.backbone.features(images, taps)
        extras: dict[str, Tensor] = {}
        if self.llsm is not None:
            extras["pair_logit"] = self.llsm(features[self.llsm_tap])
            extras["llsm_input"] = features[self.llsm_tap]
        mask_logit = None
        head_input = features[BOTTOM]
        if self.flm is not None:
            skips = [features[tap] for tap in self.skip_taps]
            mask_logit, head_input = self.flm(features[BOTTOM], skips, tuple(images.shape[-2:]))
        return DetectorOutput(
            logit=self.head(head_input), mask_logit=mask_logit, features=head_input, extras=extras
        )

    def loss(self, output: DetectorOutput, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        bce = self.classification_loss(output, batch, self.label_smoothing)
        losses = {"bce": bce}
        total = bce
        supervised = dense_supervision(batch)
        if self.llsm is not None:
            size = tuple(output.extras["llsm_input"].shape[-2:])
            target = pair_map_target(batch["mask"], batch["label"], size, self.pair_threshold)
            losses["similarity"] = dense_bce(output.extras["pair_logit"], target, supervised)
            total = total + self.alpha * losses["similarity"]
        if output.mask_logit is not None:
            target = localisation_target(
                batch["mask"], batch["label"], tuple(output.mask_logit.shape[-2:])
            )
            losses["localisation"] = dense_bce(output.mask_logit, target, supervised)
            total = total + self.beta * losses["localisation"]
        losses["loss"] = total
        return losses

    def default_optimizer(self, params: Iterable[Tensor]) -> torch.optim.Optimizer:
        """The paper's Adam at lr 1e-4 (no weight decay mentioned)."""
        return torch.optim.Adam(params, lr=1e-4)
