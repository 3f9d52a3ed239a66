"""Photographic synthetic people: identities, head motion, scenes, frames.

The one model of a synthetic person, shared by the on-disk dataset writer
(:mod:`src.synthetic.layouts`) and the in-memory DataModule
(:mod:`src.synthetic.memory`); face swaps on these people are in
:mod:`src.synthetic.swaps`.

Every identity is a warped copy of the one real face photograph bundled with
scikit-image (``skimage.data.astronaut()``): skin tone, hair and clothing
colour, face width and height, eye spacing, nose length, mouth position and
width, jaw length, mirroring, glasses and beard shadow all vary, and each video
puts the person in front of its own procedural background under its own
lighting. A photograph was chosen over procedurally drawn cartoon faces
because facenet-pytorch's MTCNN found the cartoon faces in only 46 of 120
frames, while it finds these faces in all but one of 728 sampled frames of the
default synthetic set at p > 0.9 (that one at p = 0.88).

A person is drawn once per identity on a canvas (RGB + alpha) with its 68
landmark positions (dlib's 68-point layout, measured once on the photograph
with dlib's shape predictor and stored below). The canvas is the padded
photograph at full resolution for the on-disk writer, or a square around the
head at the output resolution for the in-memory set (:class:`Canvas`). A frame
samples the canvas through one inverse affine map (head translation, roll and
scale drift over time) plus a small local warp of the mouth (talking,
smiling), then composites it over the video's static background. Frames are
pure functions of their seeds, so a fake's target frames equal the real
video's frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np

from src.errors import DFBenchError

#: 68 dlib landmarks (x, y) of the face in ``skimage.data.astronaut()`` (512 x 512).
ASTRONAUT_LANDMARKS = np.array(
    [
        [179, 104], [180, 116], [181, 127], [182, 139], [185, 150], [191, 160], [200, 168],
        [209, 176], [220, 178], [232, 177], [243, 171], [253, 163], [260, 154], [265, 143],
        [268, 131], [270, 120], [272, 108], [186, 94], [192, 88], [200, 87], [208, 89],
        [216, 92], [236, 93], [244, 91], [252, 91], [260, 92], [265, 99], [226, 102],
        [225, 111], [225, 119], [225, 127], [214, 131], [219, 133], [224, 134], [229, 133],
        [234, 132], [195, 101], [200, 98], [207, 98], [212, 104], [206, 104], [199, 104],
        [237, 106], [243, 100], [250, 100], [255, 105], [250, 107], [244, 107], [201, 139],
        [209, 139], [218, 139], [224, 141], [230, 140], [238, 140], [246, 141], [238, 151],
        [229, 155], [222, 156], [216, 155], [208, 150], [204, 141], [218, 143], [223, 144],
        [230, 143], [243, 142], [229, 150], [223, 151], [217, 150],
    ],
    dtype=np.float32,
)  # fmt: skip

#: Outline of head, hair, collar and suit in the photograph (drawn by hand around the person).
PERSON_POLYGON = np.array(
    [
        [226, 15], [250, 17], [272, 25], [290, 40], [300, 60], [303, 80], [301, 100],
        [296, 115], [288, 125], [276, 134], [272, 148], [290, 165], [305, 210], [302, 235],
        [310, 250], [340, 278], [362, 320], [368, 512], [18, 512], [24, 330], [44, 280],
        [108, 250], [120, 190], [135, 165], [165, 150], [181, 146], [178, 130], [170, 120],
        [156, 100], [154, 80], [160, 50], [180, 25], [200, 17],
    ],
    dtype=np.float32,
)  # fmt: skip

PAD = 96  # canvas margin around the photograph, so head motion never samples outside it
CANVAS = 512 + 2 * PAD
FACE_WIDTH = float(ASTRONAUT_LANDMARKS[16, 0] - ASTRONAUT_LANDMARKS[0, 0])  # jaw to jaw, px


@dataclass(frozen=True)
class Canvas:
    """The part of the padded photograph a person is drawn on, and how many pixels it gets.

    The on-disk writer draws on the whole padded photograph at its own resolution
    (:data:`FULL_CANVAS`); the in-memory DataModule draws only a square around the
    head, scaled to its output size (:func:`head_canvas`), so that at 64 px a person
    costs about a tenth of the CPU time to draw.

    Attributes:
        window: (x0, y0, x1, y1), a square in padded-photograph pixels.
        size: side of the canvas in pixels.
    """

    window: tuple[int, int, int, int] = (0, 0, CANVAS, CANVAS)
    size: int = CANVAS

    def __post_init__(self) -> None:
        x0, y0, x1, y1 = self.window
        if x1 - x0 != y1 - y0 or x1 <= x0 or self.size < 1:
            raise DFBenchError(f"canvas window {self.window} must be a non-empty square")

    @property
    def scale(self) -> float:
        """Canvas pixels per photograph pixel."""
        return self.size / (self.window[2] - self.window[0])

    def point(self, points: np.ndarray) -> np.ndarray:
        """Padded-photograph positions -> canvas positions (pixel centres map as a resize does)."""
        origin = np.array(self.window[:2], np.float64)
        return ((np.asarray(points) - origin + 0.5) * self.scale - 0.5).astype(np.float32)

    def span(self, start: float, stop: float, axis: int) -> slice:
        """Canvas rows (axis 0) or columns (axis 1) of a padded-photograph range, clipped."""
        origin = self.window[1 - axis]
        first, last = (int(round((v - origin) * self.scale)) for v in (start, stop))
        return slice(min(max(first, 0), self.size), min(max(last, 0), self.size))


FULL_CANVAS = Canvas()
#: Face centre in the padded photograph (mean of both jaw ends, chin and nose bridge).
FACE_CENTRE = (ASTRONAUT_LANDMARKS[[0, 16, 8, 27]].mean(axis=0) + PAD).round().astype(int)


def head_canvas(pixels_per_face: float, half_width: int = 150) -> Canvas:
    """A square of ``2 * half_width`` photograph pixels around the face, at most full resolution.

    Args:
        pixels_per_face: the largest face width (jaw to jaw) the frames will show, in pixels.
        half_width: half the window's side; 150 covers a face that fills half of a frame
            rolled by 15 degrees and shifted by a tenth of the frame.
    """
    scale = min(1.0, pixels_per_face / FACE_WIDTH)
    x, y = (int(v) for v in FACE_CENTRE)
    window = (x - half_width, y - half_width, x + half_width, y + half_width)
    return Canvas(window, max(round(2 * half_width * scale), 8))


@cache
def _base(canvas: Canvas = FULL_CANVAS) -> tuple[np.ndarray, np.ndarray]:
    """The padded photograph (float32 RGB) and the soft alpha of the person on it."""
    if canvas != FULL_CANVAS:
        image, alpha = _base(FULL_CANVAS)
        x0, y0, x1, y1 = canvas.window
        interpolation = cv2.INTER_AREA if canvas.scale < 1 else cv2.INTER_LINEAR
        crop = cv2.copyMakeBorder(
            np.dstack([image, alpha]),
            max(-y0, 0),
            max(y1 - CANVAS, 0),
            max(-x0, 0),
            max(x1 - CANVAS, 0),
            cv2.BORDER_REFLECT_101,
        )[max(y0, 0) : max(y0, 0) + y1 - y0, max(x0, 0) : max(x0, 0) + x1 - x0]
        crop = cv2.resize(crop, (canvas.size, canvas.size), interpolation=interpolation)
        return np.ascontiguousarray(crop[..., :3]), np.ascontiguousarray(crop[..., 3])
    from skimage.data import astronaut

    image = cv2.copyMakeBorder(astronaut(), PAD, PAD, PAD, PAD, cv2.BORDER_REFLECT_101)
    polygon = PERSON_POLYGON + PAD
    # The suit runs off the bottom of the photograph; extend it over the bottom margin.
    polygon[polygon[:, 1] >= 512 + PAD, 1] = CANVAS
    alpha = np.zeros((CANVAS, CANVAS), np.float32)
    cv2.fillPoly(alpha, [np.round(polygon).astype(np.int32)], 1.0, cv2.LINE_AA)
    alpha = cv2.GaussianBlur(alpha, (0, 0), 1.5)
    return image.astype(np.float32), alpha


@dataclass(frozen=True)
class Identity:
    """Appearance of one synthetic person; lengths are pixels of the 512 px photograph."""

    skin_gain: tuple[float, float, float]
    hair_colour: tuple[float, float, float]
    hair_strength: float
    suit_hue: int
    face_width: float
    face_height: float
    eye_spacing: float
    nose_length: float
    mouth_shift: float
    mouth_width: float
    jaw: float
    glasses: bool
    beard: float
    flip: bool


HAIR_COLOURS = np.array(
    [[25, 20, 18], [70, 45, 28], [130, 90, 50], [215, 185, 120], [110, 110, 110], [160, 70, 35]],
    dtype=np.float64,
)


def random_identity(rng: np.random.Generator) -> Identity:
    """A random person: skin from very dark to very light, assorted hair, shape and extras."""
    darkness = rng.uniform(0.45, 1.12)
    warmth = rng.uniform(-0.06, 0.1)
    return Identity(
        skin_gain=(darkness * (1 + warmth), darkness, darkness * (1 - warmth)),
        hair_colour=tuple(HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))].tolist()),
        hair_strength=rng.uniform(0.3, 0.9),
        suit_hue=int(rng.integers(0, 180)),
        face_width=rng.uniform(0.9, 1.12),
        face_height=rng.uniform(0.93, 1.08),
        eye_spacing=rng.uniform(-3.5, 3.5),
        nose_length=rng.uniform(-3.0, 4.5),
        mouth_shift=rng.uniform(-2.5, 4.0),
        mouth_width=rng.uniform(0.88, 1.15),
        jaw=rng.uniform(-3.0, 6.0),
        glasses=bool(rng.random() < 0.2),
        beard=float(rng.uniform(0.3, 0.8)) if rng.random() < 0.25 else 0.0,
        flip=bool(rng.random() < 0.5),
    )


@dataclass(frozen=True)
class Person:
    """An identity drawn on a canvas: RGB, straight (not premultiplied) alpha, landmarks."""

    rgba: np.ndarray  # (size, size, 4) float32; RGB in 0..255, alpha in 0..1
    landmarks: np.ndarray  # (68, 2) float32, canvas pixels
    scale: float = 1.0  # canvas pixels per photograph pixel


def gaussian_bump(xs: np.ndarray, ys: np.ndarray, centre: np.ndarray, sigma: float) -> np.ndarray:
    """exp(-|p - centre|^2 / 2 sigma^2) at every (xs, ys): the falloff of every local warp."""
    return np.exp(-((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2) / (2 * sigma**2))


def _soft_polygon(points: np.ndarray, sigma: float, shape: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(shape, np.float32)
    cv2.fillPoly(mask, [np.round(points).astype(np.int32)], 1.0, cv2.LINE_AA)
    return cv2.GaussianBlur(mask, (0, 0), sigma) if sigma > 0 else mask


def _recolour_head(
    image: np.ndarray, alpha: np.ndarray, lm: np.ndarray, identity: Identity, canvas: Canvas
) -> None:
    """Skin and hair, recoloured in place inside a window around the head only (speed)."""
    k = canvas.scale
    hy, hx = canvas.span(PAD, PAD + 200, 0), canvas.span(PAD + 140, PAD + 320, 1)
    corner = np.array([hx.start, hy.start], np.float32)
    head_image = image[hy, hx]
    window_shape = head_image.shape[:2]
    # Skin: the face oval up to the hairline (brows lifted), soft-edged so no seam shows.
    oval = np.concatenate([lm[0:17], lm[26:16:-1] - [0, 16 * k]]) - corner
    skin = _soft_polygon(oval, 5.0 * k, window_shape)[..., None]
    head_image = head_image * (1 - skin) + head_image * np.array(identity.skin_gain) * skin
    # Hair: the head ellipse minus the face, tinted towards the identity's hair colour.
    head = np.zeros(window_shape, np.float32)
    centre = np.round(canvas.point(np.array([227 + PAD, 80 + PAD])) - corner).astype(int)
    axes = (max(round(78 * k), 1), max(round(72 * k), 1))
    cv2.ellipse(head, tuple(centre.tolist()), axes, 0, 0, 360, 1.0, -1, cv2.LINE_AA)
    hair = np.clip(head - _soft_polygon(oval, 1.0 * k, window_shape), 0, 1)
    hair = cv2.GaussianBlur(hair, (0, 0), 3.0 * k) * alpha[hy, hx] * identity.hair_strength
    luminance = head_image.mean(axis=2, keepdims=True) / 110.0
    tinted = np.clip(luminance * np.array(identity.hair_colour, np.float32), 0, 255)
    image[hy, hx] = head_image + (tinted - head_image) * hair[..., None]


def _recolour_suit(image: np.ndarray, alpha: np.ndarray, hue: int, canvas: Canvas) -> None:
    """Rotate the hue of everything of the person below the collar, in place."""
    sy, sx = canvas.span(PAD + 175, CANVAS, 0), canvas.span(PAD, PAD + 380, 1)
    if sy.stop <= sy.start or sx.stop <= sx.start:
        return  # the canvas shows no suit
    rows = np.arange(sy.start, sy.stop, dtype=np.float32)[:, None]
    photo_rows = (rows + 0.5) / canvas.scale - 0.5 + canvas.window[1]
    suit = (alpha[sy, sx] * np.clip((photo_rows - (185 + PAD)) / 20.0, 0, 1))[..., None]
    hsv = cv2.cvtColor(np.clip(image[sy, sx], 0, 255).astype(np.uint8), cv2.COLOR_RGB2HSV)
    hsv[..., 0] = (hsv[..., 0].astype(np.int32) + hue) % 180
    recoloured = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB).astype(np.float32)
    image[sy, sx] += (recoloured - image[sy, sx]) * suit


def _reshape_face(
    rgba: np.ndarray, lm: np.ndarray, identity: Identity, canvas: Canvas
) -> np.ndarray:
    """Warp ``rgba`` in place by a smooth field around the face, zero at the field's border.

    Returns the landmarks moved by the same field.
    """
    k = canvas.scale
    # Its first and last pixels, in canvas pixels; the canvas may show only part of it.
    (ex0, ey0), (ex1, ey1) = canvas.point(np.array([[90 + PAD, PAD], [369 + PAD, 279 + PAD]]))
    ys_span, xs_span = canvas.span(PAD, 280 + PAD, 0), canvas.span(90 + PAD, 370 + PAD, 1)
    x0, x1, y0, y1 = xs_span.start, xs_span.stop, ys_span.start, ys_span.stop
    if x1 <= x0 or y1 <= y0:
        return lm
    xs, ys = np.meshgrid(np.arange(x0, x1, dtype=np.float32), np.arange(y0, y1, dtype=np.float32))
    centre = lm[[0, 16, 8, 27]].mean(axis=0)
    face = gaussian_bump(xs, ys, centre, 55.0 * k)
    dx = (xs - centre[0]) * (identity.face_width - 1) * face
    dy = (ys - centre[1]) * (identity.face_height - 1) * face
    for eye, side in ((lm[36:42].mean(0), -1), (lm[42:48].mean(0), 1)):
        dx += side * (identity.eye_spacing * k) * gaussian_bump(xs, ys, eye, 14.0 * k)
    dy += (identity.nose_length * k) * gaussian_bump(xs, ys, lm[33], 12.0 * k)
    mouth = lm[48:68].mean(axis=0)
    mouth_field = gaussian_bump(xs, ys, mouth, 17.0 * k)
    dy += (identity.mouth_shift * k) * mouth_field
    dx += (xs - mouth[0]) * (identity.mouth_width - 1) * mouth_field
    dy += (identity.jaw * k) * gaussian_bump(xs, ys, lm[8], 24.0 * k)
    taper = np.minimum.reduce([xs - ex0, ex1 - xs, ys - ey0, ey1 - ys]) / (20.0 * k)
    taper = np.clip(taper, 0, 1)
    dx, dy = dx * taper, dy * taper
    # remap samples the source at p - d(p): content moves by about +d.
    window = cv2.remap(rgba, xs - dx, ys - dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    rgba[y0:y1, x0:x1] = window
    ix = np.clip(np.round(lm[:, 0] - x0).astype(int), 0, x1 - x0 - 1)
    iy = np.clip(np.round(lm[:, 1] - y0).astype(int), 0, y1 - y0 - 1)
    return lm + np.stack([dx[iy, ix], dy[iy, ix]], axis=1)


def build_person(identity: Identity, canvas: Canvas = FULL_CANVAS) -> Person:
    """Draw ``identity``: recolour skin, hair and suit, warp the face, add accessories.

    Every length of the recipe is in photograph pixels and is scaled to the canvas,
    so a person drawn on a smaller canvas is the same person at a lower resolution.
    """
    image, alpha = _base(canvas)
    image = image.copy()
    k = canvas.scale
    lm = canvas.point(ASTRONAUT_LANDMARKS + PAD)
    shape = (canvas.size, canvas.size)

    _recolour_head(image, alpha, lm, identity, canvas)
    _recolour_suit(image, alpha, identity.suit_hue, canvas)
    rgba = np.dstack([image, alpha]).astype(np.float32)
    lm = _reshape_face(rgba, lm, identity, canvas)

    if identity.beard > 0:
        chin = np.concatenate([lm[3:14], lm[[54, 55, 56, 57, 58, 59, 48]]])
        shade = _soft_polygon(chin, 4.0 * k, shape)[..., None] * identity.beard * 0.55
        rgba[..., :3] *= 1 - shade
    if identity.glasses:
        frame_colour = (20.0, 20.0, 25.0, 1.0)
        thickness = max(round(2 * k), 1)
        axes = (max(round(14 * k), 1), max(round(10 * k), 1))
        for eye in (lm[36:42].mean(0), lm[42:48].mean(0)):
            centre_px = (int(round(eye[0])), int(round(eye[1])))
            cv2.ellipse(rgba, centre_px, axes, 0, 0, 360, frame_colour, thickness, cv2.LINE_AA)
        bridge = [lm[39] + np.array([2, -3]) * k, lm[42] + np.array([-2, -3]) * k]
        ends = (tuple(np.round(p).astype(int).tolist()) for p in bridge)
        cv2.line(rgba, *ends, frame_colour, thickness)

    if identity.flip:
        rgba = rgba[:, ::-1].copy()
        lm = lm.copy()
        lm[:, 0] = canvas.size - 1 - lm[:, 0]
    np.clip(rgba[..., :3], 0, 255, out=rgba[..., :3])
    return Person(rgba=np.ascontiguousarray(rgba), landmarks=lm.astype(np.float32), scale=k)
