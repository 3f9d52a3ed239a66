"""A procedural face renderer for tests, demos and the synthetic datasets.

Faces are drawn with OpenCV primitives in a canonical frame (unit square,
face centred) and placed with one affine warp per frame, so a frame costs well
under a millisecond at 64 px. Identities differ in face shape, skin tone,
eyes, brows, nose, mouth, hair and background; a video moves the head
smoothly over its frames. A fake keeps the target's frame and pastes the
inner face (brows, eyes, nose, mouth) of another identity rendered in the same
pose, through a soft mask, as a face swap does; a :class:`FakeStyle` sets how
visible the seam is.

Everything is a pure function of a ``numpy.random.Generator``, so a seed fixes
every pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

SKIN_TONES = np.array(
    [
        [255, 224, 196],
        [241, 194, 160],
        [224, 172, 130],
        [198, 140, 100],
        [161, 110, 75],
        [110, 72, 50],
    ],
    dtype=np.float32,
)
HAIR_COLOURS = np.array(
    [[30, 25, 20], [70, 45, 25], [120, 80, 40], [200, 170, 110], [90, 90, 90], [150, 60, 30]],
    dtype=np.float32,
)


@dataclass(frozen=True)
class Identity:
    """Appearance parameters of one synthetic person (lengths in face-box units)."""

    face_w: float
    face_h: float
    skin: tuple[float, float, float]
    hair: tuple[float, float, float]
    background: tuple[tuple[float, float, float], tuple[float, float, float]]
    eye_dx: float
    eye_y: float
    eye_w: float
    eye_h: float
    iris: tuple[float, float, float]
    brow_y: float
    brow_thickness: float
    nose_len: float
    nose_w: float
    mouth_y: float
    mouth_w: float
    mouth_h: float
    lips: tuple[float, float, float]


@dataclass(frozen=True)
class Motion:
    """Smooth head motion of one video: a base pose plus a sinusoidal sway."""

    offset: tuple[float, float]
    scale: float
    angle: float
    sway: tuple[float, float, float]  # amplitudes of x shift, y shift, roll (degrees)
    phase: float
    speed: float


@dataclass(frozen=True)
class FakeStyle:
    """How a fake is blended; each synthetic dataset makes fakes in its own style.

    Attributes:
        mask_blur: Gaussian sigma of the mask edge, as a fraction of the image size.
        colour_match: 0 pastes the source's colours as they are; 1 shifts them
            to the target's mean colour inside the mask.
        source_blur: Gaussian sigma applied to the source (resampling), in pixels
            at 256 px and scaled with the image.
        mask_scale: size of the pasted region relative to the inner face.
        jpeg_quality: re-encode the fake with this JPEG quality (None: no).
        min_skin_gap: pair each target with a source whose skin colour differs
            by at least this RGB distance (when the pool has one), as early face
            swaps between mismatched people did.
    """

    mask_blur: float = 0.03
    colour_match: float = 0.0
    source_blur: float = 0.0
    mask_scale: float = 1.0
    jpeg_quality: int | None = None
    min_skin_gap: float = 0.0


FAKE_STYLES: dict[str, FakeStyle] = {
    "blend": FakeStyle(min_skin_gap=40.0),
    "hard": FakeStyle(mask_blur=0.005, min_skin_gap=40.0),
    "matched": FakeStyle(colour_match=0.8, mask_blur=0.04),
    "resampled": FakeStyle(colour_match=0.5, source_blur=2.0, jpeg_quality=70),
}


def _pick(
    rng: np.random.Generator, palette: np.ndarray, jitter: float
) -> tuple[float, float, float]:
    colour = palette[rng.integers(len(palette))] + rng.normal(0, jitter, 3)
    return tuple(np.clip(colour, 0, 255).tolist())


def random_identity(rng: np.random.Generator) -> Identity:
    bg_a = rng.uniform(40, 230, 3)
    bg_b = np.clip(bg_a + rng.normal(0, 40, 3), 0, 255)
    return Identity(
        face_w=rng.uniform(0.26, 0.33),
        face_h=rng.uniform(0.34, 0.42),
        skin=_pick(rng, SKIN_TONES, 12),
        hair=_pick(rng, HAIR_COLOURS, 10),
        background=(tuple(bg_a.tolist()), tuple(bg_b.tolist())),
        eye_dx=rng.uniform(0.09, 0.13),
        eye_y=rng.uniform(-0.09, -0.04),
        eye_w=rng.uniform(0.045, 0.065),
        eye_h=rng.uniform(0.018, 0.03),
        iris=tuple(rng.uniform([20, 20, 10], [120, 140, 160]).tolist()),
        brow_y=rng.uniform(-0.15, -0.12),
        brow_thickness=rng.uniform(0.008, 0.02),
        nose_len=rng.uniform(0.08, 0.13),
        nose_w=rng.uniform(0.025, 0.045),
        mouth_y=rng.uniform(0.14, 0.2),
        mouth_w=rng.uniform(0.06, 0.1),
        mouth_h=rng.uniform(0.015, 0.035),
        lips=tuple(rng.uniform([140, 50, 50], [220, 110, 120]).tolist()),
    )


def pick_source(
    target: int, identities: list[Identity], style: FakeStyle, rng: np.random.Generator
) -> int:
    """A source identity for a swap onto ``target``: another person, skin gap permitting."""
    skins = np.array([identity.skin for identity in identities])
    gaps = np.linalg.norm(skins - skins[target], axis=1)
    candidates = np.flatnonzero(gaps >= style.min_skin_gap)
    candidates = candidates[candidates != target]
    if candidates.size == 0:
        candidates = np.delete(np.arange(len(identities)), target)
    return int(rng.choice(candidates))


def random_motion(rng: np.random.Generator) -> Motion:
    return Motion(
        offset=(rng.uniform(-0.04, 0.04), rng.uniform(-0.04, 0.04)),
        scale=rng.uniform(0.9, 1.1),
        angle=rng.uniform(-10, 10),
        sway=(rng.uniform(0, 0.03), rng.uniform(0, 0.02), rng.uniform(0, 6)),
        phase=rng.uniform(0, 2 * np.pi),
        speed=rng.uniform(0.3, 1.0),
    )


def pose_matrix(motion: Motion, frame: int, size: int) -> np.ndarray:
    """2x3 affine map from the canonical frame (pixels at ``size``) to the image at ``frame``."""
    wave = np.sin(motion.phase + motion.speed * frame)
    angle = motion.angle + motion.sway[2] * wave
    dx = (motion.offset[0] + motion.sway[0] * wave) * size
    dy = (motion.offset[1] + motion.sway[1] * np.cos(motion.phase + motion.speed * frame)) * size
    matrix = cv2.getRotationMatrix2D((size / 2, size / 2), angle, motion.scale)
    matrix[:, 2] += (dx, dy)
    return matrix


def _px(value: float, size: int) -> int:
    return int(round(value * size))


def _draw_canonical(identity: Identity, size: int) -> np.ndarray:
    """The face, hair and background, upright and centred, float32 RGB."""
    c = size / 2
    rows = np.linspace(0.0, 1.0, size, dtype=np.float32)[:, None, None]
    top, bottom = (np.array(col, dtype=np.float32) for col in identity.background)
    image = np.broadcast_to(top * (1 - rows) + bottom * rows, (size, size, 3)).copy()

    aa = cv2.LINE_AA
    face_axes = (_px(identity.face_w, size), _px(identity.face_h, size))
    hair_axes = (_px(identity.face_w * 1.12, size), _px(identity.face_h * 1.05, size))
    cv2.ellipse(image, (int(c), int(c - 0.06 * size)), hair_axes, 0, 0, 360, identity.hair, -1, aa)
    cv2.ellipse(image, (int(c), int(c)), face_axes, 0, 0, 360, identity.skin, -1, aa)
    # A hairline over the forehead.
    cv2.ellipse(
        image,
        (int(c), int(c - 0.24 * size)),
        (face_axes[0], _px(0.1, size)),
        0,
        180,
        360,
        identity.hair,
        -1,
        aa,
    )

    shade = np.array(identity.skin, dtype=np.float32) * 0.75
    for side in (-1, 1):
        ex, ey = int(c + side * identity.eye_dx * size), int(c + identity.eye_y * size)
        eye_axes = (max(_px(identity.eye_w, size), 1), max(_px(identity.eye_h, size), 1))
        cv2.ellipse(image, (ex, ey), eye_axes, 0, 0, 360, (245, 245, 240), -1, aa)
        cv2.circle(image, (ex, ey), max(eye_axes[1], 1), identity.iris, -1, aa)
        cv2.circle(image, (ex, ey), max(eye_axes[1] // 2, 1), (15, 15, 15), -1, aa)
        by = int(c + identity.brow_y * size)
        cv2.ellipse(
            image,
            (ex, by + _px(0.02, size)),
            (_px(identity.eye_w * 1.2, size), _px(0.025, size)),
            0,
            200,
            340,
            identity.hair,
            max(_px(identity.brow_thickness, size), 1),
            aa,
        )
    nose_top = (int(c), int(c + identity.eye_y * size))
    nose_tip = (int(c), int(c + (identity.eye_y + identity.nose_len) * size))
    cv2.line(image, nose_top, nose_tip, shade.tolist(), max(_px(0.012, size), 1), aa)
    cv2.ellipse(
        image,
        nose_tip,
        (_px(identity.nose_w, size), _px(0.015, size)),
        0,
        0,
        180,
        shade.tolist(),
        max(_px(0.01, size), 1),
        aa,
    )
    cv2.ellipse(
        image,
        (int(c), int(c + identity.mouth_y * size)),
        (_px(identity.mouth_w, size), max(_px(identity.mouth_h, size), 1)),
        0,
        0,
        360,
        identity.lips,
        -1,
        aa,
    )
    # Soft directional light over the whole head.
    cols = np.linspace(-1.0, 1.0, size, dtype=np.float32)[None, :, None]
    return image * (1.0 + 0.12 * cols)


def inner_face_polygon(identity: Identity, size: int, scale: float = 1.0) -> np.ndarray:
    """Canonical polygon around brows, eyes, nose and mouth: the region a swap replaces."""
    c = size / 2
    half_w = (identity.eye_dx + identity.eye_w * 1.5) * scale
    top = identity.brow_y - 0.04 * scale
    bottom = identity.mouth_y + identity.mouth_h + 0.05 * scale
    angles = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    centre_y = (top + bottom) / 2
    half_h = (bottom - top) / 2
    return np.stack(
        [c + half_w * size * np.cos(angles), c + (centre_y + half_h * np.sin(angles)) * size], 1
    )


def render_face(
    identity: Identity,
    motion: Motion,
    frame: int,
    size: int,
    rng: np.random.Generator,
    noise: float = 3.0,
) -> np.ndarray:
    """One uint8 RGB frame (size x size) of ``identity`` at ``frame`` of a video moving with ``motion``."""
    canonical = _draw_canonical(identity, size)
    image = cv2.warpAffine(
        canonical,
        pose_matrix(motion, frame, size),
        (size, size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REFLECT,
    )
    if noise:
        image += rng.normal(0, noise, image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def swap_mask(
    identity: Identity, motion: Motion, frame: int, size: int, style: FakeStyle
) -> np.ndarray:
    """Float32 blend mask in [0, 1] of the swapped region at ``frame``."""
    polygon = inner_face_polygon(identity, size, style.mask_scale)
    mask = np.zeros((size, size), np.float32)
    cv2.fillPoly(mask, [np.round(polygon).astype(np.int32)], 1.0, cv2.LINE_AA)
    mask = cv2.warpAffine(
        mask, pose_matrix(motion, frame, size), (size, size), flags=cv2.INTER_LINEAR
    )
    sigma = style.mask_blur * size
    if sigma > 0.3:
        mask = cv2.GaussianBlur(mask, (0, 0), sigma)
    return np.clip(mask, 0.0, 1.0)


def blend_fake(
    target: np.ndarray, source: np.ndarray, mask: np.ndarray, style: FakeStyle
) -> np.ndarray:
    """``mask * source' + (1 - mask) * target``, where source' is styled (colour, resampling, JPEG)."""
    target_f = target.astype(np.float32)
    source_f = source.astype(np.float32)
    if style.source_blur > 0:
        source_f = cv2.GaussianBlur(source_f, (0, 0), style.source_blur * target.shape[0] / 256)
    if style.colour_match > 0:
        weight = mask[..., None]
        total = max(float(weight.sum()), 1e-6)
        shift = ((target_f - source_f) * weight).sum(axis=(0, 1)) / total
        source_f = source_f + style.colour_match * shift
    fake = np.clip(mask[..., None] * source_f + (1 - mask[..., None]) * target_f, 0, 255).astype(
        np.uint8
    )
    if style.jpeg_quality is not None:
        ok, encoded = cv2.imencode(
            ".jpg", fake, [cv2.IMWRITE_JPEG_QUALITY, int(style.jpeg_quality)]
        )
        if ok:
            fake = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED)
    return fake
