"""Scoring a user's own files: a folder of videos and/or images, no dataset layout.

``dfbench predict -c configs/detectors/X.yaml -c configs/data/folder.yaml
--data.init_args.path DIR --ckpt_path CKPT`` finds every video and image under
``DIR`` (recursively), extracts faces exactly as ``dfbench preprocess`` does
(evenly spaced frames, MTCNN, the same crop), and writes one score per frame
and per video to ``predictions/frames.csv`` and ``videos.csv``. Each image is
scored as a one-frame "video". Labels are unknown (-1 in the CSVs).

The faces are cached (by default under ``~/.cache/dfbench/folders/``, keyed by
the folder's absolute path), so scoring the same folder again, or with
another detector, skips the extraction; files that cannot be read, and frames
without a face, are listed in the cache's failures table and reported.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pandas as pd

from src.data.base import DeepfakeDataModuleBase
from src.data.datamodule import FrameSet
from src.data.preprocess import (
    PreprocessConfig,
    load_frame_table,
    preprocess,
)
from src.files import IMAGE_SUFFIXES, VIDEO_SUFFIXES


def scan_folder(path: str | Path) -> pd.DataFrame:
    """A video table of every video and image under ``path`` (labels unknown)."""
    root = Path(path).expanduser().resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"folder to score not found: {root}")
    files = sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and p.suffix.lower() in (*VIDEO_SUFFIXES, *IMAGE_SUFFIXES)
    )
    if not files:
        raise FileNotFoundError(
            f"no videos ({', '.join(VIDEO_SUFFIXES)}) or images ({', '.join(IMAGE_SUFFIXES)}) under {root}"
        )
    return pd.DataFrame(
        {
            "video_key": [f"files/{p.relative_to(root).as_posix()}" for p in files],
            "path": [str(p) for p in files],
            "label": -1,
            "split": "test",
            "dataset": "files",
            "method": ["image" if p.suffix.lower() in IMAGE_SUFFIXES else "video" for p in files],
            "mask_path": "",
        }
    )


class FolderDataModule(DeepfakeDataModuleBase):
    """Predict-only DataModule over a folder of the user's videos and images.

    Args:
        path: the folder.
        cache_dir: where extracted faces go (default: ``~/.cache/dfbench/folders/<hash>``).
        frames_per_video: evenly spaced frames scored per video.
        keep_all_faces: score every face at least half the largest's size.
        **kwargs: :class:`~src.data.base.DeepfakeDataModuleBase` arguments.
    """

    def __init__(
        self,
        path: str,
        cache_dir: str | None = None,
        frames_per_video: int = 32,
        keep_all_faces: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.path = Path(path).expanduser().resolve()
        digest = hashlib.sha1(str(self.path).encode()).hexdigest()[:12]
        self.cache_dir = (
            Path(cache_dir)
            if cache_dir
            else Path.home() / ".cache" / "dfbench" / "folders" / digest
        )
        self.config = PreprocessConfig(
            frames={"test": frames_per_video}, keep_all_faces=keep_all_faces
        )

    def prepare_data(self) -> None:
        # Lightning calls this on one process only; the others wait.
        result = preprocess(scan_folder(self.path), self.cache_dir, "files", self.config)
        if not result.failures.empty:
            print(
                f"{len(result.failures)} files or frames could not be scored; see {result.failures_path}"
            )

    def setup(self, stage: str | None = None) -> None:
        table_path = self.cache_dir / "tables" / "files.parquet"
        if not table_path.is_file():
            self.prepare_data()
        frames = load_frame_table(table_path)
        if frames.empty:
            raise RuntimeError(
                f"no face found in any file under {self.path}; see {self.cache_dir}/tables/"
            )
        dataset = FrameSet(frames, self.cache_dir, self.contract.input_size)
        self.sets["predict"] = self.sets["test"] = [("files", dataset, dataset.video_keys)]
