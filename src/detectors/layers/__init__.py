"""Small reusable network pieces shared by several detectors."""

from src.detectors.layers.heads import BinaryHead

__all__ = ["BinaryHead"]
