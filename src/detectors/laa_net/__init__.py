"""LAA-Net: the detector (:mod:`.model`) and the importer of the authors' weights (:mod:`.importer`)."""

from src.detectors.laa_net.model import LAANet

__all__ = ["LAANet"]
