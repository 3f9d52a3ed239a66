"""Augmentation: robustness perturbations and the papers' training recipes.

Pseudo-fake generators (SBI, BI) and PRLE masking live in their own modules of
this package and are imported from there.
"""

from src.augment.perturb import LEVELS, PARAMETERS, PERTURBATIONS, Perturbation, perturb
from src.augment.recipes import (
    RECIPE_NAMES,
    PairTransform,
    Recipe,
    build_pair_transform,
    build_recipe,
)

__all__ = [
    "LEVELS",
    "PARAMETERS",
    "PERTURBATIONS",
    "RECIPE_NAMES",
    "PairTransform",
    "Perturbation",
    "Recipe",
    "build_pair_transform",
    "build_recipe",
    "perturb",
]
