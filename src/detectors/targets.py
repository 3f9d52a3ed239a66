"""Dense targets built on the device from the batch's ``label`` and ``mask`` (any detector).

Which samples carry dense supervision is decided once, by
:func:`dense_supervision`: reals (their target is all zero) and fakes with a
mask; a fake whose dataset has no mask gets no dense loss at all.

LAA-Net's targets:

From the batch's mask M (1 where the face was pasted, soft at the seam), on
the device and vectorised over the batch:

* the blending boundary ``B = 4 M (1 - M)`` (paper Eq. 2), 1 on the seam;
* vulnerable points: where B is largest (paper Eq. 3: the argmax);
* a heatmap of unnormalised Gaussians centred on them (peak exactly 1),
  sigma = r / 3 with CornerNet's radius r for an IoU of 0.7 over the run
  lengths of ``B > 0.5`` through the point; each is cut at r (= 3 sigma), as
  CornerNet draws them;
* the self-consistency map ``C = 1 - |B[u, v] - B|`` for one vulnerable point
  (u, v) drawn at random (paper Eq. 7).

Reals (label 0) get all-zero targets. :func:`authors_laa_targets` builds them
as the authors' code does instead (uint8 boundary, every quadrant maximum with
its ties as a vulnerable point, about 11 Gaussians per fake).

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


def draw_gaussians(
    shape: tuple[int, int, int],
    batch: Tensor,
    centre: tuple[Tensor, Tensor],
    sigma: Tensor,
    rows: tuple[Tensor, Tensor],
    cols: tuple[Tensor, Tensor],
) -> Tensor:
    """(B, h, w): per map, the max of unnormalised Gaussians (peak 1) drawn inside windows.

    Gaussian k belongs to map ``batch[k]``, is centred at ``centre[k]`` (y, x) with
    ``sigma[k]`` and is drawn on rows ``[rows[0][k], rows[1][k])`` and columns
    ``[cols[0][k], cols[1][k])`` only. Every Gaussian is drawn at once.
    """
    b, h, w = shape
    device = sigma.device
    grid_y = torch.arange(h, device=device, dtype=torch.float32).view(1, h, 1)
    grid_x = torch.arange(w, device=device, dtype=torch.float32).view(1, 1, w)
    cy, cx = (c.float().view(-1, 1, 1) for c in centre)
    s = sigma.float().view(-1, 1, 1)
    inside = (
        (grid_y >= rows[0].view(-1, 1, 1))
        & (grid_y < rows[1].view(-1, 1, 1))
        & (grid_x >= cols[0].view(-1, 1, 1))
        & (grid_x < cols[1].view(-1, 1, 1))
    )
    gaussians = torch.exp(-((grid_x - cx) ** 2 + (grid_y - cy) ** 2) / (2 * s**2)) * inside
    heatmap = torch.zeros(b, h * w, device=device)
    heatmap = heatmap.scatter_reduce(
        0,
        batch.view(-1, 1).expand(-1, h * w),
        gaussians.flatten(1),
        reduce="amax",
        include_self=True,
    )
    return heatmap.view(b, h, w)


def heatmap_target(boundary: Tensor, points: Tensor, min_overlap: float = 0.7) -> Tensor:
    """(B, h, w): the max over vulnerable points of Gaussians with peak 1 and sigma = r / 3.

    The radius is floored at 1 pixel (a point off every B > 0.5 run would get 0).
    """
    horizontal, vertical = run_lengths(boundary > 0.5)
    batch, ys, xs = points.nonzero(as_tuple=True)
    radius = gaussian_radius(
        vertical[batch, ys, xs], horizontal[batch, ys, xs], min_overlap
    ).clamp_min(1)
    # CornerNet cuts each Gaussian at r = 3 sigma.
    return draw_gaussians(
        tuple(boundary.shape),
        batch,
        (ys, xs),
        radius / 3,
        (ys - radius, ys + radius + 1e-6),
        (xs - radius, xs + radius + 1e-6),
    )


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


def laa_targets(mask: Tensor, label: Tensor, size: tuple[int, int]) -> dict[str, Tensor]:
    """The paper's boundary, vulnerable point, heatmap and consistency targets; zeros for reals."""
    fake = (label > 0.5).view(-1, 1, 1)
    boundary = blending_boundary(mask, size) * fake
    points = vulnerable_points(boundary) & fake
    return {
        "boundary": boundary,
        "points": points,
        "heatmap": heatmap_target(boundary, points) * fake,
        "consistency": consistency_target(boundary, points) * fake,
    }


