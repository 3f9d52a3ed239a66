"""Synthetic datasets, ready to train on: synthesise -> index -> preprocess.

``dfbench synth --out data/synthetic --prepare`` (``make synthetic-data``)
writes the raw trees under ``data/synthetic/<Dataset>/``, the video tables
under ``data/synthetic/index/<name>.csv`` and the frame cache under
``data/synthetic/cache`` with one table per dataset named as in
``configs/data/*_synthetic.yaml`` (``ffpp``, ``cdf2``, ``dfd``, ...). Every step
resumes: a finished tree, table or video is not redone.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from src.data.indexers import build_video_table
from src.data.preprocess import PreprocessConfig, PreprocessResult, preprocess
from src.files import atomic_write_csv
from src.synthetic.layouts import ALL, ROOTS, synthesize

#: Frames kept per training video and per validation/test video when ``frames`` is None.
TRAIN_FRAMES = 8
EVAL_FRAMES = 2


def prepare_synthetic(
    out: str | Path,
    datasets: Sequence[str] = ALL,
    size: str = "default",
    seed: int = 0,
    frames: int | None = None,
    progress: bool = True,
) -> dict[str, PreprocessResult]:
    """Synthesise, index and preprocess ``datasets`` under ``out``; frame tables by name.

    ``frames`` is the number of frames kept per video in every split; None keeps
    :data:`EVAL_FRAMES` per validation and test video and every frame of a training
    video (at most :data:`TRAIN_FRAMES`): test intervals narrow with more videos, not
    with more frames of the same video, so evaluation frames are the cheap ones to cut.
    """
    # Absolute: the index holds absolute video paths, and frame paths are stored
    # relative to the cache, which must therefore be spelled the same way.
    out = Path(out).resolve()
    wanted = list(datasets)
    if "df1" in wanted and "ffpp" not in wanted:
        wanted.insert(0, "ffpp")  # DF-1.0's reals are FF++'s source videos
    roots = synthesize(out, wanted, seed=seed, size=size)
    per_split = (
        {"train": TRAIN_FRAMES, "val": EVAL_FRAMES, "test": EVAL_FRAMES}
        if frames is None
        else dict.fromkeys(("train", "val", "test"), frames)
    )
    config = PreprocessConfig(frames=per_split)
    results = {}
    for name in datasets:
        options = {"ffpp_root": out / ROOTS["ffpp"]} if name == "df1" else {}
        videos = build_video_table(name, roots[name], **options)
        atomic_write_csv(out / "index" / f"{name}.csv", videos)
        results[name] = preprocess(videos, out / "cache", name, config, progress=progress)
    return results
