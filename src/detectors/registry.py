"""A decorator registry of detectors, in the manner of timm's model registry.

A registered name maps to a :class:`~src.detectors.base.Detector` subclass and
default constructor arguments, so one generic class can stand under several
names (the baseline classifier is ``xception``, ``efficientnet_b4``, ...)::

    @register_detector("xception", backbone="legacy_xception")
    @register_detector("resnet50", backbone="resnet50")
    class BackboneClassifier(Detector): ...

    model = build_detector("xception", pretrained=False)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class RegistryEntry:
    name: str
    cls: type
    defaults: dict[str, Any] = field(default_factory=dict)


_REGISTRY: dict[str, RegistryEntry] = {}


def register_detector(name: str, **defaults: Any) -> Callable[[type[T]], type[T]]:
    """Register a Detector class under ``name`` with default constructor arguments."""

    def decorator(cls: type[T]) -> type[T]:
        existing = _REGISTRY.get(name)
        if existing is not None and existing.cls is not cls:
            raise ValueError(
                f"detector name {name!r} is already taken by {existing.cls.__qualname__}"
            )
        _REGISTRY[name] = RegistryEntry(name, cls, dict(defaults))
        return cls

    return decorator


def list_detectors() -> list[str]:
    """Names of every registered detector, sorted."""
    return sorted(_REGISTRY)


def registry_entry(name: str) -> RegistryEntry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(
            f"no detector named {name!r}; registered: {', '.join(list_detectors())}"
        ) from None


def build_detector(name: str, **kwargs: Any) -> Any:
    """Instantiate the detector registered as ``name``; ``kwargs`` override its defaults."""
    entry = registry_entry(name)
    return entry.cls(**{**entry.defaults, **kwargs})
