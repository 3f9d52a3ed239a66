"""Scoring a user's own files: a folder of videos and/or images, no dataset layout.

``dfbench predict -c configs/detectors/X.yaml -c configs/data/folder.yaml
--data.init_args.path DIR --ckpt_path CKPT`` finds every video and image under
``DIR`` (recursively), extracts faces exactly as ``dfbench preprocess`` does
(evenly spaced frames, MTCNN, the same crop), and writes one score per frame
and per video to ``predictions/frames.csv`` and ``videos.csv``. Each image is
scored as a one-frame "video". Labels are unknown (-1 in the CSVs).

The faces are cached (by default under ``~/.cache/dfbench/folders/``, keyed by
the folder's absolute path), so scoring the same folder again, or with
another detector, skips the extraction. A file's cached faces are reused only
while its **content** is unchanged: by default it is identified by its SHA-256
(a user's folder is small, and a file replaced by another of the same size
within the same second would otherwise keep its old score);
``content_hash=False`` uses size and modification time instead.

Files that give no score (unreadable, no face in any frame, a name that cannot
be a cache key, a link that loops or points to nothing, a FIFO, socket or
device: those are judged by ``stat`` alone and never opened) are listed with their reason by :meth:`FolderDataModule.skipped`,
which ``predict`` writes beside the scores; per-frame failures are in the
cache's failures table.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from pathlib import Path
from typing import Any

import pandas as pd

from src.data.base import DeepfakeDataModuleBase
from src.data.frameset import FrameSet
from src.data.paths import key_problem
from src.data.preprocess import (
    FAILURE_COLUMNS,
    PreprocessConfig,
    load_frame_table,
    preprocess,
)
from src.errors import DFBenchError
from src.files import IMAGE_SUFFIXES, VIDEO_SUFFIXES

TABLE = "files"
SKIPPED_COLUMNS = ("path", "reason")


def folder_files(path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A video table of every video and image under ``path`` (labels unknown), and the
    files with a video or image suffix left out, with why (``path, reason``): not a
    regular file (a broken or looping link, a FIFO ...), or a relative path that
    cannot be a cache key."""
    root = Path(path).expanduser().resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"folder to score not found: {root}")
    candidates = sorted(
        p
        for p in root.rglob("*")
        if p.suffix.lower() in (*VIDEO_SUFFIXES, *IMAGE_SUFFIXES) and not _is_folder(p)
    )
    unusable = {p: _not_a_file(p) for p in candidates}
    files = [p for p in candidates if unusable[p] is None]
    keys = {p: f"{TABLE}/{p.relative_to(root).as_posix()}" for p in files}
    unusable |= {
        p: f"its name cannot be a cache key: {why}"
        for p, key in keys.items()
        if (why := key_problem(key)) is not None
    }
    skipped = pd.DataFrame(
        [(str(p), why) for p, why in sorted(unusable.items()) if why],
        columns=list(SKIPPED_COLUMNS),
    )
    files = [p for p in files if unusable[p] is None]
    if not files:
        raise FileNotFoundError(
            f"no videos ({', '.join(VIDEO_SUFFIXES)}) or images ({', '.join(IMAGE_SUFFIXES)}) "
            f"under {root}"
            + (
                f" that can be read ({len(skipped)} skipped: {skipped['reason'].iloc[0]})"
                if len(skipped)
                else ""
            )
        )
    videos = pd.DataFrame(
        {
            "video_key": [keys[p] for p in files],
            "path": [str(p) for p in files],
            "label": -1,
            "split": "test",
            "dataset": "files",
            "method": ["image" if p.suffix.lower() in IMAGE_SUFFIXES else "video" for p in files],
            "mask_path": "",
        }
    )
    return videos, skipped


def _is_folder(path: Path) -> bool:
    """A real folder (not followed through a link), which ``rglob`` walks into itself."""
    try:
        return stat.S_ISDIR(path.lstat().st_mode)
    except OSError:
        return False


