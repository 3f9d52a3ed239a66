"""Detectors as the demo profile builds them, for the benchmark scripts beside this file."""

from __future__ import annotations

import torch

from src.detectors.base import Detector
from src.detectors.registry import build_detector

#: What the demo changes beyond ``pretrained: false`` and the input size, per detector:
#: VGG-16's narrowed head (configs/profiles/vgg16_demo.yaml).
DEMO_KWARGS = {"vgg16": {"backbone_kwargs": {"mlp_ratio": 0.125}}}


def demo_detector(name: str, size: int = 64, seed: int = 0) -> Detector:
    """``name`` from scratch at ``size`` px, seeded, as a demo cell builds it."""
    torch.manual_seed(seed)
    return build_detector(name, pretrained=False, input_size=size, **DEMO_KWARGS.get(name, {}))
