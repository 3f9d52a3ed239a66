"""Small reusable network pieces shared by several detectors."""

from src.detectors.layers.heads import BinaryHead
from src.detectors.layers.llsm import LearnableLocalSimilarity
from src.detectors.layers.localisation import (
    CrossLevelAttention,
    ForgeryLocalisation,
    SkipFusionBlock,
)
from src.detectors.layers.multiscale import MultiResolutionHead, upsample_concat

__all__ = [
    "BinaryHead",
    "CrossLevelAttention",
    "ForgeryLocalisation",
    "LearnableLocalSimilarity",
    "MultiResolutionHead",
    "SkipFusionBlock",
    "upsample_concat",
]