# ------------------------------------------------ LAA-Net as its authors' code
def _fixed_point_taps(n_in: int, n_out: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """Source pixel and 1/32-pixel fraction per output pixel, as OpenCV's warpAffine computes them.

    The map sends corner pixel to corner pixel (the authors' centre/scale affine):
    ``x_in = x_out (n_in - 1) / (n_out - 1)``, in OpenCV's fixed point (10 fractional
    bits, rounded, then 5 bits of interpolation position).
    """
    step = (n_in - 1) / max(n_out - 1, 1)
    fixed = torch.round(torch.arange(n_out, device=device, dtype=torch.float64) * step * 1024) + 16
    position = torch.div(fixed, 32, rounding_mode="floor").long()
    return position // 32, position % 32


def authors_boundary(mask: Tensor, size: tuple[int, int]) -> Tensor:
    """(B, h, w) in 0..255: the boundary as the authors' data pipeline stores it.

    ``4 M (1 - M)`` at the mask's size, cast to uint8 (truncated), then warped to
    the heatmap size by their centre/scale affine transform with OpenCV's
    bilinear interpolation, reproduced to the grey level: OpenCV interpolates
    in fixed point (positions in 1/32 pixel, weights in 1/1024, rounded half
    up), and exact bilinear sampling would move about half the tied points.
    """
    m = mask.float()[:, 0]
    full = torch.floor(4 * m * (1 - m) * 255 + 1e-4)
    b, height, width = full.shape
    rows, fy = _fixed_point_taps(height, size[0], full.device)
    cols, fx = _fixed_point_taps(width, size[1], full.device)
    padded = F.pad(full, (0, 1, 0, 1))  # OpenCV's constant border: 0 beyond the last pixel
    r0, c0 = rows.view(-1, 1), cols.view(1, -1)
    wy, wx = fy.view(-1, 1).float(), fx.view(1, -1).float()
    total = (
        (32 - wy) * (32 - wx) * padded[:, r0, c0]
        + (32 - wy) * wx * padded[:, r0, c0 + 1]
        + wy * (32 - wx) * padded[:, r0 + 1, c0]
        + wy * wx * padded[:, r0 + 1, c0 + 1]
    )
    return torch.floor((total + 512) / 1024).clamp(0, 255)


def authors_heatmap_target(boundary: Tensor, points: Tensor) -> Tensor:
    """(B, h, w): the authors' Gaussians on a uint8 boundary (0..255) at ``points``.

    As their code draws them: the run lengths through a point count pixels above
    128 in both directions from the point, the point itself twice (their count
    also wraps around the map's top and left edges, which a run never reaches
    on a face mask; this one stops there); sigma =
    CornerNet radius / 3 + 1e-4; a Gaussian is drawn in the window of 6 sigma + 1
    pixels that starts at ``int(x - 3 sigma)``, centred at that start plus
    ``floor(3 sigma + 0.5)`` (up to a pixel off the point when 3 sigma is not whole).
    """
    horizontal, vertical = run_lengths(boundary > 128)
    batch, ys, xs = points.nonzero(as_tuple=True)
    h_count = torch.where(horizontal[batch, ys, xs] > 0, horizontal[batch, ys, xs] + 1, 0)
    v_count = torch.where(vertical[batch, ys, xs] > 0, vertical[batch, ys, xs] + 1, 0)
    sigma = gaussian_radius(h_count, v_count) / 3 + 1e-4
    reach = 3 * sigma
    span = torch.ceil(6 * sigma + 1)  # np.arange(0, 6 sigma + 1) has this many samples
    height, width = boundary.shape[-2:]

    def window(position: Tensor, limit: int) -> tuple[Tensor, Tensor, Tensor]:
        start = torch.trunc(position.float() - reach)  # Python int() truncates towards zero
        stop = torch.minimum(torch.trunc(position.float() + reach + 1), start + span)
        centre = start + torch.floor((6 * sigma + 1) / 2)
        return centre, start.clamp_min(0), stop.clamp_max(limit)

    cy, top, bottom = window(ys, height)
    cx, left, right = window(xs, width)
    return draw_gaussians(
        tuple(boundary.shape), batch, (cy, cx), sigma, (top, bottom), (left, right)
    )


def authors_consistency_target(boundary: Tensor, points: Tensor) -> Tensor:
    """(B, h, w): ``1 - |max B - B| / 255`` in every quadrant holding a point, 0 elsewhere."""
    b, h, w = boundary.shape
    peak = boundary.flatten(1).amax(1).view(b, 1, 1)
    target = 1 - (peak - boundary).abs() / 255
    has_point = torch.zeros_like(boundary, dtype=torch.bool)
    for rows in (slice(0, h // 2), slice(h // 2, h)):
        for cols in (slice(0, w // 2), slice(w // 2, w)):
            any_point = points[:, rows, cols].flatten(1).any(1).view(b, 1, 1)
            has_point[:, rows, cols] = any_point
    return target * has_point


def authors_laa_targets(mask: Tensor, label: Tensor, size: tuple[int, int]) -> dict[str, Tensor]:
    """LAA-Net's targets as the authors' code builds them (their ``_new_encode_target``).

    The boundary is a uint8 map (:func:`authors_boundary`); every pixel equal to
    its quadrant's maximum is a vulnerable point (ties kept, about 11 per fake);
    Gaussians as :func:`authors_heatmap_target`; consistency as
    :func:`authors_consistency_target`. ``boundary`` is returned in [0, 1].
    """
    fake = (label > 0.5).view(-1, 1, 1)
    boundary = authors_boundary(mask, size) * fake
    points = vulnerable_points(boundary, per_quadrant=True) & fake
    return {
        "boundary": boundary / 255,
        "points": points,
        "heatmap": authors_heatmap_target(boundary, points) * fake,
        "consistency": authors_consistency_target(boundary, points) * fake,
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
