"""Face X-ray (Li et al., "Face X-ray for More General Face Forgery Detection", CVPR 2020).

A face made by blending two images carries a blending boundary; Face X-ray
predicts it as a grey-scale image, the X-ray ``B = 4 M (1 - M)`` of the blend
mask M (paper Eq. 2; all zero for a real face), and classifies the face from
its predicted X-ray. Trained on real faces and their BI pseudo-fakes
(:class:`src.augment.bi.BI`, the DataModule's ``pseudo_fake``), it never
needs a forgery method's fakes. Where each choice comes from:

* **Network** (paper): HRNetV2-W48 (timm ``hrnet_w48``, its four branch
  outputs through the suite's feature taps: timm's ``features_only`` network
  with ``feature_location=""``); all four resolutions up-sampled to the
  highest (1/4 of the input: 64 x 64 at 256 px) and concatenated (720
  channels), then HRNetV2's 1 x 1 conv + BN + ReLU + 1 x 1 conv to one map
  (:class:`~src.detectors.layers.multiscale.MultiResolutionHead`). The map is
  up-sampled bilinearly to the input size: the X-ray logits, declared as this
  detector's dense output ``xray`` (pixel metrics ``xray_pixel_auc`` ...,
  ``dfbench predict`` masks, ``dfbench show-masks``).
* **Classifier** (``classifier="paper"``): global average pooling of the
  predicted X-ray (its probabilities), a fully connected layer, a sigmoid:
  ``logit = w mean(sigmoid(X)) + b``. ``classifier="deepfakebench"`` is
  DeepfakeBench's instead: the X-ray logits average-pooled to 128 x 128,
  flattened, then FC 16384 -> 1024 -> 128 -> 1 with BN + ReLU between (their
  two-class softmax as one logit).
* **Target** (paper Eq. 2): :data:`~src.detectors.dense.FACE_XRAY`; a
  binary mask (a dataset's manipulation mask) is first blurred by a 3 x 3
  Gaussian, as the paper prescribes for binary masks and DeepfakeBench's data
  code does; BI's feathered mask is soft already.
* **Loss** (paper): ``L = lambda L_b + L_c`` with pixel-wise BCE ``L_b``
  between the X-ray and its target (a mean over pixels here, over the samples
  whose mask is known: :func:`~src.detectors.targets.dense_supervision`),
  BCE ``L_c`` on the label, ``lambda = 100``. DeepfakeBench uses the mean
  squared error on the raw map with weight 1000 instead (``docs/face_xray.md``).
* **Input** (paper): 256 x 256 faces, ImageNet mean/std of the pretrained
  HRNet (DeepfakeBench normalises with 0.5/0.5).
* **Optimiser**: Adam, lr 2e-4 (paper and DeepfakeBench), weight decay 5e-4
  (DeepfakeBench; the paper states none), no schedule (DeepfakeBench).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from src.contracts import InputContract
from src.detectors.backbones import Pretrained, backbone_data_config, staged_backbone
from src.detectors.base import Detector, DetectorOutput
from src.detectors.dense import FACE_XRAY, DenseOutput
from src.detectors.layers import BinaryHead
from src.detectors.layers.multiscale import MultiResolutionHead
from src.detectors.losses import dense_bce
from src.detectors.registry import register_detector
from src.detectors.targets import dense_supervision
from src.errors import DFBenchError

Classifier = Literal["paper", "deepfakebench"]

#: The declared dense output: the X-ray logits, scored against :data:`FACE_XRAY`.
XRAY_OUTPUT = DenseOutput(
    key="xray_logit",
    name="xray",
    description="the face X-ray: P(pixel on a blending boundary)",
    target=FACE_XRAY,
)
#: DeepfakeBench pools the X-ray to this side before its fully connected layers.
DEEPFAKEBENCH_POOL = 128


class PooledMapClassifier(nn.Module):
    """DeepfakeBench's classifier: a map average-pooled to ``side`` x ``side``, then an MLP."""

    def __init__(self, side: int = DEEPFAKEBENCH_POOL, widths: tuple[int, int] = (1024, 128)):
        super().__init__()
        self.side = side
        layers: list[nn.Module] = []
        width = side * side
        for hidden in widths:
            layers += [nn.Linear(width, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True)]
            width = hidden
        self.mlp = nn.Sequential(*layers, nn.Linear(width, 1))

    def forward(self, xray_logit: Tensor) -> Tensor:
        pooled = F.adaptive_avg_pool2d(xray_logit, self.side).flatten(1)
        return self.mlp(pooled).squeeze(1)


