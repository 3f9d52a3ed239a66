"""Detectors behind one interface, registered by name.

>>> from src.detectors import build_detector, list_detectors
>>> model = build_detector("xception", pretrained=False)

Importing the package imports every module under it, so a detector module
added here registers itself without any list to edit (docs/adding-a-detector.md).
"""

from src.contracts import InputContract
from src.detectors.backbones import PretrainedWeightsUnavailable, create_backbone
from src.detectors.base import Detector, DetectorOutput
from src.detectors.baseline import BackboneClassifier
from src.detectors.f3net import F3Net
from src.detectors.laa_net import LAANet
from src.detectors.panet import PANet
from src.detectors.recce import RECCE
from src.detectors.registry import (
    build_detector,
    import_submodules,
    list_detectors,
    register_detector,
)
from src.detectors.ynet import YNet

import_submodules(__name__)

__all__ = [
    "BackboneClassifier",
    "Detector",
    "DetectorOutput",
    "F3Net",
    "InputContract",
    "LAANet",
    "PANet",
    "RECCE",
    "PretrainedWeightsUnavailable",
    "YNet",
    "build_detector",
    "create_backbone",
    "list_detectors",
    "register_detector",
]
