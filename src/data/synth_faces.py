"""Photographic synthetic people for :mod:`src.data.synth`: identities, head motion, face swaps.

Every identity is a warped copy of the one real face photograph bundled with
scikit-image (``skimage.data.astronaut()``): skin tone, hair and clothing
colour, face width and height, eye spacing, nose length, mouth position and
width, jaw length, mirroring, glasses and beard shadow all vary, and each video
puts the person in front of its own procedural background under its own
lighting. A photograph was chosen over the cartoon faces of
:mod:`src.data.render` because facenet-pytorch's MTCNN finds the cartoon faces
in only 46 of 120 frames, while it finds these faces in all but one of 728
sampled frames of the default synthetic set at p > 0.9 (that one at p = 0.88).

A person is drawn once per identity on a padded canvas (RGB + alpha) with its
68 landmark positions (dlib's 68-point layout, measured once on the
photograph with dlib's shape predictor and stored below). A frame samples that
canvas through one inverse affine map (head translation, roll and scale drift
over time) plus a small local warp of the mouth (talking, smiling), then
composites it over the video's static background. Frames are pure functions
of their seeds, so a fake's target frames equal the real video's frames.

A fake (:func:`swap_frame`) renders another identity (or, for reenactment,
the same identity with another expression) in the target's pose, degrades it
as the method would (resampling, blur, JPEG, colour transfer, flicker,
misalignment, texture noise), and pastes it through a soft mask over a
landmark region of the target. The mask returned is exactly the blend weight.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cache

import cv2
import numpy as np

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

#: Landmark index sets of the regions a swap can replace.
REGIONS: dict[str, np.ndarray] = {
    # brows, eyes, nose and mouth: the inner face most swaps paste
    "inner": np.arange(17, 68),
    # the whole landmark hull, jaw line included
    "full": np.arange(0, 68),
    # nose and mouth down to the chin, as expression reenactment rewrites
    "lower": np.r_[2:15, 29:36, 48:68],
    # the mouth only, as neural rendering of the mouth does
    "mouth": np.arange(48, 68),
}


@cache
def _base() -> tuple[np.ndarray, np.ndarray]:
    """The padded photograph (float32 RGB) and the soft alpha of the person on it."""
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
    """An identity drawn on the canvas: RGB, straight (not premultiplied) alpha, landmarks."""

    rgba: np.ndarray  # (CANVAS, CANVAS, 4) float32; RGB in 0..255, alpha in 0..1
    landmarks: np.ndarray  # (68, 2) float32, canvas pixels


def _gauss(xs: np.ndarray, ys: np.ndarray, centre: np.ndarray, sigma: float) -> np.ndarray:
    return np.exp(-((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2) / (2 * sigma**2))


def _soft_polygon(points: np.ndarray, sigma: float, shape: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(shape, np.float32)
    cv2.fillPoly(mask, [np.round(points).astype(np.int32)], 1.0, cv2.LINE_AA)
    return cv2.GaussianBlur(mask, (0, 0), sigma) if sigma > 0 else mask


def build_person(identity: Identity) -> Person:
    """Draw ``identity``: recolour skin, hair and suit, warp the face, add accessories."""
    image, alpha = _base()
    image = image.copy()
    lm = ASTRONAUT_LANDMARKS + PAD
    shape = (CANVAS, CANVAS)

    # Skin and hair are recoloured inside a window around the head only (speed).
    hy, hx = slice(PAD, PAD + 200), slice(PAD + 140, PAD + 320)
    corner = np.array([hx.start, hy.start], np.float32)
    head_image = image[hy, hx]
    window_shape = head_image.shape[:2]
    # Skin: the face oval up to the hairline (brows lifted), soft-edged so no seam shows.
    oval = np.concatenate([lm[0:17], lm[26:16:-1] - [0, 16]]) - corner
    skin = _soft_polygon(oval, 5.0, window_shape)[..., None]
    head_image = head_image * (1 - skin) + head_image * np.array(identity.skin_gain) * skin
    # Hair: the head ellipse minus the face, tinted towards the identity's hair colour.
    head = np.zeros(window_shape, np.float32)
    cv2.ellipse(head, (227 - 140, 80), (78, 72), 0, 0, 360, 1.0, -1, cv2.LINE_AA)
    hair = np.clip(head - _soft_polygon(oval, 1.0, window_shape), 0, 1)
    hair = cv2.GaussianBlur(hair, (0, 0), 3.0) * alpha[hy, hx] * identity.hair_strength
    luminance = head_image.mean(axis=2, keepdims=True) / 110.0
    tinted = np.clip(luminance * np.array(identity.hair_colour, np.float32), 0, 255)
    image[hy, hx] = head_image + (tinted - head_image) * hair[..., None]

    # Suit: rotate the hue of everything of the person below the collar.
    sy, sx = slice(PAD + 175, CANVAS), slice(PAD, PAD + 380)
    rows = np.arange(sy.start, sy.stop, dtype=np.float32)[:, None]
    suit = (alpha[sy, sx] * np.clip((rows - (185 + PAD)) / 20.0, 0, 1))[..., None]
    hsv = cv2.cvtColor(np.clip(image[sy, sx], 0, 255).astype(np.uint8), cv2.COLOR_RGB2HSV)
    hsv[..., 0] = (hsv[..., 0].astype(np.int32) + identity.suit_hue) % 180
    recoloured = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB).astype(np.float32)
    image[sy, sx] += (recoloured - image[sy, sx]) * suit

    # Geometry: a smooth displacement field over a window around the face, zero at its border.
    x0, y0, x1, y1 = 90 + PAD, 0 + PAD, 370 + PAD, 280 + PAD
    xs, ys = np.meshgrid(np.arange(x0, x1, dtype=np.float32), np.arange(y0, y1, dtype=np.float32))
    centre = lm[[0, 16, 8, 27]].mean(axis=0)
    face = _gauss(xs, ys, centre, 55.0)
    dx = (xs - centre[0]) * (identity.face_width - 1) * face
    dy = (ys - centre[1]) * (identity.face_height - 1) * face
    for eye, side in ((lm[36:42].mean(0), -1), (lm[42:48].mean(0), 1)):
        dx += side * identity.eye_spacing * _gauss(xs, ys, eye, 14.0)
    dy += identity.nose_length * _gauss(xs, ys, lm[33], 12.0)
    mouth = lm[48:68].mean(axis=0)
    mouth_field = _gauss(xs, ys, mouth, 17.0)
    dy += identity.mouth_shift * mouth_field
    dx += (xs - mouth[0]) * (identity.mouth_width - 1) * mouth_field
    dy += identity.jaw * _gauss(xs, ys, lm[8], 24.0)
    taper = np.minimum.reduce([xs - x0, x1 - 1 - xs, ys - y0, y1 - 1 - ys]) / 20.0
    taper = np.clip(taper, 0, 1)
    dx, dy = dx * taper, dy * taper
    rgba = np.dstack([image, alpha]).astype(np.float32)
    # remap samples the source at p - d(p): content moves by about +d.
    window = cv2.remap(rgba, xs - dx, ys - dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    rgba[y0:y1, x0:x1] = window
    ix = np.clip(np.round(lm[:, 0] - x0).astype(int), 0, x1 - x0 - 1)
    iy = np.clip(np.round(lm[:, 1] - y0).astype(int), 0, y1 - y0 - 1)
    lm = lm + np.stack([dx[iy, ix], dy[iy, ix]], axis=1)

    if identity.beard > 0:
        chin = np.concatenate([lm[3:14], lm[[54, 55, 56, 57, 58, 59, 48]]])
        shade = _soft_polygon(chin, 4.0, shape)[..., None] * identity.beard * 0.55
        rgba[..., :3] *= 1 - shade
    if identity.glasses:
        frame_colour = (20.0, 20.0, 25.0, 1.0)
        for eye in (lm[36:42].mean(0), lm[42:48].mean(0)):
            centre_px = (int(round(eye[0])), int(round(eye[1])))
            cv2.ellipse(rgba, centre_px, (14, 10), 0, 0, 360, frame_colour, 2, cv2.LINE_AA)
        bridge = [lm[39] + [2, -3], lm[42] + [-2, -3]]
        cv2.line(rgba, *(tuple(np.round(p).astype(int).tolist()) for p in bridge), frame_colour, 2)

    if identity.flip:
        rgba = rgba[:, ::-1].copy()
        lm = lm.copy()
        lm[:, 0] = CANVAS - 1 - lm[:, 0]
    np.clip(rgba[..., :3], 0, 255, out=rgba[..., :3])
    return Person(rgba=np.ascontiguousarray(rgba), landmarks=lm.astype(np.float32))


@dataclass(frozen=True)
class Motion:
    """Head motion and talking of one video."""

    offset: tuple[float, float]  # face centre offset, fraction of the frame
    scale: float
    angle: float
    drift: tuple[float, float, float, float]  # per-frame drift of x, y (fraction), roll, scale
    sway: tuple[float, float, float]  # sinusoidal amplitudes of x, y (fraction) and roll (deg)
    phase: float
    speed: float
    talk: float  # mouth opening amplitude, photograph px
    talk_speed: float
    smile: float


def random_motion(rng: np.random.Generator) -> Motion:
    """Random head motion (a pose, a slow drift, a sway) and talking of one video."""
    return Motion(
        offset=(rng.uniform(-0.05, 0.05), rng.uniform(-0.04, 0.04)),
        scale=rng.uniform(0.9, 1.1),
        angle=rng.uniform(-8, 8),
        drift=(rng.uniform(-0.003, 0.003), rng.uniform(-0.002, 0.002), rng.uniform(-0.25, 0.25),
               rng.uniform(-0.004, 0.004)),
        sway=(rng.uniform(0.005, 0.03), rng.uniform(0.0, 0.02), rng.uniform(1, 5)),
        phase=rng.uniform(0, 2 * np.pi),
        speed=rng.uniform(0.2, 0.6),
        talk=rng.uniform(0.5, 3.0),
        talk_speed=rng.uniform(0.8, 1.8),
        smile=rng.uniform(-1.0, 2.5),
    )  # fmt: skip


@dataclass(frozen=True)
class Scene:
    """What surrounds the person in one video: background, lighting, sensor noise, framing."""

    background: np.ndarray  # (H, W, 3) float32
    gain: tuple[float, float, float]
    noise: float
    face_frac: float  # face width as a fraction of the smaller frame side


def random_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A textured indoor-ish backdrop: gradient wall, blurred shapes, sometimes stripes."""
    top, bottom = rng.uniform(30, 230, 3), rng.uniform(30, 230, 3)
    rows = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    image = np.broadcast_to(top * (1 - rows) + bottom * rows, (height, width, 3)).astype(np.float32)
    image = image.copy()
    for _ in range(int(rng.integers(2, 6))):
        colour = rng.uniform(0, 255, 3).tolist()
        if rng.random() < 0.5:
            p0 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            p1 = (p0[0] + int(rng.integers(20, width // 2)), p0[1] + int(rng.integers(20, height)))
            cv2.rectangle(image, p0, p1, colour, -1)
        else:
            centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            axes = (int(rng.integers(10, width // 3)), int(rng.integers(10, height // 3)))
            cv2.ellipse(image, centre, axes, float(rng.uniform(0, 180)), 0, 360, colour, -1)
    if rng.random() < 0.3:
        period = int(rng.integers(8, 30))
        cols = (np.arange(width) // period) % 2
        image[:, cols == 1] *= rng.uniform(0.75, 0.95)
    return cv2.GaussianBlur(image, (0, 0), float(rng.uniform(1.0, 4.0)))


def random_scene(
    rng: np.random.Generator, height: int, width: int, noise: tuple[float, float] = (1.0, 3.0)
) -> Scene:
    """A random backdrop, lighting (level and tint), sensor noise and face size."""
    light = rng.uniform(0.85, 1.15)
    tint = rng.normal(0, 0.04, 3)
    return Scene(
        background=random_background(rng, height, width),
        gain=tuple((light * (1 + tint)).tolist()),
        noise=float(rng.uniform(*noise)),
        face_frac=float(rng.uniform(0.34, 0.42)),
    )


def pose_matrix(person: Person, motion: Motion, scene: Scene, frame: int) -> np.ndarray:
    """2x3 affine map from canvas pixels to frame pixels at ``frame``."""
    height, width = scene.background.shape[:2]
    wave = np.sin(motion.phase + motion.speed * frame)
    wave_y = np.cos(motion.phase + 0.7 * motion.speed * frame)
    angle = motion.angle + motion.drift[2] * frame + motion.sway[2] * wave
    scale = (
        scene.face_frac
        * min(height, width)
        / FACE_WIDTH
        * motion.scale
        * (1 + motion.drift[3] * frame)
    )
    lm = person.landmarks
    centre = lm[[0, 16, 8, 27]].mean(axis=0)
    anchor_x = width * (0.5 + motion.offset[0] + motion.drift[0] * frame + motion.sway[0] * wave)
    anchor_y = height * (0.5 + motion.offset[1] + motion.drift[1] * frame + motion.sway[1] * wave_y)
    matrix = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), float(angle), scale)
    matrix[:, 2] += (anchor_x - centre[0], anchor_y - centre[1])
    return matrix


def frame_landmarks(person: Person, matrix: np.ndarray) -> np.ndarray:
    """The person's 68 landmarks in frame pixels under the pose ``matrix``."""
    return person.landmarks @ matrix[:, :2].T + matrix[:, 2]


Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in frame pixels, end exclusive


def _sample_person(
    person: Person, motion: Motion, matrix: np.ndarray, frame: int, box: Box
) -> np.ndarray:
    """The person's RGBA over ``box`` of the frame: inverse pose plus a mouth warp (talking)."""
    x0, y0, x1, y1 = box
    inverse = cv2.invertAffineTransform(matrix).astype(np.float32)
    xs, ys = np.meshgrid(np.arange(x0, x1, dtype=np.float32), np.arange(y0, y1, dtype=np.float32))
    map_x = inverse[0, 0] * xs + inverse[0, 1] * ys + inverse[0, 2]
    map_y = inverse[1, 0] * xs + inverse[1, 1] * ys + inverse[1, 2]
    lm = person.landmarks
    opening = motion.talk * 0.5 * (1 + np.sin(motion.talk_speed * frame + motion.phase))
    if opening > 0.05 or abs(motion.smile) > 0.05:
        # Warp only a window around the mouth; the field is negligible outside it.
        mouth_px = frame_landmarks(person, matrix)[48:68]
        margin = 30 * float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
        wx0, wy0 = np.floor(mouth_px.min(0) - margin).astype(int) - (x0, y0)
        wx1, wy1 = np.ceil(mouth_px.max(0) + margin).astype(int) - (x0, y0)
        wx0, wy0 = max(wx0, 0), max(wy0, 0)
        wx1, wy1 = min(wx1, x1 - x0), min(wy1, y1 - y0)
        if wx1 > wx0 and wy1 > wy0:
            wx, wy = map_x[wy0:wy1, wx0:wx1], map_y[wy0:wy1, wx0:wx1]  # views: edits land in maps
            wy -= opening * _gauss(wx, wy, lm[57] + [0, 4], 10.0)
            for corner in (lm[48], lm[54]):
                side = np.sign(corner[0] - lm[51, 0])
                field = _gauss(wx, wy, corner, 7.0) * motion.smile
                wx -= side * field
                wy += 0.6 * field
    return cv2.remap(person.rgba, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _layer(
    person: Person, motion: Motion, scene: Scene, frame: int, matrix: np.ndarray, box: Box
) -> np.ndarray:
    """The lit frame (float32 RGB) over ``box``: the person composited on the background."""
    x0, y0, x1, y1 = box
    rgba = _sample_person(person, motion, matrix, frame, box)
    alpha = np.ascontiguousarray(rgba[..., 3])
    background = scene.background[y0:y1, x0:x1]
    image = cv2.blendLinear(np.ascontiguousarray(rgba[..., :3]), background, alpha, 1 - alpha)
    return image * np.array(scene.gain, np.float32)


def compose(
    person: Person, motion: Motion, scene: Scene, frame: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One uint8 RGB frame of ``person`` in ``scene`` and its 68 landmarks in frame pixels.

    ``rng`` draws the sensor noise; pass a generator seeded by (video, frame) so that
    a fake built on this video sees exactly the same frame.
    """
    height, width = scene.background.shape[:2]
    matrix = pose_matrix(person, motion, scene, frame)
    image = _layer(person, motion, scene, frame, matrix, (0, 0, width, height))
    if scene.noise > 0:
        image += rng.normal(0, scene.noise, image.shape).astype(np.float32)
    return np.clip(np.round(image), 0, 255).astype(np.uint8), frame_landmarks(person, matrix)


@dataclass(frozen=True)
class SwapStyle:
    """How one manipulation method makes its fakes.

    Attributes:
        region: landmark region replaced (a key of :data:`REGIONS`).
        mask_scale: grow (>1) or shrink the region's hull about its centroid.
        mask_blur: Gaussian sigma of the mask edge, as a fraction of the region's size
            (the square root of its area), so small regions keep a core at full weight.
        colour_match: 0 keeps the source's colours; 1 moves their mean to the target's.
        source_res: face width, in pixels, at which the method generates the face
            (None: the video's own resolution); a smaller face is resampled down to it
            and back up, as an autoencoder working at 64 px would.
        source_blur: extra Gaussian blur of the source, as a fraction of the face width.
        source_jpeg: JPEG quality the source goes through before blending (None: none).
        flicker: per-frame random colour gain of the pasted face (temporal inconsistency).
        misalign: per-frame random shift of the source, pixels at a 100 px face.
        texture_noise: smooth noise added inside the mask (rendering artefacts).
        reenact: the source is the target itself with the source video's expression
            (Face2Face, NeuralTextures) rather than another person's face.
    """

    region: str = "inner"
    mask_scale: float = 1.0
    mask_blur: float = 0.05
    colour_match: float = 0.0
    source_res: float | None = None
    source_blur: float = 0.0
    source_jpeg: int | None = None
    flicker: float = 0.0
    misalign: float = 0.0
    texture_noise: float = 0.0
    reenact: bool = False


def region_mask(
    landmarks: np.ndarray, style: SwapStyle, shape: tuple[int, int]
) -> tuple[np.ndarray, Box]:
    """Blend weight in [0, 1] over the style's region, and the box outside which it is 0.

    The weight is exactly 0 wherever the 8-bit mask video would store 0.
    """
    points = landmarks[REGIONS[style.region]]
    hull = cv2.convexHull(points.astype(np.float32)).reshape(-1, 2)
    centroid = hull.mean(axis=0)
    hull = centroid + (hull - centroid) * style.mask_scale
    if style.region == "inner":
        # Reach up over the brows a little, as swap masks do.
        hull[:, 1] -= np.clip(centroid[1] - hull[:, 1], 0, None) * 0.12
    sigma = style.mask_blur * float(np.sqrt(cv2.contourArea(hull)))
    # Work in a box around the hull (speed): the blur kernel never reaches past it.
    height, width = shape
    x0, y0 = np.maximum(np.floor(hull.min(0) - 3 * sigma - 4).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(hull.max(0) + 3 * sigma + 5).astype(int), (width, height))
    mask = np.zeros(shape, np.float32)
    if x1 <= x0 or y1 <= y0:
        return mask, (0, 0, 0, 0)
    window = np.zeros((y1 - y0, x1 - x0), np.float32)
    local = np.round((hull - (x0, y0)) * 4).astype(np.int32)
    cv2.fillPoly(window, [local], 1.0, cv2.LINE_AA, shift=2)
    if sigma > 0.3:
        # Blur inside the hull only, so the pasted area never grows past the region.
        window = cv2.erode(window, np.ones((3, 3), np.uint8), iterations=int(sigma))
        window = cv2.GaussianBlur(window, (0, 0), sigma, borderType=cv2.BORDER_CONSTANT)
    window[window < 0.5 / 255] = 0.0
    mask[y0:y1, x0:x1] = np.clip(window, 0.0, 1.0)
    return mask, (int(x0), int(y0), int(x1), int(y1))


def _degrade_source(
    source: np.ndarray, style: SwapStyle, face_width: float, rng: np.random.Generator
) -> np.ndarray:
    height, width = source.shape[:2]
    scale = 1.0 if style.source_res is None else style.source_res / max(face_width, 1.0)
    if scale < 1.0:
        small = (max(round(width * scale), 4), max(round(height * scale), 4))
        source = cv2.resize(source, small, interpolation=cv2.INTER_AREA)
        source = cv2.resize(source, (width, height), interpolation=cv2.INTER_LINEAR)
    if style.source_blur > 0:
        source = cv2.GaussianBlur(source, (0, 0), style.source_blur * face_width)
    if style.texture_noise > 0:
        noise = rng.normal(0, 1, (height // 4 + 1, width // 4 + 1, 3)).astype(np.float32)
        noise = cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)
        source = source + style.texture_noise * noise
    if style.flicker > 0:
        source = source * (1 + rng.normal(0, style.flicker, 3)).astype(np.float32)
    if style.source_jpeg is not None:
        source = jpeg(source, style.source_jpeg)
    return source


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """Round-trip ``image`` (RGB, any float/uint8) through JPEG at ``quality``; float32 out."""
    data = cv2.cvtColor(np.clip(np.round(image), 0, 255).astype(np.uint8), cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".jpg", data, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    decoded = cv2.imdecode(encoded, cv2.IMREAD_COLOR)
    return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB).astype(np.float32)


def swap_frame(
    target_frame: np.ndarray,
    target_landmarks: np.ndarray,
    target: Person,
    source: Person,
    motion: Motion,
    source_motion: Motion,
    scene: Scene,
    frame: int,
    style: SwapStyle,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Paste ``source``'s face into ``target_frame`` (a frame made by :func:`compose`).

    Args:
        target_frame: the real target frame, uint8 RGB.
        target_landmarks: its landmarks in frame pixels.
        target: the target person (its pose is recomputed from ``motion``).
        source: the person whose face is pasted (ignored when ``style.reenact``).
        motion: the target video's motion.
        source_motion: the source video's motion; its talking and smile drive the
            pasted face's expression, as the source actor's would.
        scene: the target video's scene.
        frame: frame index.
        style: how the method pastes.
        rng: draws flicker, misalignment and texture noise.

    Returns:
        The fake frame (uint8 RGB) and the float32 blend mask actually used.
    """
    face = source if not style.reenact else target
    driving = replace(
        motion,
        talk=source_motion.talk,
        smile=source_motion.smile,
        talk_speed=source_motion.talk_speed,
    )
    if style.reenact:
        # Reenactment exaggerates the driving expression, as transferred expressions do.
        driving = replace(driving, talk=2.0 * driving.talk + 2.0, smile=1.5 * driving.smile + 1.0)
    mask, box = region_mask(target_landmarks, style, target_frame.shape[:2])
    x0, y0, x1, y1 = box
    if x1 <= x0 or y1 <= y0:
        return target_frame.copy(), mask
    matrix = pose_matrix(target, motion, scene, frame)
    # The source is aligned on the target's face centre, as swaps align on landmarks.
    shift = frame_landmarks(target, matrix)[[0, 16, 8, 27]].mean(0)
    source_matrix = pose_matrix(face, motion, scene, frame)
    shift = shift - frame_landmarks(face, source_matrix)[[0, 16, 8, 27]].mean(0)
    face_width = float(np.linalg.norm(target_landmarks[16] - target_landmarks[0]))
    if style.misalign > 0:
        shift = shift + rng.normal(0, style.misalign * face_width / 100, 2)
    source_matrix = source_matrix.copy()
    source_matrix[:, 2] += shift
    # Only the mask's box is rendered and blended: everything outside stays the target's.
    pasted = _layer(face, driving, scene, frame, source_matrix, box)
    pasted = _degrade_source(pasted, style, face_width, rng)
    weight = mask[y0:y1, x0:x1, None]
    base = target_frame[y0:y1, x0:x1].astype(np.float32)
    if style.colour_match > 0:
        total = max(float(weight.sum()), 1e-6)
        shift_colour = ((base - pasted) * weight).sum(axis=(0, 1)) / total
        pasted = pasted + style.colour_match * shift_colour.astype(np.float32)
    blended = np.where(weight > 0, weight * pasted + (1 - weight) * base, base)
    fake = target_frame.copy()
    fake[y0:y1, x0:x1] = np.clip(np.round(blended), 0, 255).astype(np.uint8)
    return fake, mask


@dataclass(frozen=True)
class Look:
    """Post-processing every frame of a dataset gets, real or fake (capture and upload)."""

    jpeg: int | None = None
    blur: float = 0.0
    saturation: float = 1.0
    noise: float = 0.0


def apply_look(image: np.ndarray, look: Look, rng: np.random.Generator) -> np.ndarray:
    """``image`` (uint8 RGB) after ``look``; returns uint8 RGB."""
    if look == Look():
        return image
    out = image.astype(np.float32)
    if look.saturation != 1.0:
        grey = out.mean(axis=2, keepdims=True)
        out = grey + (out - grey) * look.saturation
    if look.blur > 0:
        out = cv2.GaussianBlur(out, (0, 0), look.blur)
    if look.noise > 0:
        out = out + rng.normal(0, look.noise, out.shape).astype(np.float32)
    if look.jpeg is not None:
        out = jpeg(out, look.jpeg)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def face_crop(
    image: np.ndarray, landmarks: np.ndarray, out_size: int, margin: float = 1.6
) -> np.ndarray:
    """A square crop of the face (landmark box grown by ``margin``), resized to ``out_size``."""
    lo, hi = landmarks.min(axis=0), landmarks.max(axis=0)
    centre = (lo + hi) / 2 - [0, 0.08 * (hi[1] - lo[1])]  # include some forehead
    side = float(max(hi - lo)) * margin
    scale = out_size / side
    matrix = np.array(
        [
            [scale, 0, out_size / 2 - scale * centre[0]],
            [0, scale, out_size / 2 - scale * centre[1]],
        ],
        dtype=np.float64,
    )
    return cv2.warpAffine(
        image, matrix, (out_size, out_size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT
    )
