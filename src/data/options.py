"""Options checked against their annotations (indexer options, preprocessing settings).

``dfbench index -o NAME=VALUE`` hands over whatever JSON (or a bare string)
the user typed; an indexer would otherwise fail deep inside with a traceback,
or quietly compare a string with a number. The annotation of each keyword
option is the schema, so an option is declared and checked in one place::

    val_fraction: Annotated[float, Interval(0, 1, high_open=True)] = 0.0
    mode: Literal["auto", "archives", "extracted"] = "auto"
    compression: str | Sequence[str] = "c23"

:func:`matches` answers whether a value fits; :func:`describe` words the
annotation for the message ("a number in [0, 1)", "one of 'auto', ...").
Supported: ``bool``, ``int``, ``float`` (ints allowed, bools not; numpy
numbers count as numbers), ``str``,
``Path`` (any path-like or string), ``None``, ``Literal``, unions,
``Sequence[...]`` (a list or tuple, never a bare string), ``Annotated`` with
an :class:`Interval`, and ``Any``.
"""

from __future__ import annotations

import math
import numbers
import os
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Interval:
    """The range a number option may take; ``None`` leaves a side open to infinity."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value: float) -> bool:
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return not (
            self.high is not None and (value > self.high or (self.high_open and value == self.high))
        )

    def __str__(self) -> str:
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        if self.low is None:
            return f"{'<' if self.high_open else '<='} {self.high:g}"
        left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
        return f"in {left}{self.low:g}, {self.high:g}{right}"


def _parts(hint: Any) -> tuple[Any, tuple]:
    return typing.get_origin(hint), typing.get_args(hint)


def _is_union(origin: Any) -> bool:
    return origin is typing.Union or origin is types.UnionType


def matches(value: Any, hint: Any) -> bool:
    """Whether ``value`` is allowed by the annotation ``hint``."""
    origin, args = _parts(hint)
    if hint is Any:
        return True
    if origin is typing.Annotated:
        interval = next((a for a in args[1:] if isinstance(a, Interval)), None)
        return matches(value, args[0]) and (interval is None or value in interval)
    if _is_union(origin):
        return any(matches(value, arg) for arg in args)
    if origin is typing.Literal:
        return any(value == arg and type(value) is type(arg) for arg in args)
    if origin in (Sequence, list, tuple):
        item = args[0] if args else Any
        return isinstance(value, list | tuple) and all(matches(v, item) for v in value)
    if hint is None or hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)
    if hint is float:
        return (
            isinstance(value, numbers.Real)
            and not isinstance(value, bool | np.bool_)
            and math.isfinite(float(value))
        )
    if hint is str:
        return isinstance(value, str)
    if hint is Path:
        return isinstance(value, str | os.PathLike)
    return isinstance(value, hint) if isinstance(hint, type) else True


_SINGULAR = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
_PLURAL = {bool: "true/false values", int: "integers", float: "numbers", str: "strings"}


def _join(words: list[str]) -> str:
    words = list(dict.fromkeys(words))
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def describe(hint: Any, plural: bool = False) -> str:
    """The annotation in words: ``"a number in [0, 1)"``, ``"a string or a list of strings"``."""
    origin, args = _parts(hint)
    if hint is Any:
        return "values" if plural else "any value"
    if origin is typing.Annotated:
        interval = next((a for a in args[1:] if isinstance(a, Interval)), None)
        words = describe(args[0], plural)
        return f"{words} {interval}" if interval is not None else words
    if _is_union(origin):
        return _join([describe(arg, plural) for arg in args])
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (Sequence, list, tuple):
        return ("lists" if plural else "a list") + " of " + describe(args[0] if args else Any, True)
    if hint is None or hint is type(None):
        return "null"
    if hint is Path:
        return "paths" if plural else "a path"
    table = _PLURAL if plural else _SINGULAR
    return table.get(hint, getattr(hint, "__name__", str(hint)))
