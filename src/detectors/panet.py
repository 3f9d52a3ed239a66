"""PANet (Guo et al.): RECCE with progressive attention, EMA (coarse) then CBAM (fine).

The paper adds Efficient Multi-scale Attention (EMAM) to focus on the face's
key regions and CBAM (its "SCAM") to refine fine-grained traces, coarse to
fine, but does not say where in RECCE they sit. Each plausible placement is
an option:

``ema_at``
    * ``"embedding"`` (default): on the block4 embedding, before it feeds the
      decoder and block5, so both the reconstruction and the classifier see
      the attended feature (and the metric loss reads it);
    * ``"decoder"``: on the decoder's stage-2 and stage-4 maps where they enter
      the graph reasoning (one EMA each; the decoder itself is unchanged);
    * ``"fusion"``: on the fused feature after the graph-reasoning residual.
``cbam_at``
    * ``"guided"`` (default): after the reconstruction-guided attention, before
      block9;
    * ``"final"``: on the 2048-channel map before pooling.

The default pairs the earliest coarse placement with a later fine one: the
paper calls EMAM the coarse, region-level stage acting on the common features
the Xception encoder extracts, and SCAM the refinement that follows, which
puts EMA on the shared embedding and CBAM downstream of RECCE's own
(reconstruction-guided) attention, where there is still spatial resolution
to refine (19 x 19 rather than 10 x 10 at 299 px).

``use_ema=False`` is "RECCE + CBAM", ``use_cbam=False`` "RECCE + EMA"; both off
is RECCE. The paper's EMA has 8 groups (``ema_groups``), which divides 728,
256 and 128.
"""

from __future__ import annotations

from typing import Any

from src.detectors.layers.cbam import CBAM
from src.detectors.layers.ema import EfficientMultiScaleAttention
from src.detectors.recce import RECCE
from src.detectors.registry import register_detector
from src.errors import DFBenchError

#: EMA placements and the attention points each one uses.
EMA_PLACEMENTS = {
    "embedding": ("embedding",),
    "decoder": ("decoder2", "decoder4"),
    "fusion": ("fusion",),
}
#: CBAM placements and their attention points.
CBAM_PLACEMENTS = {"guided": ("guided",), "final": ("final",)}


def _points(option: str, value: str, placements: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    if value not in placements:
        raise DFBenchError(
            f"PANet {option}={value!r} is not a placement; choose one of {list(placements)}"
        )
    return placements[value]


@register_detector("panet")
class PANet(RECCE):
    """RECCE + EMA + CBAM at configurable points (see the module docstring).

    Args:
        use_ema: insert EMA.
        use_cbam: insert CBAM.
        ema_at: EMA placement (``embedding``, ``decoder``, ``fusion``).
        cbam_at: CBAM placement (``guided``, ``final``).
        ema_groups: EMA channel groups (8 in the paper); must divide the channels
            at the chosen points.
        cbam_reduction: CBAM's channel-MLP reduction (16).
        **kwargs: :class:`~src.detectors.recce.RECCE` arguments.
    """

    def __init__(
        self,
        use_ema: bool = True,
        use_cbam: bool = True,
        ema_at: str = "embedding",
        cbam_at: str = "guided",
        ema_groups: int = 8,
        cbam_reduction: int = 16,
        **kwargs: Any,
    ) -> None:
        ema_points = _points("ema_at", ema_at, EMA_PLACEMENTS)
        cbam_points = _points("cbam_at", cbam_at, CBAM_PLACEMENTS)
        super().__init__(**kwargs)
        if use_ema:
            for point in ema_points:
                self.add_attention(
                    point, EfficientMultiScaleAttention(self.attention_channels(point), ema_groups)
                )
        if use_cbam:
            for point in cbam_points:
                self.add_attention(point, CBAM(self.attention_channels(point), cbam_reduction))
