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


def prepare_synthetic(
    out: str | Path,
    datasets: Sequence[str] = ALL,
    size: str = "default",
    seed: int = 0,
    frames: int = 8,
    progress: bool = True,
) -> dict[str, PreprocessResult]:
    """Synthesise, index and preprocess ``datasets`` under ``out``; frame tables by name."""
    out = Path(out)
    wanted = list(datasets)
    if "df1" in wanted and "ffpp" not in wanted:
        wanted.insert(0, "ffpp")  # DF-1.0's reals are FF++'s source videos
    roots = synthesize(out, wanted, seed=seed, size=size)
    config = PreprocessConfig(frames={"train": frames, "val": frames, "test": frames})
    results = {}
    for name in datasets:
        options = {"ffpp_root": out / ROOTS["ffpp"]} if name == "df1" else {}
        videos = build_video_table(name, roots[name], **options)
        atomic_write_csv(out / "index" / f"{name}.csv", videos)
        results[name] = preprocess(videos, out / "cache", name, config, progress=progress)
    return results
