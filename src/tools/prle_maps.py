"""PRLE stage 1 as a job: a zoo's Grad-CAM maps over a frame table, fused and stored.

:func:`gradcam_maps` gives one detector's Grad-CAM maps for a batch (through
``detector.as_classifier()`` and ``detector.cam_target_layers()``, with the
``grad-cam`` package); :func:`build_prle_maps` runs every zoo member over every
frame of a frame table, fuses the T maps per frame
(:func:`src.augment.prle.fuse_maps`) and stores them.

Grad-CAM explains the logit, not the paper's score sigmoid(logit) (Eq. 3): the
gradients differ by the positive factor sigmoid'(logit) per image, which the
per-image normalisation to [0, 1] removes, and the logit's gradient does not
vanish on confident frames. ``target="fake"`` (default) explains the fake
score for every frame, as Eq. 3 writes it; ``target="label"`` explains each
frame's own class (reals: the negated logit). Several CAM layers (Xception's
conv3 and conv4) are normalised each and averaged, as the ``grad-cam`` package
does.

On-disk layout of a map folder ``OUT`` (put it beside the frame cache, e.g.
``<cache>/prle/<zoo name>``)::

    OUT/settings.json        what made the maps (zoo names, fusion, map size, target);
                             a run with other settings refuses the folder
    OUT/maps/<crop_path>     one 8-bit grayscale PNG per frame, map_size x map_size,
                             at the frame's crop_path (relative to the frame cache)
                             under maps/
    OUT/index.parquet        crop_path, path (the map, relative to OUT), video_key,
                             frame_idx, face_idx: one row per frame that has a map
    OUT/failures.csv         crop_path, video_key, frame_idx, reason

A frame-table row finds its map by its ``crop_path`` (unique per frame and
face). A map decodes as ``png / 255`` (:func:`src.augment.prle.decode_map`); the
augmentation resizes it to the training image.

Resuming: frames are processed in fixed chunks of ``batch_size`` in the
table's sorted order; a chunk whose maps all exist is skipped, any other chunk
is recomputed whole. Every map is therefore always computed in the same batch
(bit-identical after an interrupted run, as long as ``batch_size`` is kept; another
batch size gives maps equal up to float rounding), and each PNG is written
atomically, so a killed run leaves only whole maps (and perhaps a stray hidden
``.tmp`` file, which nothing reads).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from src.augment.prle import FUSIONS, LAMBDA, TAU1, encode_map, fuse_maps
from src.detectors.base import Detector
from src.errors import DFBenchError
from src.files import atomic_write, atomic_write_csv, atomic_write_json
from src.progress_bars import progress_bar

CamTarget = Literal["fake", "label"]
INDEX_COLUMNS = ("crop_path", "path", "video_key", "frame_idx", "face_idx")
FAILURE_COLUMNS = ("crop_path", "video_key", "frame_idx", "reason")


def gradcam_maps(
    detector: Detector,
    images: Tensor,
    target: CamTarget = "fake",
    labels: Tensor | None = None,
) -> Tensor:
    """Grad-CAM maps of ``detector`` for normalised ``images`` (B, 3, H, W).

    Args:
        detector: any detector declaring its CAM layers.
        images: a batch normalised as the detector's contract asks, on its device.
        target: ``"fake"`` explains the fake logit; ``"label"`` each image's class.
        labels: (B,) 1 = fake, needed for ``target="label"``.

    Returns:
        (B, H, W) float32 on the CPU, each map in [0, 1], at the image size.
    """
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import BinaryClassifierOutputTarget

    if target == "fake":
        categories = [1] * images.shape[0]
    elif target == "label":
        if labels is None:
            raise DFBenchError("Grad-CAM target 'label' needs the images' labels")
        categories = [int(v) for v in labels.round().tolist()]
    else:
        raise DFBenchError(f"unknown Grad-CAM target {target!r}; choose 'fake' or 'label'")
    was_training = detector.training
    layers = detector.cam_target_layers()
    cam = GradCAM(model=detector.as_classifier(), target_layers=layers)
    try:
        with torch.enable_grad(), _gradients_stop_at(detector, layers):
            maps = cam(
                input_tensor=images,
                targets=[BinaryClassifierOutputTarget(c) for c in categories],
            )
    finally:
        # Not the package's context manager: its __exit__ swallows IndexErrors.
        cam.activations_and_grads.release()
        detector.zero_grad(set_to_none=True)
        detector.train(was_training)
    return torch.from_numpy(np.ascontiguousarray(maps, dtype=np.float32))


@contextmanager
def _gradients_stop_at(detector: Detector, layers: Sequence[nn.Module]) -> Iterator[None]:
    """Only the CAM layers' own weights require gradients while Grad-CAM runs.

    Grad-CAM reads the gradient at the CAM layers' outputs and nothing else. With
    every weight requiring it, the backward pass runs on through all earlier layers
    and computes weight gradients nobody reads; with only the CAM layers' weights,
    it stops there, and costs about one forward pass for the last-layer CAMs the
    zoo uses. The gradients at the CAM layers are the same either way. CAM layers
    without weights keep the detector's own settings (their outputs need them).
    """
    own = {id(p) for layer in layers for p in layer.parameters()}
    saved = [(p, p.requires_grad) for p in detector.parameters()]
    if own:
        for p, _ in saved:
            p.requires_grad_(id(p) in own)
    try:
        yield
    finally:
        for p, flag in saved:
            p.requires_grad_(flag)


@dataclass(frozen=True)
class MapSettings:
    """How a map folder's maps are made (recorded in its settings.json).

    Attributes:
        fusion, tau1, lam, radius, unflagged: :func:`src.augment.prle.fuse_maps`.
        map_size: side of the stored maps and of the fusion grid (PRLE: 256 px faces).
        target: the Grad-CAM target (:func:`gradcam_maps`).
    """

    fusion: str = "neighbouring"
    tau1: float = TAU1
    lam: float = LAMBDA
    radius: int = 1
    unflagged: str = "average"
    map_size: int = 256
    target: str = "fake"


@dataclass
class MapBuildResult:
    """What :func:`build_prle_maps` did: the index and failures it wrote, and counts."""

    out_dir: Path
    index: pd.DataFrame
    failures: pd.DataFrame
    built: int
    skipped: int
    seconds_per_member: dict[str, float] = field(default_factory=dict)


def map_path(crop_path: str) -> str:
    """Where a frame's map lives, relative to the map folder."""
    return str(Path("maps") / Path(crop_path).with_suffix(".png"))


