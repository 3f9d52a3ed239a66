"""Datasets, preprocessing and the shared DataModules."""

from src.data.base import DeepfakeDataModuleBase
from src.data.datamodule import DeepfakeDataModule
from src.data.synthetic import SyntheticFaceDataModule, SyntheticFaceDataset

__all__ = [
    "DeepfakeDataModule",
    "DeepfakeDataModuleBase",
    "SyntheticFaceDataModule",
    "SyntheticFaceDataset",
]
