"""The per-frame and per-video score tables that test and predict write.

Columns: ``set, video_key, source_path, frame_idx, sample_idx, label, logit,
score`` per frame and ``set, video_key, source_path, label, n_frames, score``
per video. ``source_path`` is the absolute path of the video (or image, or
face-sequence folder) the frame came from, empty for generated data;
``label`` is 1 = fake, 0 = real and empty when unknown (a user's own files).
Files that could not be scored (unreadable, no face) are listed with their
reason in ``skipped.csv`` beside them. A detector that declares dense outputs
(``Detector.dense_outputs``: ynet's mask, LAA-Net's heatmap) also gets each
frame's predicted maps as 8-bit PNGs (:class:`MaskWriter`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch

from src.data.paths import inside
from src.data.video_io import write_png
from src.metrics import video_scores

SKIPPED_COLUMNS = ("path", "reason")


def video_sources(datamodule: object, stage: str, index: int) -> Sequence[str] | None:
    """The source file of every video of a set, by video_idx (None when the data has none).

    A DataModule may say it with ``video_paths(stage, index)``; otherwise a set
    built from a frame table (its rows carry ``path``) gives the path of each
    video's first frame.
    """
    method = getattr(datamodule, "video_paths", None)
    if callable(method):
        return list(method(stage, index))
    sets = getattr(datamodule, "sets", {}).get(stage) or []
    dataset = sets[index][1] if index < len(sets) else None
    rows, video_rows = getattr(dataset, "rows", None), getattr(dataset, "video_rows", None)
    if rows is None or video_rows is None or not rows or "path" not in rows[0]:
        return None
    return [str(rows[frames[0]]["path"]) if len(frames) else "" for frames in video_rows]


def _labels(values: np.ndarray) -> pd.Series:
    """Labels as nullable integers: 0/1 as they are, anything else (-1: unknown) empty."""
    labels = pd.Series(np.asarray(values), dtype="float64")
    return labels.where(labels.isin((0.0, 1.0))).astype("Int64")


def frame_predictions(predictions: dict[str, dict], datamodule: object, stage: str) -> pd.DataFrame:
    """One row per scored frame (see the module docstring), plus ``video_idx`` for grouping."""
    parts = []
    for index, (name, p) in enumerate(predictions.items()):
        keys = np.asarray(datamodule.video_keys(stage, index), dtype=object)
        sources = video_sources(datamodule, stage, index)
        sources = np.asarray(sources if sources is not None else [""] * len(keys), dtype=object)
        columns = {
            "set": name,
            "video_key": keys[p["video_idx"]],
            "source_path": sources[p["video_idx"]],
        }
        columns |= {k: p[k] for k in ("video_idx", "frame_idx", "sample_idx")}
        columns |= {"label": _labels(p["label"]), "logit": p["logit"], "score": p["score"]}
        parts.append(pd.DataFrame(columns))
    return pd.concat(parts, ignore_index=True)


def video_predictions(frames: pd.DataFrame, how: str) -> pd.DataFrame:
    """One row per video, its score aggregated from its frames as the metrics do."""
    parts = []
    for name, part in frames.groupby("set", sort=False):
        _, scores, _ = video_scores(
            part["score"].to_numpy(),
            part["label"].fillna(0).to_numpy() == 1,
            part["video_idx"].to_numpy(),
            how,
        )
        videos = part.groupby("video_idx").agg(
            video_key=("video_key", "first"),
            source_path=("source_path", "first"),
            label=("label", "first"),
            n_frames=("score", "size"),
        )
        parts.append(videos.reset_index(drop=True).assign(set=name, score=scores))
    columns = ["set", "video_key", "source_path", "label", "n_frames", "score"]
    return pd.concat(parts, ignore_index=True)[columns]


def skipped_files(datamodule: object) -> pd.DataFrame:
    """Files the DataModule could not score, with the reason (``skipped()``; empty without it)."""
    method = getattr(datamodule, "skipped", None)
    table = method() if callable(method) else None
    if table is None or len(table) == 0:
        return pd.DataFrame(columns=list(SKIPPED_COLUMNS))
    table = pd.DataFrame(table)
    missing = [c for c in SKIPPED_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{type(datamodule).__name__}.skipped() lacks the columns {missing}")
    return table


class MaskWriter(pl.Callback):
    """Writes every declared dense output of every frame under ``masks/`` during predict.

    ``masks/<set>/<video key>/<frame>.png`` for the output named ``mask`` (the
    manipulation mask) and ``<frame>_<name>.png`` for any other
    (:meth:`~src.detectors.dense.DenseOutput.file_name`): the probability per
    pixel at the output's own size, 0-255. The maps leave the step's outputs
    here, so a long predict run keeps only scores in memory; under DDP each
    process writes its own frames (a frame the sampler repeats is written twice
    with the same content, atomically). ``written`` counts the files.

    Args:
        folder: called once at the start of predict (on every process) for the
            output folder, so that all processes agree on it.
    """

    def __init__(self, folder: Callable[[], Path]) -> None:
        self.folder_of_run = folder
        self.folder: Path | None = None
        self.written = 0

    def on_predict_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.folder, self.written = self.folder_of_run() / "masks", 0

    def on_predict_batch_end(
        self,
        trainer: pl.Trainer,
        module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if not isinstance(outputs, dict) or "dense" not in outputs:
            return
        maps = outputs.pop("dense")
        video_idx = outputs.pop("video_idx").tolist()
        frame_idx = outputs.pop("frame_idx").tolist()
        count = len(trainer.num_predict_batches)
        name = module.set_names("predict", count)[dataloader_idx]
        keys = trainer.datamodule.video_keys("predict", dataloader_idx)
        declared = {dense.name: dense for dense in module.declared_dense_outputs()}
        for output_name, probabilities in maps.items():
            dense = declared[output_name]
            pixels = (probabilities[:, 0] * 255).round().to(torch.uint8).cpu().numpy()
            for image, video, frame in zip(pixels, video_idx, frame_idx, strict=True):
                relative = f"{keys[video]}/{dense.file_name(frame)}"
                target = inside(self.folder / name, relative, f"predicted {dense.name}")
                target.parent.mkdir(parents=True, exist_ok=True)
                write_png(target, image, compression=3)
                self.written += 1
