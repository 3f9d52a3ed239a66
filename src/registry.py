"""One small name -> object registry, used for detectors, dataset indexers and CLI verbs.

In the manner of timm's model registry: a decorator registers an object under a
name with optional default keyword arguments, and a lookup of an unknown name
fails with the list of known ones::

    DETECTORS = Registry("detector")

    @DETECTORS.register("xception", backbone="legacy_xception")
    class BackboneClassifier: ...

    DETECTORS.build("xception", pretrained=False)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from src.errors import DFBenchError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """A registered object, its name and the default arguments it is built with."""

    name: str
    obj: T
    defaults: dict[str, Any] = field(default_factory=dict)


class UnknownName(DFBenchError, KeyError):
    """A name no entry of a registry has (a typo in a config, usually); the message lists them."""


class Registry(Generic[T]):
    """Names -> objects, filled by a decorator.

    Args:
        kind: what is registered, for messages ("detector", "dataset indexer" ...).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, **defaults: Any) -> Callable[[T], T]:
        """Decorator: register the decorated object as ``name`` with ``defaults``."""

        def decorator(obj: T) -> T:
            existing = self._entries.get(name)
            if existing is not None and existing.obj is not obj:
                taken_by = getattr(existing.obj, "__qualname__", repr(existing.obj))
                raise ValueError(f"{self.kind} name {name!r} is already taken by {taken_by}")
            self._entries[name] = Entry(name, obj, dict(defaults))
            return obj

        return decorator

    def unregister(self, name: str) -> None:
        """Remove ``name`` (a test's temporary entry); unknown names fail as :meth:`entry` does."""
        self.entry(name)
        del self._entries[name]

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        return sorted(self._entries)

    def entry(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(self.names()) or "none"
            raise UnknownName(f"no {self.kind} named {name!r}; registered: {known}") from None

    def get(self, name: str) -> T:
        return self.entry(name).obj

    def build(self, name: str, **kwargs: Any) -> Any:
        """Call the object registered as ``name`` with its defaults updated by ``kwargs``."""
        entry = self.entry(name)
        return entry.obj(**{**entry.defaults, **kwargs})  # type: ignore[operator]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(self._entries[name] for name in self.names())

    def __len__(self) -> int:
        return len(self._entries)