def read_map_index(out_dir: str | Path) -> pd.DataFrame:
    """The index of a map folder (crop_path -> path relative to the folder)."""
    path = Path(out_dir) / "index.parquet"
    if not path.is_file():
        raise FileNotFoundError(f"no PRLE map index at {path}: build the maps first")
    return pd.read_parquet(path)


def _check_options(settings: MapSettings) -> None:
    if settings.fusion not in FUSIONS:
        raise DFBenchError(f"unknown PRLE fusion {settings.fusion!r}; choose from {FUSIONS}")
    if settings.unflagged not in ("average", "zero"):
        raise DFBenchError(
            f"PRLE unflagged must be 'average' or 'zero', got {settings.unflagged!r}"
        )
    if settings.target not in ("fake", "label"):
        raise DFBenchError(f"unknown Grad-CAM target {settings.target!r}; choose 'fake' or 'label'")
    if settings.map_size < 8:
        raise DFBenchError(f"PRLE map_size must be at least 8 px, got {settings.map_size}")


def _check_settings(out_dir: Path, record: dict[str, Any]) -> None:
    path = out_dir / "settings.json"
    if path.is_file():
        existing = json.loads(path.read_text())
        if existing != record:
            changed = sorted(
                k for k in set(existing) | set(record) if existing.get(k) != record.get(k)
            )
            raise DFBenchError(
                f"{out_dir} holds PRLE maps made with other settings ({', '.join(changed)} "
                "differ); choose another output folder or delete it"
            )
        return
    atomic_write_json(path, record)


