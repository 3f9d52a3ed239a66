"""Landmark geometry shared by the pseudo-fake generators: forehead points, flips, hull masks.

Indices follow dlib's 68-point layout: jaw 0-16, brows 17-26, nose bridge
27-30, nose wings 31-35, eyes 36-41 (image left) and 42-47, outer lips 48-59,
inner lips 60-67. An 81-point set adds 13 forehead points 68-80, ordered along
the forehead from the side of point 0 to the side of point 16 (the order SBI's
authors re-index dlib's 81-point model into).

Forehead points: SBI's authors detect them with the 81-point dlib model, which
is not distributed with dlib. Where a frame has only 68 points,
:func:`with_forehead` extrapolates them (the rule is in its docstring), so the
convex hull can reach the forehead as the authors' does.

Hull masks are Face X-ray's four mask types (the ``random_get_hull`` of the
public BI implementations that SBI and LAA-Net use), written from their
definitions: DeepFaceLab's full-face mask (``dfl``), the component mask
(``components``), the component mask with the brows lifted toward the
forehead (``extended``), and the convex hull of every point (``facehull``).
As there, points are truncated to integer pixels first, and only the convex
hull uses the forehead points; the other three index the 68 points.
"""

from __future__ import annotations

import cv2
import numpy as np

from src.errors import DFBenchError

HULL_TYPES = ("dfl", "extended", "components", "facehull")

#: Forehead points added by :func:`with_forehead`.
FOREHEAD_POINTS = 13
#: Height of the extrapolated forehead arc above the brows, as a fraction of the
#: brow-to-chin length. A face's upper third is about half that length; 0.3 keeps the arc
#: on the forehead below the hairline, so the hull stays on skin rather than hair.
FOREHEAD_HEIGHT = 0.3
#: The arc runs between these angles (degrees), so its ends sit just above the
#: jaw line's ends (points 0 and 16) instead of on them.
FOREHEAD_ARC = (165.0, 15.0)


def _flip_order() -> np.ndarray:
    order = np.arange(68)
    order[0:17] = order[0:17][::-1]  # jaw
    order[17:27] = order[17:27][::-1]  # brows
    order[31:36] = order[31:36][::-1]  # nose wings
    order[36:40], order[42:46] = (
        np.arange(42, 46)[::-1],
        np.arange(36, 40)[::-1],
    )  # eye corners, lids
    order[40:42], order[46:48] = np.arange(46, 48)[::-1], np.arange(40, 42)[::-1]  # lower lids
    order[48:55] = order[48:55][::-1]  # outer upper lip
    order[55:60] = order[55:60][::-1]  # outer lower lip
    order[60:65] = order[60:65][::-1]  # inner upper lip
    order[65:68] = order[65:68][::-1]  # inner lower lip
    return order


FLIP_ORDER = _flip_order()
FLIP_ORDER_81 = np.concatenate([FLIP_ORDER, np.arange(68, 81)[::-1]])


def as_points(landmarks: np.ndarray) -> np.ndarray:
    """68 or 81 landmarks as an (N, 2) float32 array."""
    points = np.asarray(landmarks, dtype=np.float32).reshape(-1, 2)
    if points.shape[0] not in (68, 81):
        raise ValueError(f"expected 68 or 81 landmarks, got {points.shape[0]}")
    return points


def as_68(landmarks: np.ndarray) -> np.ndarray:
    """The 68 dlib points of a 68- or 81-point set."""
    return as_points(landmarks)[:68]


def with_forehead(landmarks: np.ndarray) -> np.ndarray:
    """81 points: the frame's own when it has them, else 68 plus 13 extrapolated ones.

    The rule: an elliptical arc over the face. Its centre ``c`` is midway
    between the jaw line's ends (points 0 and 16), its horizontal half-axis
    runs from ``c`` to point 16, and its vertical half-axis points away from
    the chin (point 8), perpendicular to the first, with length
    ``t + FOREHEAD_HEIGHT * L``: ``t`` is the height of the highest brow point
    above ``c`` and ``L`` the brow-to-chin length, both measured along that
    direction. The 13 points lie at angles ``FOREHEAD_ARC`` (165 to 15
    degrees, evenly spaced), from the side of point 0 to the side of point 16.
    """
    points = as_points(landmarks)
    if points.shape[0] == 81:
        return points
    left, right, chin = points[0], points[16], points[8]
    centre = (left + right) / 2
    across = (right - left) / 2
    half_width = float(np.hypot(*across))
    if half_width == 0:
        raise DFBenchError("cannot place forehead points: landmarks 0 and 16 coincide")
    across_unit = across / half_width
    up = np.array([across_unit[1], -across_unit[0]], np.float32)
    if np.dot(centre - chin, up) < 0:
        up = -up
    brow_height = float(np.max((points[17:27] - centre) @ up))
    length = brow_height + float(np.dot(centre - chin, up))
    height = brow_height + FOREHEAD_HEIGHT * length
    angles = np.deg2rad(np.linspace(*FOREHEAD_ARC, FOREHEAD_POINTS))
    arc = (
        centre
        + np.cos(angles)[:, None] * half_width * across_unit
        + np.sin(angles)[:, None] * height * up
    )
    return np.concatenate([points, arc.astype(np.float32)])


