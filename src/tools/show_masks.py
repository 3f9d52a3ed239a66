"""Predicted and true forgery masks over the faces: a picture to judge localisation by.

One row per sample: the face, the face with its true mask in green, the face
with the predicted mask in red, and the predicted probability as grey levels
(white = 1). A detector draws every dense output it declares
(``Detector.dense_outputs``), three columns each: its target in green (the
face untinted when it has none), the prediction in red, the probability. :func:`mask_overlay_grid` takes plain arrays and returns one RGB
array, so a notebook or a report can draw it too.

:func:`write_mask_samples` (``dfbench show-masks``) draws a trained detector
on a few test faces of a data config: for each test set ``per_class`` reals,
then ``per_class`` fakes (those with a known mask first), with the set, class
and score P(fake) written on the face. Items come from the DataModule's own
test datasets, so any DataModule that follows the batch contract works (the
frame cache, the in-memory synthetic faces, a folder); they are visited in a
seeded random order, so the same command draws the same faces.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from src.data.base import DeepfakeDataModuleBase
from src.detectors.base import Detector
from src.detectors.dense import DenseOutput
from src.errors import DFBenchError
from src.tools.configs import datamodule_from_configs
from src.tools.pictures import write_png

COLUMNS = ("face", "true mask", "predicted mask", "P(manipulated)")
TRUE_COLOUR = (0, 255, 0)
PREDICTED_COLOUR = (255, 0, 0)


def overlay(
    image: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int], alpha: float
) -> np.ndarray:
    """``image (1 - alpha m) + colour alpha m`` per pixel: the mask tints the face, 0 leaves it."""
    weight = alpha * np.clip(mask, 0.0, 1.0)[..., None]
    tinted = image.astype(np.float32) * (1 - weight) + np.asarray(colour, np.float32) * weight
    return np.round(tinted).astype(np.uint8)


def _fit(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    mask = np.asarray(mask, dtype=np.float32)
    if mask.shape != size:
        mask = cv2.resize(mask, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    return mask


def _title(tile: np.ndarray, text: str) -> np.ndarray:
    out = tile.copy()
    scale = max(tile.shape[0] / 400, 0.3)
    for colour, thickness in (((0, 0, 0), 3), ((255, 255, 255), 1)):
        cv2.putText(
            out,
            text,
            (4, int(14 * scale / 0.35)),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            colour,
            thickness,
            cv2.LINE_AA,
        )
    return out


def mask_overlay_grid(
    images: np.ndarray,
    true_masks: np.ndarray,
    predicted_masks: np.ndarray,
    alpha: float = 0.5,
    titles: bool = True,
    captions: Sequence[str] | None = None,
    columns: Sequence[str] = COLUMNS,
) -> np.ndarray:
    """The grid as an RGB uint8 image: ``len(images)`` rows x :data:`COLUMNS`.

    Args:
        images: (N, H, W, 3) uint8 RGB faces.
        true_masks: (N, h, w) in [0, 1] (resized to H x W if they differ).
        predicted_masks: (N, h, w) probabilities in [0, 1] (``sigmoid(mask_logit)``).
        alpha: opacity of a mask value of 1.
        titles: write the column names on the first row.
        captions: one text per row, written on its face tile (in place of the
            first row's "face" title).
        columns: the four column titles.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(
            f"images must be (N, H, W, 3) uint8 RGB, got {images.shape} {images.dtype}"
        )
    n, height, width = images.shape[:3]
    if len(true_masks) != n or len(predicted_masks) != n:
        raise ValueError(
            f"{n} images but {len(true_masks)} true and {len(predicted_masks)} predicted masks"
        )
    if captions is not None and len(captions) != n:
        raise ValueError(f"{n} images but {len(captions)} captions")
    rows = []
    for index in range(n):
        true = _fit(true_masks[index], (height, width))
        predicted = _fit(predicted_masks[index], (height, width))
        grey = np.round(np.clip(predicted, 0, 1) * 255).astype(np.uint8)
        tiles = [
            images[index],
            overlay(images[index], true, TRUE_COLOUR, alpha),
            overlay(images[index], predicted, PREDICTED_COLOUR, alpha),
            np.repeat(grey[..., None], 3, axis=2),
        ]
        if titles and index == 0:
            tiles = [_title(tile, name) for tile, name in zip(tiles, columns, strict=True)]
        if captions is not None:
            tiles[0] = _title(images[index], captions[index])
        rows.append(np.concatenate(tiles, axis=1))
    return np.concatenate(rows, axis=0)


#: Items visited per wanted face before drawing what was found (a set without fakes ends).
SCAN_PER_FACE = 32


def pick_items(
    dataset: Dataset, per_class: int, rng: np.random.Generator
) -> list[dict[str, torch.Tensor]]:
    """``per_class`` real items then ``per_class`` fake ones, fakes with a known mask preferred.

    Items are loaded one at a time in a random order and the scan stops as soon
    as both classes are full (or after ``SCAN_PER_FACE`` items per wanted face),
    so a large cached set costs a few image reads, not a pass over the set.
    """
    reals: list[dict[str, torch.Tensor]] = []
    masked: list[dict[str, torch.Tensor]] = []
    maskless: list[dict[str, torch.Tensor]] = []
    order = rng.permutation(len(dataset))[: SCAN_PER_FACE * 2 * per_class]
    for index in order:
        item = dataset[int(index)]
        if float(item["label"]) < 0.5:
            if len(reals) < per_class:
                reals.append(item)
        elif bool(item["has_mask"]):
            masked.append(item)
        else:
            maskless.append(item)
        if len(reals) == per_class and len(masked) >= per_class:
            break
    return reals + (masked + maskless)[:per_class]


def _tile(image: np.ndarray, size: int) -> np.ndarray:
    if image.shape[:2] == (size, size):
        return image
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)