def _read_crop(cache_dir: Path, crop_path: str, size: int) -> np.ndarray:
    image = cv2.imread(str(cache_dir / crop_path), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"face crop missing or unreadable: {cache_dir / crop_path}")
    shrinking = image.shape[0] > size
    image = cv2.resize(
        image, (size, size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    )
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _member_input(detector: Detector, faces: Tensor) -> Tensor:
    """uint8 faces (B, 3, S, S) on the device -> the detector's size and normalisation."""
    contract = detector.input_contract
    images = faces.float() / 255
    if tuple(images.shape[-2:]) != tuple(contract.input_size):
        images = F.interpolate(
            images, size=contract.input_size, mode="bilinear", align_corners=False, antialias=True
        )
    mean = torch.tensor(contract.mean, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(contract.std, device=images.device).view(1, 3, 1, 1)
    return (images - mean) / std


def _write_png(path: Path, image: np.ndarray) -> None:
    ok, encoded = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise OSError(f"could not encode a PRLE map for {path}")
    atomic_write(path, lambda handle: handle.write(encoded.tobytes()), durable=False)


def build_prle_maps(
    zoo: Mapping[str, Detector],
    frames: pd.DataFrame,
    cache_dir: str | Path,
    out_dir: str | Path,
    settings: MapSettings | None = None,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> MapBuildResult:
    """Build (or finish) the fused PRLE map of every frame of ``frames``.

    Args:
        zoo: name -> trained detector (the names, e.g. checkpoint paths, are
            recorded in settings.json); T = len(zoo) maps are fused per frame.
        frames: frame-table rows (``crop_path``, ``video_key``, ``frame_idx``,
            ``face_idx``, ``label``), normally a training split.
        cache_dir: the frame cache the crop paths are relative to.
        out_dir: the map folder (layout in the module docstring).
        settings: fusion and storage settings (default: the paper's).
        batch_size: frames per Grad-CAM batch (also the resume unit).
        device: where the zoo runs.
        progress: show a progress bar.

    Returns:
        The index and failures written, with counts of built and skipped frames.
    """
    if not zoo:
        raise DFBenchError("a PRLE zoo needs at least one detector")
    settings = settings or MapSettings()
    _check_options(settings)
    for name, detector in zoo.items():
        try:
            detector.cam_target_layers()
        except (NotImplementedError, AttributeError) as error:
            raise DFBenchError(f"zoo member {name!r} cannot give Grad-CAM maps: {error}") from error
    cache_dir, out_dir = Path(cache_dir), Path(out_dir)
    _check_settings(out_dir, {"zoo": list(zoo), **asdict(settings)})
    members = {name: detector.to(device).eval() for name, detector in zoo.items()}
    rows = frames.sort_values(["video_key", "frame_idx", "face_idx"], kind="stable")
    rows = rows.drop_duplicates("crop_path").to_dict("records")
    failures: list[dict[str, Any]] = []
    seconds = dict.fromkeys(members, 0.0)
    built = skipped = 0
    chunks = [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)]
    for chunk in progress_bar(chunks, desc="PRLE maps", unit="batch", disable=not progress):
        if all((out_dir / map_path(row["crop_path"])).is_file() for row in chunk):
            skipped += len(chunk)
            continue
        faces, kept = [], []
        for row in chunk:
            try:
                faces.append(_read_crop(cache_dir, row["crop_path"], settings.map_size))
                kept.append(row)
            except (OSError, cv2.error) as error:
                failures.append(_failure(row, str(error)))
        if not kept:
            continue
        try:
            fused = _fuse_chunk(members, faces, kept, settings, device, seconds)
        except (RuntimeError, ValueError) as error:
            failures.extend(_failure(row, f"Grad-CAM failed: {error}") for row in kept)
            continue
        for row, single in zip(kept, fused, strict=True):
            _write_png(out_dir / map_path(row["crop_path"]), encode_map(single))
        built += len(kept)
    index = pd.DataFrame(
        [
            {**{k: row[k] for k in INDEX_COLUMNS if k in row}, "path": map_path(row["crop_path"])}
            for row in rows
            if (out_dir / map_path(row["crop_path"])).is_file()
        ],
        columns=list(INDEX_COLUMNS),
    )
    failure_table = pd.DataFrame(failures, columns=list(FAILURE_COLUMNS))
    atomic_write(out_dir / "index.parquet", lambda handle: index.to_parquet(handle, index=False))
    atomic_write_csv(out_dir / "failures.csv", failure_table)
    return MapBuildResult(out_dir, index, failure_table, built, skipped, seconds)


def _failure(row: Mapping[str, Any], reason: str) -> dict[str, Any]:
    return {
        "crop_path": row["crop_path"],
        "video_key": row.get("video_key", ""),
        "frame_idx": row.get("frame_idx", -1),
        "reason": reason,
    }


def _fuse_chunk(
    members: Mapping[str, Detector],
    faces: Sequence[np.ndarray],
    rows: Sequence[Mapping[str, Any]],
    settings: MapSettings,
    device: str | torch.device,
    seconds: dict[str, float],
) -> Tensor:
    """(B, S, S) fused maps of one chunk: every member's Grad-CAM at S x S, then the fusion."""
    batch = torch.from_numpy(np.stack(faces)).permute(0, 3, 1, 2).to(device)
    labels = torch.tensor([float(row.get("label", 1)) for row in rows])
    size = settings.map_size
    maps = []
    for name, detector in members.items():
        start = time.perf_counter()
        cams = gradcam_maps(detector, _member_input(detector, batch), settings.target, labels)
        seconds[name] += time.perf_counter() - start
        if tuple(cams.shape[-2:]) != (size, size):
            cams = F.interpolate(cams[:, None], size=(size, size), mode="bilinear")[:, 0]
        maps.append(cams.clamp(0, 1))
    stack = torch.stack(maps, dim=1)
    return fuse_maps(
        stack,
        settings.fusion,
        tau1=settings.tau1,
        lam=settings.lam,
        radius=settings.radius,
        unflagged=settings.unflagged,
    )
