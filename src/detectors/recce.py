"""RECCE (Cao et al., CVPR 2022): end-to-end reconstruction-classification learning.

An ImageNet Xception is cut after block4; its embedding (728 x 19 x 19 at
299 px) feeds both a decoder that learns to reconstruct real faces and the
rest of the encoder::

    noised x -> stem..block4 = e --+--> decoder: d2 (256 x 38), d4 (128 x 76) -> x_hat
                                   +--> block5..7 = a
    fusion = graph_reasoning(a, d2, d4) + a -> block8
           -> guided attention from |x - x_hat| (clean x)
           -> block9..12, conv3, conv4 -> pool -> dropout -> logit

Loss (PANet Eq. 12 with the authors' weights): ``L_cls + 0.1 L_rec + 0.1 L_metric``,
L_rec over reals only (:func:`~src.detectors.losses.reconstruction_loss`) and
L_metric (:func:`~src.detectors.losses.metric_learning_loss`) summed over the
three embeddings e, d2 and d4 (global-average-pooled), as the authors' code sums
them. All three terms are on by default; a popular re-implementation drops the
last two, which is not RECCE.

Where the authors' code differs from the papers, the default follows the
papers and the code is an option:

* Noise: each training sample's encoder input gets Gaussian noise with
  probability 0.5 (the papers' "white noise" on a random half), clipped to the
  normalised image range. The authors' std is 1e-6, far below one 8-bit grey
  level (2/255 in [-1, 1]), so it changes nothing; ``noise_std`` defaults to it
  to reproduce their numbers and can be raised to study the noise.
* ``flood_level``: the authors' training script floods the BCE at 0.04
  (``|L - 0.04| + 0.04``); neither paper mentions it, so it is off by default.

Attention can be inserted at named points (:data:`ATTENTION_POINTS`), which is
how :class:`~src.detectors.panet.PANet` adds EMA and CBAM without a second
forward pass definition.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from src.contracts import InputContract
from src.detectors.backbones import Pretrained, staged_backbone
from src.detectors.base import Batch, Detector, DetectorOutput
from src.detectors.layers import BinaryHead
from src.detectors.layers.graph_reasoning import MultiScaleGraphReasoning
from src.detectors.layers.reconstruction import GuidedAttention, ReconstructionDecoder
from src.detectors.losses import metric_learning_loss, reconstruction_loss
from src.detectors.registry import register_detector
from src.errors import DFBenchError

#: Where extra attention modules may act, in forward order: the block4 embedding
#: (before the decoder and block5), the decoder's stage-2 and stage-4 maps as
#: graph-reasoning inputs, the fused feature (before block8), the guided-attention
#: output (before block9) and the final 2048-channel map (before pooling).
ATTENTION_POINTS = ("embedding", "decoder2", "decoder4", "fusion", "guided", "final")

#: ``DetectorOutput.extras`` keys of the pooled embeddings the metric loss reads.
METRIC_EMBEDDINGS = ("embedding_block4", "embedding_decoder2", "embedding_decoder4")


@register_detector("recce")
class RECCE(Detector):
    """RECCE on timm's ``legacy_xception``; input 299 px, mean = std = 0.5.

    Args:
        pretrained: ImageNet Xception weights: False, True or a local file
            (see :mod:`src.detectors.backbones`).
        drop_rate: dropout before the decoder, after the graph reasoning, in the
            guided attention and before the logit (0.2).
        noise_std: std of the training noise on the encoder input (see above).
        noise_probability: chance that a training sample is noised (0.5).
        reconstruction_weight: lambda_1 of L_rec (0.1).
        metric_weight: lambda_2 of L_metric (0.1).
        flood_level: BCE flooding level (0 = off; the authors' code: 0.04).
        **kwargs: :class:`~src.detectors.base.Detector` arguments.
    """

    default_contract = InputContract((299, 299), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    cam_layers = ("backbone.model.conv4",)

    def __init__(
        self,
        pretrained: Pretrained = False,
        drop_rate: float = 0.2,
        noise_std: float = 1e-6,
        noise_probability: float = 0.5,
        reconstruction_weight: float = 0.1,
        metric_weight: float = 0.1,
        flood_level: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if noise_std < 0 or not 0 <= noise_probability <= 1:
            raise DFBenchError(
                f"RECCE noise_std must be >= 0 and noise_probability in [0, 1], "
                f"got {noise_std} and {noise_probability}"
            )
        self.noise_std = noise_std
        self.noise_probability = noise_probability
        self.reconstruction_weight = reconstruction_weight
        self.metric_weight = metric_weight
        self.flood_level = flood_level
        self.backbone = staged_backbone("legacy_xception", pretrained, num_classes=0)
        self.decoder = ReconstructionDecoder(self.backbone.channels("block4"), drop_rate=drop_rate)
        self.reasoning = MultiScaleGraphReasoning(
            self.backbone.channels("block7"),
            fine_channels=self.decoder.widths[:2],
            ratios=(2, 4),
            width=256,
            drop_rate=drop_rate,
        )
        self.guided_attention = GuidedAttention(self.backbone.channels("block8"), drop_rate)
        self.head = BinaryHead(self.backbone.channels("conv4"), drop_rate)
        #: Extra attention by point name (empty in RECCE; PANet fills it).
        self.attention = nn.ModuleDict()

    # -------------------------------------------------------------- attention
    def attention_channels(self, point: str) -> int:
        """Channels of the feature at an attention point."""
        channels = {
            "embedding": self.backbone.channels("block4"),
            "decoder2": self.decoder.widths[0],
            "decoder4": self.decoder.widths[1],
            "fusion": self.backbone.channels("block7"),
            "guided": self.backbone.channels("block8"),
            "final": self.backbone.channels("conv4"),
        }
        if point not in channels:
            raise DFBenchError(f"unknown attention point {point!r}; points: {ATTENTION_POINTS}")
        return channels[point]

    def add_attention(self, point: str, module: nn.Module) -> None:
        """Apply ``module`` at ``point`` (after any module already there)."""
        self.attention_channels(point)
        if point in self.attention:
            module = nn.Sequential(*self.attention[point].children(), module)
        else:
            module = nn.Sequential(module)
        self.attention[point] = module

    def _attend(self, point: str, x: Tensor) -> Tensor:
        return self.attention[point](x) if point in self.attention else x

    # ---------------------------------------------------------------- network
    def forward(self, images: Tensor, encoder_input: Tensor | None = None) -> DetectorOutput:
        """``images`` is the clean input; ``encoder_input`` (default: ``images``) may be noised."""
        encoder_input = images if encoder_input is None else encoder_input
        embedding = self._attend("embedding", self.backbone.run(encoder_input, until="block4"))
        decoded = self.decoder(embedding, images.shape[-2:])
        deep = self.backbone.run(embedding, after="block4", until="block7")
        fine = (self._attend("decoder2", decoded.stage2), self._attend("decoder4", decoded.stage4))
        fusion = self._attend("fusion", self.reasoning(deep, *fine) + deep)
        features = self.backbone.run(fusion, after="block7", until="block8")
        features = self.guided_attention(images, decoded.reconstruction, features)
        features = self._attend("guided", features)
        features = self._attend("final", self.backbone.run(features, after="block8"))
        pooled = features.mean(dim=(2, 3))
        pooled_embeddings = (embedding, decoded.stage2, decoded.stage4)
        return DetectorOutput(
            logit=self.head(pooled),
            reconstruction=decoded.reconstruction,
            features=pooled,
            extras={
                name: x.mean(dim=(2, 3))
                for name, x in zip(METRIC_EMBEDDINGS, pooled_embeddings, strict=True)
            },
        )

    def add_noise(self, images: Tensor) -> Tensor:
        """Gaussian noise on a random subset of the batch, clipped to the normalised image range."""
        contract = self.input_contract
        mean = images.new_tensor(contract.mean).view(1, 3, 1, 1)
        std = images.new_tensor(contract.std).view(1, 3, 1, 1)
        # The draws above 1 - p are chosen, as the authors choose those above 0.5: seeded
        # alike, both noise the same samples.
        chosen = torch.rand(images.shape[0], 1, 1, 1, device=images.device)
        chosen = (chosen > 1 - self.noise_probability).to(images.dtype)
        noised = images + torch.randn_like(images) * self.noise_std * chosen
        return torch.maximum(torch.minimum(noised, (1 - mean) / std), -mean / std)

    def step_forward(self, batch: Batch) -> DetectorOutput:
        # Noise is for training only: validation, test and predict run in eval mode.
        images = batch["image"]
        if self.training and self.noise_std > 0 and self.noise_probability > 0:
            return self(images, encoder_input=self.add_noise(images))
        return self(images)

    # ------------------------------------------------------------------- loss
    def loss(self, output: DetectorOutput, batch: Batch) -> dict[str, Tensor]:
        label = batch["label"]
        bce = self.classification_loss(output, batch)
        if self.flood_level > 0:
            bce = (bce - self.flood_level).abs() + self.flood_level
        rec = reconstruction_loss(output.reconstruction, batch["image"], label)
        metric = sum(metric_learning_loss(output.extras[name], label) for name in METRIC_EMBEDDINGS)
        total = bce + self.reconstruction_weight * rec + self.metric_weight * metric
        return {"loss": total, "bce": bce, "reconstruction": rec, "metric": metric}
