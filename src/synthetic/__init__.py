"""Generated data for tests and demos: synthetic people, the in-memory DataModule, and
small copies of every dataset's official on-disk layout.

This package may use :mod:`src.data` (it writes datasets and preprocesses them);
:mod:`src.data` never imports it.
"""

from src.synthetic.memory import FAKE_STYLES, SyntheticFaceDataModule, SyntheticFaceDataset

__all__ = ["FAKE_STYLES", "SyntheticFaceDataModule", "SyntheticFaceDataset"]
