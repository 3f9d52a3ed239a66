"""Face swaps, capture looks and face crops on the people of :mod:`src.synthetic.faces`.

A fake (:func:`swap_frame`) renders another identity (or, for reenactment,
the same identity with another expression) in the target's pose, degrades it
as the method would (resampling, blur, JPEG, colour transfer, flicker,
misalignment, texture noise), and pastes it through a soft mask over a
landmark region of the target. The mask returned is exactly the blend weight.
A :class:`Look` is the processing every frame of a dataset gets, real or fake.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from src.synthetic.faces import Person
from src.synthetic.frames import Box, Motion, Scene, frame_landmarks, pose_matrix, render_box

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
        tone: how far the pasted face's brightness is off the target's, as a relative
            gain drawn once per video (:func:`tone_gain`): the illumination a method
            did not match, which leaves a seam along the mask's edge even when the
            colours were transferred and the source is the target itself.
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
    tone: float = 0.0


def tone_gain(style: SwapStyle, rng: np.random.Generator) -> np.ndarray:
    """The RGB gain of one video's pasted face: brighter or darker by ``style.tone``."""
    if style.tone == 0:
        return np.ones(3, np.float32)
    sign = rng.choice((-1.0, 1.0))
    return (1 + sign * style.tone + rng.normal(0, style.tone / 4, 3)).astype(np.float32)


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
    gain: np.ndarray | None = None,
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
        gain: the video's :func:`tone_gain` (None: the pasted face keeps its tone).

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
    pasted = render_box(face, driving, scene, frame, source_matrix, box)
    pasted = _degrade_source(pasted, style, face_width, rng)
    weight = mask[y0:y1, x0:x1, None]
    base = target_frame[y0:y1, x0:x1].astype(np.float32)
    if style.colour_match > 0:
        total = max(float(weight.sum()), 1e-6)
        shift_colour = ((base - pasted) * weight).sum(axis=(0, 1)) / total
        pasted = pasted + style.colour_match * shift_colour.astype(np.float32)
    if gain is not None:
        pasted = pasted * gain
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