def _not_a_file(path: Path) -> str | None:
    """Why ``path`` cannot be scored as a file, decided from ``stat`` alone (never opened:
    opening a FIFO would wait for a writer), or None for a regular file."""
    try:
        mode = path.stat().st_mode
    except OSError as error:
        if error.errno == errno.ELOOP:
            return "a symbolic link that loops (it leads back to itself); not opened"
        if path.is_symlink() and error.errno == errno.ENOENT:
            return f"a symbolic link that points to nothing ({os.readlink(path)}); not opened"
        return f"cannot be read ({error.strerror}); not opened"
    if stat.S_ISREG(mode):
        return None
    kinds = (
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISDIR, "a folder (through a symbolic link)"),
    )
    kind = next((name for test, name in kinds if test(mode)), "not a regular file")
    return f"{kind}, not a regular file; not opened"


def scan_folder(path: str | Path) -> pd.DataFrame:
    """A video table of every video and image under ``path`` (labels unknown)."""
    return folder_files(path)[0]


def skipped_files(
    videos: pd.DataFrame, frames: pd.DataFrame, failures: pd.DataFrame
) -> pd.DataFrame:
    """Files of ``videos`` with no row in ``frames``, each with the reason its failures give."""
    scored = set(frames["video_key"]) if not frames.empty else set()
    rows = []
    for video in videos.itertuples(index=False):
        if video.video_key in scored:
            continue
        own = failures[failures["video_key"] == video.video_key]
        whole = own[own["frame_idx"] < 0]
        if not whole.empty:
            reason = str(whole["reason"].iloc[0])
        elif not own.empty:
            counts = own["reason"].value_counts()
            reason = "; ".join(f"{why} ({n} frames)" for why, n in counts.items())
        else:
            reason = "no face was kept"
        rows.append((video.path, reason))
    return pd.DataFrame(rows, columns=list(SKIPPED_COLUMNS))


class FolderDataModule(DeepfakeDataModuleBase):
    """Predict-only DataModule over a folder of the user's videos and images.

    Args:
        path: the folder.
        cache_dir: where extracted faces go (default: ``~/.cache/dfbench/folders/<hash>``).
        frames_per_video: evenly spaced frames scored per video.
        keep_all_faces: score every face at least half the largest's size.
        content_hash: reuse cached faces only while a file's SHA-256 is unchanged
            (default); False compares size and modification time.
        **kwargs: :class:`~src.data.base.DeepfakeDataModuleBase` arguments.
    """

    def __init__(
        self,
        path: str,
        cache_dir: str | None = None,
        frames_per_video: int = 32,
        keep_all_faces: bool = False,
        content_hash: bool = True,
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
        self.content_hash = content_hash

    @property
    def table_path(self) -> Path:
        return self.cache_dir / "tables" / f"{TABLE}.parquet"

    @property
    def failures_path(self) -> Path:
        return self.cache_dir / "tables" / f"{TABLE}_failures.csv"

    def prepare_data(self) -> None:
        # Lightning calls this on one process only; the others wait.
        videos, _ = folder_files(self.path)
        result = preprocess(
            videos, self.cache_dir, TABLE, self.config, content_hash=self.content_hash
        )
        if not result.failures.empty:
            print(
                f"{len(result.failures)} files or frames could not be scored; see {result.failures_path}"
            )

    def setup(self, stage: str | None = None) -> None:
        if not self.table_path.is_file():
            self.prepare_data()
        frames = load_frame_table(self.table_path)
        if frames.empty:
            raise DFBenchError(
                f"no face found in any file under {self.path}; see {self.failures_path}"
            )
        again = (
            "run the same `dfbench predict` again: it redoes the files whose cached faces "
            f"are damaged (cache {self.cache_dir})"
        )
        repair = dict.fromkeys(frames["video_key"].unique(), again)
        dataset = FrameSet(frames, self.cache_dir, self.contract.input_size, repair=repair)
        self.sets["predict"] = self.sets["test"] = [(TABLE, dataset, dataset.video_keys)]

    def skipped(self) -> pd.DataFrame:
        """Files under the folder that got no score, with why (columns ``path, reason``).

        Read from the cache's tables, so it answers on any process after
        :meth:`prepare_data` has run.
        """
        videos, unusable = folder_files(self.path)
        frames = (
            pd.read_parquet(self.table_path, columns=["video_key"])
            if self.table_path.is_file()
            else pd.DataFrame(columns=["video_key"])
        )
        failures = (
            pd.read_csv(self.failures_path, keep_default_na=False)
            if self.failures_path.is_file()
            else pd.DataFrame(columns=list(FAILURE_COLUMNS))
        )
        return pd.concat([unusable, skipped_files(videos, frames, failures)], ignore_index=True)