def hflip(image: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror an image and its 68 or 81 landmarks; left and right points swap names.

    ``x -> W - 1 - x`` keeps landmarks on the pixel grid they were measured on
    (the authors' code uses ``W - x``, half a pixel off); flipping twice restores both.
    """
    points = as_points(landmarks)
    order = FLIP_ORDER if points.shape[0] == 68 else FLIP_ORDER_81
    flipped = points[order].copy()
    flipped[:, 0] = image.shape[1] - 1 - flipped[:, 0]
    return np.ascontiguousarray(image[:, ::-1]), flipped


def _fill(shape: tuple[int, int], parts: list[np.ndarray], antialias: bool = False) -> np.ndarray:
    mask = np.zeros(shape, np.float32)
    line = cv2.LINE_AA if antialias else cv2.LINE_8
    for part in parts:
        hull = cv2.convexHull(part.astype(np.int32).reshape(-1, 1, 2))
        # Drawn at 255 and scaled, so anti-aliased edge pixels get fractions of 1.
        cv2.fillConvexPoly(mask, hull, 255.0, lineType=line)
    return mask * (1.0 / 255.0)


def _component_parts(p: np.ndarray) -> list[np.ndarray]:
    """The eight convex parts of the component mask (jaw halves, cheeks, eyes, nose)."""
    nose = p[31:36]
    return [
        np.concatenate([p[0:9], p[17:18]]),  # jaw, image-left half
        np.concatenate([p[8:17], p[26:27]]),  # jaw, image-right half
        np.concatenate([p[17:20], p[8:9]]),  # cheek under the left brow
        np.concatenate([p[24:27], p[8:9]]),  # cheek under the right brow
        np.concatenate([p[19:25], p[8:9]]),  # between the brows, down to the chin
        np.concatenate([p[17:22], p[27:28], nose, p[8:9]]),  # left eye region
        np.concatenate([p[22:27], p[27:28], nose, p[8:9]]),  # right eye region
        np.concatenate([p[27:31], nose]),  # nose
    ]


def _lifted_brows(p: np.ndarray) -> np.ndarray:
    """The extended mask's landmarks: each brow pushed up by half its distance to the eye line.

    Integer arithmetic with floor division, as the definition works on integer pixels.
    """
    p = p.copy()
    side_left = (p[36] + p[0]) // 2
    side_right = (p[16] + p[45]) // 2
    quarter_left = (p[36] + side_left) // 2
    quarter_right = (p[45] + side_right) // 2
    below_left = np.stack([quarter_left, p[36], p[37], p[38], p[39]])
    below_right = np.stack([p[42], p[43], p[44], p[45], quarter_right])
    p[17:22] = p[17:22] + (p[17:22] - below_left) // 2
    p[22:27] = p[22:27] + (p[22:27] - below_right) // 2
    return p


def hull_mask(
    landmarks: np.ndarray, shape: tuple[int, int], hull_type: str = "facehull"
) -> np.ndarray:
    """A filled face-region mask (float32 in [0, 1]) of one of Face X-ray's types.

    * ``dfl``: the union of three convex parts: jaw with mouth, the nose
      ridge, and brows with the top of the nose;
    * ``components``: the union of eight convex parts (see
      :func:`_component_parts`), which keeps the concavities between cheeks,
      eyes and nose that a single hull would fill;
    * ``extended``: ``components`` with each brow lifted by half its
      distance to the eye line, reaching into the forehead;
    * ``facehull``: the convex hull of every point (68, or 81 with the
      forehead), anti-aliased at its edge (values between 0 and 1 there).

    Args:
        landmarks: (68, 2) or (81, 2) points in pixels of ``shape``.
        shape: (height, width) of the mask.
        hull_type: one of :data:`HULL_TYPES`.
    """
    points = np.trunc(as_points(landmarks)).astype(np.int32)
    if hull_type == "facehull":
        return _fill(shape, [points], antialias=True)
    points = points[:68]
    if hull_type == "dfl":
        jaw = np.concatenate([points[0:17], points[48:68], points[[0, 8, 16]]])
        ridge = np.concatenate([points[27:31], points[33:34]])
        brows = np.concatenate([points[17:27], points[[0, 27, 16, 33]]])
        return _fill(shape, [jaw, ridge, brows])
    if hull_type == "components":
        return _fill(shape, _component_parts(points))
    if hull_type == "extended":
        return _fill(shape, _component_parts(_lifted_brows(points)))
    raise DFBenchError(f"unknown hull type {hull_type!r}; choose from {HULL_TYPES}")
