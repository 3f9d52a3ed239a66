"""Real data: indexers, preprocessing, frame tables and the shared DataModules.

Generated data (the in-memory synthetic faces, synthetic dataset copies) lives in
:mod:`src.synthetic`, which builds on this package and is never imported by it.
"""

from src.data.base import DeepfakeDataModuleBase
from src.data.datamodule import DeepfakeDataModule

__all__ = ["DeepfakeDataModule", "DeepfakeDataModuleBase"]