@register_detector("face_xray")
class FaceXRay(Detector):
    """Face X-ray (see the module docstring).

    Args:
        backbone: a timm HRNet (``hrnet_w48`` as the paper; ``hrnet_w18_small``
            for tests). Its four branch outputs are the taps.
        pretrained: False, True (timm's ImageNet weights) or a local weights file.
        head_channels: width of the head's 1 x 1 conv + BN + ReLU (None: the
            concatenation's, 720 for W48, as HRNetV2).
        classifier: ``"paper"`` (pooled X-ray -> FC) or ``"deepfakebench"`` (MLP).
        xray_weight: lambda, the weight of the X-ray loss.
        label_smoothing: of the classification BCE.
        **kwargs: :class:`~src.detectors.base.Detector` arguments.

    Output: ``logit`` (B,) and ``extras["xray_logit"]`` (B, 1, H, W), the X-ray
    logits at the input size (predicted at H/4 x W/4 and up-sampled).
    """

    dense_outputs = (XRAY_OUTPUT,)

    def __init__(
        self,
        backbone: str = "hrnet_w48",
        pretrained: Pretrained = False,
        head_channels: int | None = None,
        classifier: Classifier = "paper",
        xray_weight: float = 100.0,
        label_smoothing: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if classifier not in ("paper", "deepfakebench"):
            raise DFBenchError(
                f"face_xray: classifier must be 'paper' or 'deepfakebench', got {classifier!r}"
            )
        data = backbone_data_config(backbone)
        if not backbone.startswith("hrnet"):
            raise DFBenchError(
                f"face_xray: backbone must be a timm HRNet (hrnet_w48, hrnet_w18_small ...), "
                f"got {backbone!r}"
            )
        self.default_contract = InputContract((256, 256), data["mean"], data["std"])
        self.xray_weight = xray_weight
        self.label_smoothing = label_smoothing
        # The four branches (1/4 .. 1/32), not timm's default "incre" features of its classifier.
        self.backbone = staged_backbone(
            backbone, pretrained, feature_location="", out_indices=(1, 2, 3, 4)
        )
        self.taps = tuple(self.backbone.names)
        channels = [self.backbone.channels(tap) for tap in self.taps]
        self.head = MultiResolutionHead(channels, head_channels, out_channels=1)
        self.classifier = BinaryHead(1) if classifier == "paper" else PooledMapClassifier()
        # Grad-CAM reads the last map with channels: the head's fused representation.
        self.cam_layers = ("head.fuse",)

    def forward(self, images: Tensor) -> DetectorOutput:
        features = self.backbone.features(images, self.taps)
        branches = [features[tap] for tap in self.taps]
        xray_logit = F.interpolate(
            self.head(branches), size=images.shape[-2:], mode="bilinear", align_corners=False
        )
        if isinstance(self.classifier, BinaryHead):
            logit = self.classifier(torch.sigmoid(xray_logit))
        else:
            logit = self.classifier(xray_logit)
        return DetectorOutput(logit=logit, extras={"xray_logit": xray_logit})

    def loss(self, output: DetectorOutput, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        bce = self.classification_loss(output, batch, self.label_smoothing)
        xray_logit = output.extras["xray_logit"]
        target = FACE_XRAY(batch)
        if target.shape[-2:] != xray_logit.shape[-2:]:
            target = F.interpolate(target, size=xray_logit.shape[-2:], mode="area")
        xray = dense_bce(xray_logit, target, dense_supervision(batch))
        return {"loss": self.xray_weight * xray + bce, "bce": bce, "xray": xray}

    def default_optimizer(self, params: Iterable[Tensor]) -> torch.optim.Optimizer:
        """Adam at the paper's lr 2e-4, DeepfakeBench's weight decay 5e-4."""
        return torch.optim.Adam(params, lr=2e-4, weight_decay=5e-4)
