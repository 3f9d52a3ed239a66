"""PRLE (Cheng et al., primary region regularisation) as library parts.

A detector over-relies on a few "primary" regions of the face; PRLE trains it
on faces with those regions removed, so it has to use the rest as well. It is a
training-time augmentation for any backbone, in two stages:

* stage 1, static localisation (:mod:`.fusion`): the Grad-CAM maps of a zoo of
  trained detectors are fused into one map per training frame, offline
  (built by :mod:`src.tools.prle_maps`, stored as 8-bit images);
* stage 2, dynamic exploitation (:mod:`.removal`): in the data pipeline, with
  probability p, the top-alpha part of the frame's map is removed from the face.
"""

from src.augment.prle.fusion import (
    FUSIONS,
    LAMBDA,
    TABLE_V_FUSIONS,
    TAU1,
    average_fusion,
    decode_map,
    encode_map,
    fuse_maps,
    neighbourhood_flags,
    neighbourhood_max,
    neighbouring_fusion,
)
from src.augment.prle.removal import (
    LANDMARK_REGIONS,
    REGIONS,
    PrimaryRegionRemoval,
    landmark_region_mask,
    random_rectangle_mask,
    removal_count,
    top_fraction_mask,
)

__all__ = [
    "FUSIONS",
    "LAMBDA",
    "LANDMARK_REGIONS",
    "REGIONS",
    "TABLE_V_FUSIONS",
    "TAU1",
    "PrimaryRegionRemoval",
    "average_fusion",
    "decode_map",
    "encode_map",
    "fuse_maps",
    "landmark_region_mask",
    "neighbourhood_flags",
    "neighbourhood_max",
    "neighbouring_fusion",
    "random_rectangle_mask",
    "removal_count",
    "top_fraction_mask",
]
