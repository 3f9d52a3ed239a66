"""Generated data for tests and demos: synthetic people, the in-memory DataModule, and
small copies of every dataset's official on-disk layout.

This package may use :mod:`src.data` (it writes datasets and preprocesses them);
:mod:`src.data` never imports it. The DataModule (and with it torch and Lightning)
is imported on first use, so that the on-disk writer and ``dfbench synth --help``
stay light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from src.synthetic.memory import FAKE_STYLES, SyntheticFaceDataModule, SyntheticFaceDataset

__all__ = ["FAKE_STYLES", "SyntheticFaceDataModule", "SyntheticFaceDataset"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from src.synthetic import memory

        return getattr(memory, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
