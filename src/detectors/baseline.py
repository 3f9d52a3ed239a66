"""The backbone classifiers of the papers' tables: one timm network, one logit.

Registered as ``xception`` (timm ``legacy_xception``, the ImageNet Xception of
the FF++ baselines and RECCE), ``efficientnet_b4`` (``tf_efficientnet_b4``),
``resnet50`` and ``vgg16``. Any other timm model name works as ``backbone``.

The input contract defaults to the one timm records for the backbone's weights
(Xception 299 px with mean = std = 0.5; EfficientNet-B4 380 px, ResNet-50 and
VGG-16 224 px with ImageNet statistics). PRLE trains all of them on 256 px
faces: its configs set ``input_size: 256``.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from src.contracts import InputContract
from src.detectors.backbones import Pretrained, backbone_data_config, create_backbone
from src.detectors.base import Detector, DetectorOutput
from src.detectors.layers import BinaryHead
from src.detectors.registry import register_detector


def default_cam_layers(model: nn.Module) -> tuple[str, ...]:
    """Grad-CAM layers per backbone family, as PRLE's authors chose them.

    Xception: ``conv4`` and ``conv3`` (their maps averaged); EfficientNet: the
    conv head; VGG: its last convolution; ResNet: the last stage; anything
    else: the last convolution of the network.
    """
    names = dict(model.named_modules())
    if "conv4" in names and "conv3" in names:
        return ("backbone.conv4", "backbone.conv3")
    if "conv_head" in names:
        return ("backbone.conv_head",)
    if "layer4" in names:
        return ("backbone.layer4",)
    # VGG's classifier MLP is made of convolutions too: look in its feature extractor.
    prefix = "features." if "features" in names else ""
    convs = [n for n, m in names.items() if isinstance(m, nn.Conv2d) and n.startswith(prefix)]
    return (f"backbone.{convs[-1]}",)


@register_detector("xception", backbone="legacy_xception")
@register_detector("efficientnet_b4", backbone="tf_efficientnet_b4")
@register_detector("resnet50", backbone="resnet50")
@register_detector("vgg16", backbone="vgg16")
class BackboneClassifier(Detector):
    """A timm backbone, global pooling, dropout and a linear layer to one logit.

    Args:
        backbone: timm model name (optionally with a weights tag).
        pretrained: False, True (timm's weights; offline only from a cache) or
            a local weights file; see :mod:`src.detectors.backbones`.
        drop_rate: dropout before the final linear layer.
        label_smoothing: smoothing of the BCE targets (0 = none).
        backbone_kwargs: extra arguments for ``timm.create_model``
            (e.g. ``drop_path_rate``).
        **kwargs: :class:`~src.detectors.base.Detector` arguments
            (``input_size``, ``optimizer``, ``lr_scheduler``, ...).
    """

    def __init__(
        self,
        backbone: str = "legacy_xception",
        pretrained: Pretrained = False,
        drop_rate: float = 0.2,
        label_smoothing: float = 0.0,
        backbone_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        data = backbone_data_config(backbone)
        self.default_contract = InputContract(data["input_size"], data["mean"], data["std"])
        self.label_smoothing = label_smoothing
        self.backbone = create_backbone(
            backbone, pretrained, num_classes=0, **(backbone_kwargs or {})
        )
        # VGG's pooled output passes through its pre-logits MLP (4096 wide).
        width = getattr(self.backbone, "head_hidden_size", None) or self.backbone.num_features
        self.head = BinaryHead(width, drop_rate)
        self.cam_layers = default_cam_layers(self.backbone)

    def forward(self, images: Tensor) -> DetectorOutput:
        features = self.backbone(images)
        return DetectorOutput(logit=self.head(features), features=features)

    def loss(self, output: DetectorOutput, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        bce = self.classification_loss(output, batch, self.label_smoothing)
        return {"loss": bce, "bce": bce}
