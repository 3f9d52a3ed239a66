"""The detector registry (:class:`src.registry.Registry`), in the manner of timm's model registry.

A registered name maps to a :class:`~src.detectors.base.Detector` subclass and
default constructor arguments, so one generic class can stand under several
names (the baseline classifier is ``xception``, ``efficientnet_b4``, ...)::

    @register_detector("xception", backbone="legacy_xception")
    @register_detector("resnet50", backbone="resnet50")
    class BackboneClassifier(Detector): ...

    model = build_detector("xception", pretrained=False)

``import src.detectors`` imports every module of the package and its
subpackages (:func:`import_submodules`), so a new detector is one module
under ``src/detectors`` that registers itself: no list to edit.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from src.registry import Entry, Registry

DETECTORS: Registry[type] = Registry("detector")

register_detector = DETECTORS.register


def list_detectors() -> list[str]:
    """Names of every registered detector, sorted."""
    return DETECTORS.names()


def registry_entry(name: str) -> Entry[type]:
    return DETECTORS.entry(name)


def build_detector(name: str, **kwargs: Any) -> Any:
    """Instantiate the detector registered as ``name``; ``kwargs`` override its defaults."""
    return DETECTORS.build(name, **kwargs)


def import_submodules(package: str) -> list[str]:
    """Import every module of ``package`` and its subpackages (which registers their detectors).

    Returns:
        The names of the modules, in the order they were imported. An error in a
        module propagates: a broken detector must not silently vanish from the registry.
    """
    root = importlib.import_module(package)
    names = []
    for info in pkgutil.walk_packages(root.__path__, f"{package}."):
        importlib.import_module(info.name)
        names.append(info.name)
    return names
