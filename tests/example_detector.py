"""A complete detector in one file: what adding a method to dfbench takes.

It taps a ResNet at C3, predicts a coarse manipulation mask there (a dense
target built on the device from the batch's mask) and declares it as a dense
output, so the base class scores it with the pixel metrics, ``dfbench
predict`` writes it and ``dfbench show-masks`` draws it. It classifies from
the last stage and overrides ``step_forward`` to jitter the brightness of
training images. Its recipe (SAM, schedule, freezing) comes from YAML, like
any detector's: ``tests/configs/example_detector.yaml``. The walk-through is
docs/adding-a-detector.md.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from src.contracts import InputContract
from src.detectors import Detector, DetectorOutput, register_detector
from src.detectors.backbones import Pretrained, staged_backbone
from src.detectors.dense import manipulation_mask_output
from src.detectors.layers import BinaryHead
from src.detectors.targets import dense_supervision


@register_detector("example_tap")
class TapDetector(Detector):
    """ResNet-18: a mask head on the C3 tap, the classifier on the last stage."""

    default_contract = InputContract(input_size=(64, 64))
    cam_layers = ("backbone.model.layer4",)
    # mask_logit, scored against batch["mask"] as pixel_auc, pixel_iou, pixel_f1.
    dense_outputs = (manipulation_mask_output("mask_logit"),)

    def __init__(
        self,
        pretrained: Pretrained = False,
        mask_weight: float = 1.0,
        jitter: float = 0.1,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.mask_weight = mask_weight
        self.jitter = jitter
        self.backbone = staged_backbone("resnet18", pretrained, num_classes=0)
        self.mask_head = nn.Conv2d(self.backbone.channels("C3"), 1, 1)
        self.head = BinaryHead(self.backbone.channels("C5"))

    def forward(self, images: Tensor) -> DetectorOutput:
        middle = self.backbone.run(images, until="C3")
        deep = self.backbone.run(middle, after="C3")
        return DetectorOutput(logit=self.head(deep), mask_logit=self.mask_head(middle))

    def step_forward(self, batch: dict[str, Tensor]) -> DetectorOutput:
        images = batch["image"]
        if self.training:
            images = images + self.jitter * torch.randn(len(images), 1, 1, 1, device=images.device)
        return self(images)

    def loss(self, output: DetectorOutput, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        bce = self.classification_loss(output, batch)
        keep = dense_supervision(batch)
        target = F.interpolate(batch["mask"][keep], size=output.mask_logit.shape[-2:], mode="area")
        mask = F.binary_cross_entropy_with_logits(output.mask_logit[keep], target)
        return {"loss": bce + self.mask_weight * mask, "bce": bce, "mask": mask}
