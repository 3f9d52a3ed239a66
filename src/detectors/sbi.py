"""The SBI detector (Shiohara & Yamasaki, CVPR 2022) and the importer of its authors' weights.

SBI's contribution is its training data (:mod:`src.augment.sbi`); its detector
is a plain classifier, registered as ``sbi``: EfficientNet-B4 with AdvProp
ImageNet weights (timm ``tf_efficientnet_b4.ap_in1k``, the authors'
``EfficientNet.from_pretrained("efficientnet-b4", advprop=True)``) at 380 px,
global average pooling, dropout 0.4 and one logit. As in the authors'
``efficientnet_pytorch`` model, drop-connect (timm's drop-path) rises to 0.2
over the blocks and batch norm runs with momentum 0.01 (TF's 0.99 decay)
and eps 1e-3.

Input: the authors divide the face by 255 and subtract nothing (their
training ``SBI_Dataset`` and inference scripts), although AdvProp weights
were made for ``2x - 1``; their released weights are trained on ``[0, 1]``
input, so the contract is mean 0, std 1 (timm's record for the AdvProp
weights, mean = std = 0.5, is not used).

Head: the authors' ``_fc`` has two classes trained with cross-entropy; here
one logit with BCE. Cross-entropy over ``(z0, z1)`` is BCE on ``z1 - z0``, so
:func:`authors_to_dfbench` imports their head exactly as ``w1 - w0``,
``b1 - b0`` (``sigmoid(logit) = softmax(z)[1]``).

Recipe (``configs/detectors/sbi.yaml``, the defaults here too): SAM (rho
0.05) around SGD (lr 1e-3, momentum 0.9), lr constant for 75 of 100 epochs
then decayed linearly (:class:`~src.detectors.training.LinearDecay`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from src.checkpoint_files import write_detector_checkpoint
from src.contracts import InputContract
from src.detectors.authors_checkpoints import load_exactly, read_state_dict
from src.detectors.backbones import Pretrained
from src.detectors.baseline import BackboneClassifier
from src.detectors.efficientnet_keys import block_positions, to_timm
from src.detectors.registry import register_detector
from src.detectors.training import LinearDecay

#: The authors' ``efficientnet_pytorch`` settings for EfficientNet-B4, in timm's words.
AUTHORS_BACKBONE_KWARGS: dict[str, Any] = {"drop_path_rate": 0.2, "bn_momentum": 0.01}


@register_detector("sbi")
class SBIDetector(BackboneClassifier):
    """EfficientNet-B4 (AdvProp) to one logit, with SBI's input contract and recipe defaults.

    Args:
        backbone: timm model name (default ``tf_efficientnet_b4.ap_in1k``).
        pretrained: see :class:`~src.detectors.baseline.BackboneClassifier`.
        drop_rate: dropout before the logit (the authors' 0.4).
        backbone_kwargs: ``timm.create_model`` arguments, over
            :data:`AUTHORS_BACKBONE_KWARGS` (drop-path 0.2, batch-norm momentum 0.01).
        sam_rho: SAM's radius (0.05, the authors' default; None: plain SGD).
        **kwargs: :class:`~src.detectors.baseline.BackboneClassifier` and
            :class:`~src.detectors.base.Detector` arguments.
    """

    def __init__(
        self,
        backbone: str = "tf_efficientnet_b4.ap_in1k",
        pretrained: Pretrained = False,
        drop_rate: float = 0.4,
        backbone_kwargs: dict[str, Any] | None = None,
        sam_rho: float | None = 0.05,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            backbone=backbone,
            pretrained=pretrained,
            drop_rate=drop_rate,
            backbone_kwargs=AUTHORS_BACKBONE_KWARGS | (backbone_kwargs or {}),
            sam_rho=sam_rho,
            **kwargs,
        )
        # The authors feed faces / 255 (see the module docstring).
        self.default_contract = InputContract(
            self.default_contract.input_size, (0.0,) * 3, (1.0,) * 3
        )

    def default_optimizer(self, params: Any) -> torch.optim.Optimizer:
        return torch.optim.SGD(params, lr=1e-3, momentum=0.9)

    def default_lr_scheduler(self, optimizer: torch.optim.Optimizer) -> LinearDecay:
        return LinearDecay(optimizer, decay_start=0.75, levels=100)


# ------------------------------------------------------------------------ importer
def authors_to_dfbench(state_dict: dict[str, Tensor], model: SBIDetector) -> dict[str, Tensor]:
    """The authors' ``Detector`` state dict in :class:`SBIDetector`'s names, float32.

    ``net.<efficientnet_pytorch name>`` becomes ``backbone.<timm name>``
    (:mod:`src.detectors.efficientnet_keys`); the two-class ``net._fc`` becomes
    the one-logit ``head.fc`` holding the difference of its rows.

    Raises:
        KeyError: a name outside their model.
        ValueError: a classifier that does not have two classes.
    """
    positions = block_positions(model.backbone.blocks)
    mapped = {}
    for key, value in state_dict.items():
        if not key.startswith("net."):
            raise KeyError(key)
        name = key.removeprefix("net.")
        if name in ("_fc.weight", "_fc.bias"):
            if value.shape[0] != 2:
                raise ValueError(f"{key} has {value.shape[0]} classes, their model has 2")
            # Weight (2, C) -> (1, C), bias (2,) -> (1,): logit = z1 - z0.
            mapped[f"head.fc.{name.removeprefix('_fc.')}"] = (value[1] - value[0]).unsqueeze(0)
            continue
        mapped[f"backbone.{to_timm(name, positions)}"] = value
    return {k: v.float() if v.is_floating_point() else v for k, v in mapped.items()}


def load_authors_checkpoint(
    path: str | Path, *, trusted: bool = False, **overrides: Any
) -> SBIDetector:
    """An :class:`SBIDetector` holding the weights of the authors' file (strict load).

    Their file (``FFraw.tar``, ``FFc23.tar`` or their training's
    ``weights/*.tar``) is ``{"model": state_dict, "optimizer": ..., "epoch": ...}``.

    Args:
        path: their released file.
        trusted: load it even if it holds more than tensors and plain values
            (its pickle may then run code).
        **overrides: :class:`SBIDetector` arguments.
    """
    state_dict = read_state_dict(path, "model", "SBI", trusted=trusted)
    model = SBIDetector(**overrides)
    return load_exactly(model, state_dict, authors_to_dfbench, path, "SBI detector")


def write_checkpoint(
    source: str | Path, out: str | Path, *, trusted: bool = False
) -> tuple[Path, int]:
    """Convert the authors' file into a Lightning checkpoint ``dfbench test`` takes.

    Returns:
        The written path and the number of tensors it holds.
    """
    return write_detector_checkpoint(load_authors_checkpoint(source, trusted=trusted), out)
