"""PRLE stage 1, static localisation: the fusion of a zoo's Grad-CAM maps into one map.

The building loop (Grad-CAM over the training frames, storage) lives in
:mod:`src.tools.prle_maps`; the fusion is here, as tensor functions over
``(..., T, H, W)`` stacks of T maps in [0, 1] (any leading batch dimensions):

* :func:`average_fusion`, Eq. 6: the mean over the T maps, zeroed where it is not
  above ``tau1``;
* :func:`neighbouring_fusion`, Eq. 7-8: a pixel is flagged when, for some pair
  of maps (A_j, A_k), the mean over its 3 x 3 neighbourhood N of
  ``|A_j(x_a) - A_k(x_i)|`` exceeds ``lam``; a flagged pixel takes the largest
  value of any map in N. The paper calls the method an expansion "based on the
  average fused maps with a higher tau1", while Eq. 8's second case sets
  unflagged pixels to 0; the default here keeps Eq. 6's map on unflagged pixels
  (the reading under which the average maps are expanded, as Fig. 3 shows), and
  ``unflagged="zero"`` is Eq. 8 taken literally. The neighbourhood is clipped at
  the border (|N| counts the pixels inside the map). Computed with one shifted
  copy per neighbour offset and a max-pool, never per pixel.

Table V's strategies are :data:`TABLE_V_FUSIONS`. Maps are stored as 8-bit
images: :func:`encode_map` / :func:`decode_map` round-trip within 0.5 / 255.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from src.errors import DFBenchError

Fusion = Literal["neighbouring", "average"]
FUSIONS: tuple[str, ...] = ("neighbouring", "average")

#: Paper Sec. IV-B: tau1 = 0.3, lambda = 0.15.
TAU1 = 0.3
LAMBDA = 0.15

#: Table V's rows as :func:`fuse_maps` arguments. The paper prints no value for
#: the "low tau1" average; 0.1 is chosen here. Its "high tau1" is the 0.3 that the
#: neighbouring fusion starts from.
TABLE_V_FUSIONS: dict[str, dict[str, Any]] = {
    "neighbouring": {"fusion": "neighbouring", "tau1": TAU1, "lam": LAMBDA},
    "average_low_tau1": {"fusion": "average", "tau1": 0.1},
    "average_high_tau1": {"fusion": "average", "tau1": TAU1},
}


def _check_stack(maps: Tensor | np.ndarray) -> Tensor:
    maps = torch.as_tensor(maps)
    if maps.dim() < 3:
        raise ValueError(f"maps must have shape (..., T, H, W), got {tuple(maps.shape)}")
    return maps.float()


def average_fusion(maps: Tensor, tau1: float = TAU1) -> Tensor:
    """Paper Eq. 6: the per-pixel mean of the T maps, 0 where it is not above ``tau1``.

    Args:
        maps: ``(..., T, H, W)`` maps in [0, 1].
        tau1: noise threshold.

    Returns:
        ``(..., H, W)``.
    """
    mean = _check_stack(maps).mean(dim=-3)
    return torch.where(mean > tau1, mean, torch.zeros_like(mean))


def _window_views(image: Tensor, radius: int) -> list[Tensor]:
    """``image`` (..., H, W) seen from each window offset: view o holds pixel i + o at i
    (0 outside the image). Padded once; the views share its memory."""
    height, width = image.shape[-2:]
    padded = F.pad(image, (radius, radius, radius, radius), value=0.0)
    size = 2 * radius + 1
    return [
        padded[..., dy : dy + height, dx : dx + width] for dy in range(size) for dx in range(size)
    ]


def neighbourhood_flags(maps: Tensor, lam: float = LAMBDA, radius: int = 1) -> Tensor:
    """Paper Eq. 7: g(x_i) for every pixel, as a bool ``(..., H, W)`` tensor.

    g(x_i) = 1 when some ordered pair of maps (A_j, A_k), j = k included, has
    ``mean over x_a in N(x_i) of |A_j(x_a) - A_k(x_i)| > lam``. N is the
    (2 radius + 1)^2 window around x_i, centre included, clipped at the border.

    For fixed j the mean is a convex function of the centre value c = A_k(x_i),
    so its largest value over k is reached at the smallest or the largest of the
    T centre values: only those two are tried (exact, and fewer passes for T > 2).
    Neighbours outside the image are read as 0 and their share ``|0 - c|`` is
    taken back out afterwards, which avoids masking every shifted copy.
    """
    maps = _check_stack(maps)
    centres = [maps.amin(dim=-3, keepdim=True), maps.amax(dim=-3, keepdim=True)]
    if maps.shape[-3] == 1:
        centres = centres[:1]
    inside = sum(_window_views(torch.ones_like(maps[..., :1, :, :]), radius))
    totals = [torch.zeros_like(maps) for _ in centres]
    for shifted in _window_views(maps, radius):
        for centre, total in zip(centres, totals, strict=True):
            total += (shifted - centre).abs_()
    outside = (2 * radius + 1) ** 2 - inside
    flags = torch.zeros_like(inside[..., 0, :, :], dtype=torch.bool)
    for centre, total in zip(centres, totals, strict=True):
        mean = (total - centre.abs() * outside) / inside
        flags |= (mean > lam).any(dim=-3)
    return flags


def neighbourhood_max(maps: Tensor, radius: int = 1) -> Tensor:
    """Eq. 8's value: the largest value of any map in the pixel's clipped window."""
    maps = _check_stack(maps)
    across = maps.amax(dim=-3)
    flat = across.reshape(-1, 1, *across.shape[-2:])
    pooled = F.max_pool2d(flat, kernel_size=2 * radius + 1, stride=1, padding=radius)
    return pooled.reshape(across.shape)


def neighbouring_fusion(
    maps: Tensor,
    tau1: float = TAU1,
    lam: float = LAMBDA,
    radius: int = 1,
    unflagged: Literal["average", "zero"] = "average",
) -> Tensor:
    """Paper Eq. 7-8: flagged pixels take their neighbourhood's maximum over all maps.

    Args:
        maps: ``(..., T, H, W)`` maps in [0, 1].
        tau1: threshold of the Eq. 6 average kept on unflagged pixels.
        lam: Eq. 7's lambda.
        radius: neighbourhood half-width (1: the paper's 3 x 3).
        unflagged: ``"average"`` (default) keeps Eq. 6's value where g = 0, the
            expansion of the average map the paper describes; ``"zero"`` is Eq. 8
            literally (0 where g = 0). See the module docstring.

    Returns:
        ``(..., H, W)``.
    """
    if unflagged not in ("average", "zero"):
        raise DFBenchError(f"unflagged must be 'average' or 'zero', got {unflagged!r}")
    maps = _check_stack(maps)
    flags = neighbourhood_flags(maps, lam, radius)
    base = average_fusion(maps, tau1) if unflagged == "average" else torch.zeros_like(flags).float()
    return torch.where(flags, neighbourhood_max(maps, radius), base)


def fuse_maps(
    maps: Tensor,
    fusion: Fusion = "neighbouring",
    tau1: float = TAU1,
    lam: float = LAMBDA,
    radius: int = 1,
    unflagged: Literal["average", "zero"] = "average",
) -> Tensor:
    """One fused map per ``(T, H, W)`` stack with the chosen strategy (Table V)."""
    if fusion == "average":
        return average_fusion(maps, tau1)
    if fusion == "neighbouring":
        return neighbouring_fusion(maps, tau1, lam, radius, unflagged)
    raise DFBenchError(f"unknown PRLE fusion {fusion!r}; choose from {FUSIONS}")


def encode_map(fused: np.ndarray | Tensor) -> np.ndarray:
    """A map in [0, 1] as uint8 (rounded, so decoding is within 0.5 / 255)."""
    if isinstance(fused, Tensor):
        fused = fused.detach().cpu().numpy()
    return np.round(np.clip(fused, 0.0, 1.0) * 255.0).astype(np.uint8)


def decode_map(stored: np.ndarray) -> np.ndarray:
    """A stored uint8 map back to float32 in [0, 1]; float maps pass through."""
    if stored.dtype == np.uint8:
        return stored.astype(np.float32) / 255.0
    return stored.astype(np.float32, copy=False)
