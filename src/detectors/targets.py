"""Dense targets built on the device from the batch's ``label`` and ``mask`` (any detector).

Which samples carry dense supervision is decided once, by
:func:`dense_supervision`: reals (their target is all zero) and fakes with a
mask; a fake whose dataset has no mask gets no dense loss at all.

LAA-Net's targets:

From the batch's mask M (1 where the face was pasted, soft at the seam), on
the device and vectorised over the batch:

* the blending boundary ``B = 4 M (1 - M)`` (paper Eq. 2), 1 on the seam;
* vulnerable points: where B is largest (paper Eq. 3: the argmax), or, as
  the authors' code does, every pixel equal to the maximum of its quadrant;
* a heatmap of unnormalised Gaussians centred on them (peak exactly 1),
  sigma = r / 3 with CornerNet's radius r for an IoU of 0.7 over the run
  lengths of ``B > 0.5`` through the point; each is cut at r (= 3 sigma), as
  CornerNet draws them;
* the self-consistency map ``C = 1 - |B[u, v] - B|`` for one vulnerable point
  (u, v) drawn at random (paper Eq. 7).

Reals (label 0) get all-zero targets.

The local-similarity Y-net's targets: the pair map of its similarity module
(:func:`pair_map_target`, the mask at the feature size compared over every
ordered pair of positions) and the localisation mask at the prediction's size
(:func:`localisation_target`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def dense_supervision(batch: dict[str, Tensor]) -> Tensor:
    """(B,) bool: samples whose dense targets are known (reals, and fakes with a mask)."""
    return (batch["label"] < 0.5) | batch["has_mask"].bool()


def blending_boundary(mask: Tensor, size: tuple[int, int]) -> Tensor:
    """``4 M (1 - M)`` at ``size``: mask (B, 1, H, W) in [0, 1] -> (B, h, w)."""
    small = F.interpolate(mask.float(), size=size, mode="area")[:, 0]
    return 4 * small * (1 - small)


def vulnerable_points(boundary: Tensor, per_quadrant: bool = False) -> Tensor:
    """(B, h, w) bool: the argmax of each map, or every quadrant maximum (ties kept)."""
    b, h, w = boundary.shape
    if not per_quadrant:
        flat = boundary.flatten(1)
        points = torch.zeros_like(flat, dtype=torch.bool)
        points[torch.arange(b, device=flat.device), flat.argmax(1)] = True
        return points.view(b, h, w)
    hh, hw = h // 2, w // 2
    points = torch.zeros_like(boundary, dtype=torch.bool)
    for rows in (slice(0, hh), slice(hh, h)):
        for cols in (slice(0, hw), slice(hw, w)):
            quadrant = boundary[:, rows, cols]
            peak = quadrant.flatten(1).amax(1).view(b, 1, 1)
            points[:, rows, cols] = (quadrant == peak) & (peak > 0)
    return points


def run_lengths(inside: Tensor) -> tuple[Tensor, Tensor]:
    """Length of the horizontal and vertical run of True through every pixel (0 where False)."""

    def along_last(x: Tensor) -> Tensor:
        n = x.shape[-1]
        index = torch.arange(n, device=x.device).expand_as(x)
        previous_false = torch.where(~x, index, torch.full_like(index, -1)).cummax(-1).values
        flipped = torch.where(~x, index, torch.full_like(index, n)).flip(-1)
        next_false = (-(-flipped).cummax(-1).values).flip(-1)
        return torch.where(x, next_false - previous_false - 1, torch.zeros_like(index))

    return along_last(inside), along_last(inside.transpose(-1, -2)).transpose(-1, -2)


def gaussian_radius(height: Tensor, width: Tensor, min_overlap: float = 0.7) -> Tensor:
    """CornerNet's radius: the smallest of its three cases for a box of (height, width)."""
    h, w, o = height.float(), width.float(), min_overlap
    b1, c1 = h + w, w * h * (1 - o) / (1 + o)
    r1 = (b1 + torch.sqrt((b1**2 - 4 * c1).clamp_min(0))) / 2
    b2, c2 = 2 * (h + w), (1 - o) * w * h
    r2 = (b2 + torch.sqrt((b2**2 - 16 * c2).clamp_min(0))) / 2
    a3, b3, c3 = 4 * o, -2 * o * (h + w), (o - 1) * w * h
    r3 = (b3 + torch.sqrt((b3**2 - 4 * a3 * c3).clamp_min(0))) / 2
    return torch.minimum(torch.minimum(r1, r2), r3)


