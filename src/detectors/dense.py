"""Dense outputs a detector declares: what each map is, what it is compared with, how it is scored.

A detector lists its per-pixel outputs in :attr:`Detector.dense_outputs
<src.detectors.base.Detector.dense_outputs>`; the base class scores exactly the
declared outputs that have a target with the suite's pixel metrics
(:class:`~src.metrics.PixelMetric`: pixel AUC, IoU and F1 at 0.5 over the
samples whose mask is known), ``dfbench predict`` writes every declared output
as 8-bit PNGs and ``dfbench show-masks`` draws them. A map's field name in
:class:`~src.detectors.base.DetectorOutput` means nothing by itself: an
undeclared ``mask_logit`` is not scored.

Every dense output is a (B, 1, h, w) map of logits of a per-pixel probability
(at any size: the metrics resize it to the target's). Its target is built on
the device from the batch (DESIGN: the data pipeline never knows which
detector runs). Face X-ray (:mod:`src.detectors.face_xray`) declares its X-ray so::

    class FaceXRay(Detector):
        dense_outputs = (
            DenseOutput(
                key="xray_logit",                # DetectorOutput.extras["xray_logit"]
                name="xray",                     # files <frame>_xray.png, metrics xray_pixel_*
                description="the face X-ray: P(pixel on a blending boundary)",
                target=FACE_XRAY,
            ),
        )
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from src.detectors.targets import blending_boundary

Batch = dict[str, Tensor]


@dataclass(frozen=True)
class DenseTarget:
    """What a dense output is compared with: a (B, 1, H, W) map in [0, 1] built from a batch.

    A pixel counts as positive where the target is above 0.5.
    """

    name: str
    description: str
    build: Callable[[Batch], Tensor]

    def __call__(self, batch: Batch) -> Tensor:
        return self.build(batch)


def _mask(batch: Batch) -> Tensor:
    return batch["mask"].float()


def _boundary(batch: Batch) -> Tensor:
    mask = batch["mask"]
    return blending_boundary(mask, tuple(mask.shape[-2:])).unsqueeze(1)


def soften_binary_masks(mask: Tensor) -> Tensor:
    """Masks (B, 1, H, W) whose values are all 0 or 1 blurred by a 3 x 3 Gaussian; others kept.

    Face X-ray's rule for its Eq. 2: ``4 M (1 - M)`` of a binary mask is zero
    everywhere, so a binary mask (a dataset's manipulation mask) is first made
    soft with a 3 x 3 Gaussian. The kernel is OpenCV's for that size, ``[1, 2,
    1] / 4`` on each axis (``cv2.GaussianBlur(mask, (3, 3), 0)``, the call of
    DeepfakeBench's Face X-ray data), with OpenCV's default reflected border.
    A soft blend mask (BI's feathered weights) is left as it is.
    """
    mask = mask.float()
    binary = ((mask == 0) | (mask == 1)).flatten(1).all(1).view(-1, 1, 1, 1)
    taps = torch.tensor([0.25, 0.5, 0.25], device=mask.device)
    kernel = (taps[:, None] * taps[None, :]).view(1, 1, 3, 3)
    blurred = F.conv2d(F.pad(mask, (1, 1, 1, 1), mode="reflect"), kernel)
    return torch.where(binary, blurred, mask)


def _xray(batch: Batch) -> Tensor:
    mask = soften_binary_masks(batch["mask"])
    return 4 * mask * (1 - mask)


#: The batch's manipulation (or blend) mask, zeros for reals.
MANIPULATION_MASK = DenseTarget("manipulation mask", "the batch's mask (1 = manipulated)", _mask)
#: Face X-ray's blending boundary ``4 M (1 - M)`` of the batch's mask M (1 on the seam).
BLENDING_BOUNDARY = DenseTarget(
    "blending boundary", "4 M (1 - M) of the batch's mask M (1 on the blend's seam)", _boundary
)
#: Face X-ray's target: ``4 M (1 - M)`` after :func:`soften_binary_masks` (a binary mask's
#: seam gets a 3 x 3 Gaussian's width; a soft blend mask gives its own boundary).
FACE_XRAY = DenseTarget(
    "face X-ray",
    "4 M (1 - M) of the batch's mask, a binary mask softened by a 3 x 3 Gaussian",
    _xray,
)


@dataclass(frozen=True)
class DenseOutput:
    """One declared dense output of a detector.

    Attributes:
        key: where the logits are: a :class:`~src.detectors.base.DetectorOutput`
            field (``mask_logit``, ``heatmap``) or a key of its ``extras``.
        name: a short name for people and files: ``dfbench predict`` writes
            ``masks/<set>/<video key>/<frame>_<name>.png`` (``<frame>.png`` for
            the name ``mask``) and show-masks titles its columns with it.
        description: what the map is.
        target: what it is scored against with the pixel metrics; None: not scored.
        metric_prefix: put before the pixel metric names (``pixel_auc`` ...);
            None gives ``"<name>_"``. Two scored outputs need different prefixes.
    """

    key: str
    name: str
    description: str
    target: DenseTarget | None = None
    metric_prefix: str | None = None

    @property
    def scored(self) -> bool:
        return self.target is not None

    @property
    def prefix(self) -> str:
        return f"{self.name}_" if self.metric_prefix is None else self.metric_prefix

    def file_name(self, frame: int) -> str:
        """The PNG a predicted map of frame ``frame`` is written to, in its video's folder."""
        return f"{frame:06d}.png" if self.name == "mask" else f"{frame:06d}_{self.name}.png"


def manipulation_mask_output(key: str = "mask_logit") -> DenseOutput:
    """The localisation mask scored with the suite's ``pixel_auc``, ``pixel_iou``, ``pixel_f1``."""
    return DenseOutput(
        key=key,
        name="mask",
        description="P(manipulated) per pixel",
        target=MANIPULATION_MASK,
        metric_prefix="",
    )


def check_dense_outputs(outputs: Sequence[DenseOutput], owner: str) -> None:
    """Fail when two declared outputs share a key, a name or (scored) a metric prefix."""
    for attribute in ("key", "name"):
        values = [getattr(output, attribute) for output in outputs]
        if len(set(values)) != len(values):
            raise ValueError(f"{owner}.dense_outputs: two outputs share a {attribute}: {values}")
    prefixes = [output.prefix for output in outputs if output.scored]
    if len(set(prefixes)) != len(prefixes):
        raise ValueError(
            f"{owner}.dense_outputs: two scored outputs share the metric prefix: {prefixes}"
        )
