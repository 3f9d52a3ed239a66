"""How a synthetic person moves through a video and becomes its frames.

A video is a :class:`Motion` (head pose, slow drift, sway, talking and smiling)
and a :class:`Scene` (backdrop, lighting, sensor noise, framing) around one
:class:`~src.synthetic.faces.Person`. A frame samples the person's canvas
through one inverse affine map plus a small local warp of the mouth, then
composites it over the backdrop; it is a pure function of its seeds, so a
fake's target frames equal the real video's frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from src.synthetic.faces import FACE_WIDTH, Person, gaussian_bump


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
    """A textured indoor-ish backdrop: gradient wall, blurred shapes, sometimes stripes.

    Backdrops smaller than 64 px are drawn at 64 px and shrunk: the shapes' size ranges
    start at 20 px.
    """
    if min(height, width) < 64:
        drawn = random_background(rng, max(height, 64), max(width, 64))
        return cv2.resize(drawn, (width, height), interpolation=cv2.INTER_AREA)
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
    rng: np.random.Generator,
    height: int,
    width: int,
    noise: tuple[float, float] = (1.0, 3.0),
    face_frac: tuple[float, float] = (0.34, 0.42),
) -> Scene:
    """A random backdrop, lighting (level and tint), sensor noise and face size.

    The default framing is a video frame (the face a third of the frame wide); a face
    crop, as preprocessing makes, is about (0.52, 0.66).
    """
    light = rng.uniform(0.85, 1.15)
    tint = rng.normal(0, 0.04, 3)
    return Scene(
        background=random_background(rng, height, width),
        gain=tuple((light * (1 + tint)).tolist()),
        noise=float(rng.uniform(*noise)),
        face_frac=float(rng.uniform(*face_frac)),
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
        / (FACE_WIDTH * person.scale)
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
    lm, k = person.landmarks, person.scale
    opening = motion.talk * 0.5 * (1 + np.sin(motion.talk_speed * frame + motion.phase))
    if opening > 0.05 or abs(motion.smile) > 0.05:
        # Warp only a window around the mouth; the field is negligible outside it.
        mouth_px = frame_landmarks(person, matrix)[48:68]
        margin = 30 * k * float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
        wx0, wy0 = np.floor(mouth_px.min(0) - margin).astype(int) - (x0, y0)
        wx1, wy1 = np.ceil(mouth_px.max(0) + margin).astype(int) - (x0, y0)
        wx0, wy0 = max(wx0, 0), max(wy0, 0)
        wx1, wy1 = min(wx1, x1 - x0), min(wy1, y1 - y0)
        if wx1 > wx0 and wy1 > wy0:
            wx, wy = map_x[wy0:wy1, wx0:wx1], map_y[wy0:wy1, wx0:wx1]  # views: edits land in maps
            wy -= (opening * k) * gaussian_bump(wx, wy, lm[57] + [0, 4 * k], 10.0 * k)
            for corner in (lm[48], lm[54]):
                side = np.sign(corner[0] - lm[51, 0])
                field = gaussian_bump(wx, wy, corner, 7.0 * k) * (motion.smile * k)
                wx -= side * field
                wy += 0.6 * field
    return cv2.remap(person.rgba, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def render_box(
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
    image = render_box(person, motion, scene, frame, matrix, (0, 0, width, height))
    if scene.noise > 0:
        image += rng.normal(0, scene.noise, image.shape).astype(np.float32)
    return np.clip(np.round(image), 0, 255).astype(np.uint8), frame_landmarks(person, matrix)