def dense_columns(dense: DenseOutput) -> tuple[str, str, str, str]:
    """Column titles of one dense output (:data:`COLUMNS` for the manipulation mask)."""
    if dense.name == "mask":
        return COLUMNS
    target = dense.target.name if dense.target is not None else "no target"
    return ("face", target, f"predicted {dense.name}", f"P({dense.name})")


def mask_samples_grid(
    detector: Detector,
    datamodule: DeepfakeDataModuleBase,
    sets: Sequence[str] | None = None,
    per_class: int = 2,
    size: int = 160,
    seed: int = 0,
) -> np.ndarray:
    """The picture as an RGB uint8 image: one row per face, ``size`` px tiles.

    Raises:
        ValueError: the detector declares no dense output, or a named set is not a test set.
    """
    declared = detector.declared_dense_outputs()
    if not declared:
        raise DFBenchError(
            f"{type(detector).__name__} declares no dense output (dense_outputs); show-masks "
            "needs a detector that does, such as ynet"
        )
    datamodule.setup("test")
    available = {name: dataset for name, dataset, _ in datamodule.sets["test"]}
    names = list(sets or available)
    unknown = [name for name in names if name not in available]
    if unknown:
        raise DFBenchError(f"no test set {unknown}; the data config has {sorted(available)}")
    rng = np.random.default_rng(seed)
    device = next(detector.parameters()).device
    detector = detector.eval()
    faces, captions = [], []
    targets: dict[str, list[np.ndarray]] = {dense.name: [] for dense in declared}
    predicted: dict[str, list[np.ndarray]] = {dense.name: [] for dense in declared}
    for name in names:
        items = pick_items(available[name], per_class, rng)
        if not items:
            continue
        raw = default_collate(items)
        batch = datamodule.normalise({key: value.to(device) for key, value in raw.items()})
        with torch.no_grad():
            output = detector(batch["image"])
            maps = dict((dense.name, logits) for dense, logits in detector.dense_maps(output))
            missing = [dense.key for dense in declared if dense.name not in maps]
            if missing:
                raise DFBenchError(
                    f"{type(detector).__name__} declares the dense outputs {missing} "
                    "but its forward returns none of them"
                )
            for dense in declared:
                predicted[dense.name] += list(torch.sigmoid(maps[dense.name][:, 0]).cpu().numpy())
                target = (
                    dense.target(batch)[:, 0]
                    if dense.target is not None
                    else torch.zeros_like(batch["mask"][:, 0])
                )
                targets[dense.name] += list(target.float().cpu().numpy())
        scores = torch.sigmoid(output.logit).cpu().numpy()
        for index, item in enumerate(items):
            faces.append(_tile(item["image"].permute(1, 2, 0).numpy(), size))
            kind = "real" if float(item["label"]) < 0.5 else "fake"
            if kind == "fake" and not bool(item["has_mask"]):
                kind = "fake, no mask"
            captions.append(f"{name} {kind} p={scores[index]:.2f}")
    if not faces:
        raise DFBenchError(f"the test sets {names} hold no faces")
    faces = np.stack(faces)
    groups = [
        mask_overlay_grid(
            faces,
            targets[dense.name],
            predicted[dense.name],
            captions=captions,
            columns=dense_columns(dense),
        )
        for dense in declared
    ]
    # The face column once, then each output's three columns.
    return np.concatenate([groups[0]] + [group[:, size:] for group in groups[1:]], axis=1)


def write_mask_samples(
    checkpoint: str | Path,
    configs: Sequence[str | Path],
    out: str | Path,
    sets: Sequence[str] | None = None,
    per_class: int = 2,
    seed: int = 0,
    trusted: bool = False,
) -> Path:
    """Load a checkpoint, build the data config's DataModule at its input contract, write the PNG.

    The DataModule is given the detector's input size, mean and std, the way a
    Trainer would hand them over, so the faces are what the detector was tested on.
    ``trusted`` loads a checkpoint that needs more than tensors and plain values.
    """
    detector = Detector.from_checkpoint(checkpoint, trusted=trusted)
    contract = detector.input_contract
    overrides = [
        f"--data.init_args.input_size=[{contract.input_size[0]},{contract.input_size[1]}]",
        f"--data.init_args.mean=[{','.join(map(str, contract.mean))}]",
        f"--data.init_args.std=[{','.join(map(str, contract.std))}]",
    ]
    datamodule = datamodule_from_configs(configs, overrides)
    grid = mask_samples_grid(detector, datamodule, sets, per_class, seed=seed)
    return write_png(out, grid)