def heatmap_target(boundary: Tensor, points: Tensor, min_overlap: float = 0.7) -> Tensor:
    """(B, h, w): the max over vulnerable points of Gaussians with peak 1 and sigma = r / 3.

    The radius is floored at 1 pixel (a point off every B > 0.5 run would get 0).
    """
    b, h, w = boundary.shape
    horizontal, vertical = run_lengths(boundary > 0.5)
    batch, ys, xs = points.nonzero(as_tuple=True)
    radius = gaussian_radius(
        vertical[batch, ys, xs], horizontal[batch, ys, xs], min_overlap
    ).clamp_min(1)
    sigma = radius / 3
    grid_y = torch.arange(h, device=boundary.device, dtype=torch.float32).view(1, h, 1)
    grid_x = torch.arange(w, device=boundary.device, dtype=torch.float32).view(1, 1, w)
    dy = grid_y - ys.view(-1, 1, 1).float()
    dx = grid_x - xs.view(-1, 1, 1).float()
    r, s = radius.view(-1, 1, 1), sigma.view(-1, 1, 1)
    gaussians = torch.exp(-(dx**2 + dy**2) / (2 * s**2))
    gaussians = gaussians * ((dx.abs() <= r) & (dy.abs() <= r))
    heatmap = torch.zeros(b, h * w, device=boundary.device)
    heatmap = heatmap.scatter_reduce(
        0,
        batch.view(-1, 1).expand(-1, h * w),
        gaussians.flatten(1),
        reduce="amax",
        include_self=True,
    )
    return heatmap.view(b, h, w)


def consistency_target(
    boundary: Tensor, points: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """(B, h, w): ``1 - |B[u, v] - B|`` for one vulnerable point per map, drawn at random."""
    b = boundary.shape[0]
    weights = points.flatten(1).float()
    weights[weights.sum(1) == 0] = (
        1.0  # no point (all-zero map): any pixel, the target is zeroed below
    )
    chosen = torch.multinomial(weights, 1, generator=generator).squeeze(1)
    value = boundary.flatten(1)[torch.arange(b, device=boundary.device), chosen].view(b, 1, 1)
    return 1 - (value - boundary).abs()


def laa_targets(
    mask: Tensor, label: Tensor, size: tuple[int, int], per_quadrant: bool = False
) -> dict[str, Tensor]:
    """Boundary, vulnerable points, heatmap and consistency targets; zeros for reals."""
    fake = (label > 0.5).view(-1, 1, 1)
    boundary = blending_boundary(mask, size) * fake
    points = vulnerable_points(boundary, per_quadrant) & fake
    return {
        "boundary": boundary,
        "points": points,
        "heatmap": heatmap_target(boundary, points) * fake,
        "consistency": consistency_target(boundary, points) * fake,
    }


# ------------------------------------------------------ local-similarity Y-net
def pair_map_target(
    mask: Tensor, label: Tensor, size: tuple[int, int], threshold: float = 0.5
) -> Tensor:
    """(B, hw, hw): 1 where exactly one position of the pair is manipulated (Y-net Eq. 3-4).

    The mask (B, 1, H, W) is averaged down to the feature size (area
    interpolation: each cell holds the manipulated fraction of its pixels),
    flattened row-major to m', and every ordered pair compared:
    ``M_GT[i, j] = |m'_i - m'_j| > threshold``. The paper binarises after the
    difference and gives no threshold; with a hard mask the result is the
    "exactly one manipulated" map whatever the threshold in (0, 1). Reals
    (label 0) get all zeros.
    """
    small = F.interpolate(mask.float(), size=size, mode="area").flatten(1)  # (B, hw)
    difference = (small.unsqueeze(2) - small.unsqueeze(1)).abs()
    fake = (label > 0.5).view(-1, 1, 1)
    return ((difference > threshold) & fake).float()


def localisation_target(mask: Tensor, label: Tensor, size: tuple[int, int]) -> Tensor:
    """(B, 1, *size): the manipulation (or blend) mask at the prediction's size; zeros for reals.

    Soft values are kept (BCE accepts soft targets; a blend mask is soft at the
    seam). Resized only when the sizes differ: area averaging down, bilinear up.
    """
    mask = mask.float()
    if tuple(mask.shape[-2:]) != tuple(size):
        shrinking = size[0] * size[1] < mask.shape[-2] * mask.shape[-1]
        if shrinking:
            mask = F.interpolate(mask, size=size, mode="area")
        else:
            mask = F.interpolate(mask, size=size, mode="bilinear", align_corners=False)
    return mask * (label > 0.5).float().view(-1, 1, 1, 1)
