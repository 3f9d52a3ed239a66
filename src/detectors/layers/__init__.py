"""Small reusable network pieces shared by several detectors."""

from src.detectors.layers.heads import BinaryHead
from src.detectors.layers.llsm import LearnableLocalSimilarity
from src.detectors.layers.localisation import (
    CrossLevelAttention,
    ForgeryLocalisation,
    SkipFusionBlock,
)

__all__ = [
    "BinaryHead",
    "CrossLevelAttention",
    "ForgeryLocalisation",
    "LearnableLocalSimilarity",
    "SkipFusionBlock",
]
