"""Sharded preprocessing: one video table split over N processes or nodes, merged into one table.

``dfbench preprocess ... --shard I/N`` preprocesses the videos of shard ``I``
(numbered ``0 .. N-1``, like Slurm array task ids) into the shared cache;
``dfbench preprocess ... --merge-shards N``, with the same other options,
builds the frame table and its failures from the N finished shards. The
merged table equals the one a single process would write: same rows, order,
columns and dtypes, and the same failure rows in the same order.

**Assignment.** A video belongs to shard ``H(video_key) mod N``, where ``H``
is the first 8 bytes of the SHA-256 of the key. A video's shard therefore
depends only on its key and N: re-indexing a dataset (videos added, removed,
rows reordered or their columns changed) never moves a video to another
shard. Shards are balanced in expectation: with ``n`` videos each holds
``n / N`` give or take about ``sqrt(n / N)`` (for DFDC's 119k videos over 64
shards, 1 860 +- 43). Position in the sorted table would balance small tables
exactly, but one added video would shift every video after it.

**Files**, for a frame table ``NAME`` under ``<cache>/tables/NAME.shards/``:

* ``I-of-N.started.json``: written when shard ``I`` starts (host, process id,
  time, plan), so the merge can tell a shard that is running or died from
  one that never ran;
* ``I-of-N.parquet``: written last and atomically when the shard finishes:
  its frame rows, with a record in the file's metadata of its plan, failure
  rows and counts. Its presence is the shard's done marker; a shard that
  starts again removes it first.

The **plan** is a digest of the whole video table (every row, in order) and
of the settings that shape crops: a shard's part is merged only into the
table it was made for. After a re-index every shard must run again (its
finished videos are skipped by their own markers, so that costs a stat per
video); the merge names the shards whose plan differs.

Videos are written where a single run writes them (``<cache>/<video_key>/``),
with the same done markers, so shards never write the same file, a shard
re-run redoes only its unfinished videos, and a later single-process run over
the same cache reuses everything.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from src.data.cache import read_record, write_with_record
from src.data.settings import PreprocessConfig
from src.data.tables import VIDEO_COLUMNS
from src.errors import DFBenchError
from src.files import atomic_write_json

_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


class ShardError(DFBenchError):
    """A shard that cannot be run or merged; the message names it and what to do."""


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (``0 <= index < count``)."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ShardError(f"shard {self}: the number of shards must be at least 1")
        if not 0 <= self.index < self.count:
            raise ShardError(
                f"shard {self}: shard numbers run from 0 to {self.count - 1} "
                "(numbered from 0, like Slurm array task ids)"
            )

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"2/8"`` -> ``Shard(2, 8)``."""
        match = _SPEC.match(text)
        if match is None:
            raise ShardError(
                f"shard {text!r}: expected I/N, shard I of N shards numbered from 0 (e.g. 0/8)"
            )
        return cls(int(match[1]), int(match[2]))

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def holds(self, keys: pd.Series) -> np.ndarray:
        """Which of the video ``keys`` belong to this shard (a boolean mask)."""
        return shard_of(keys, self.count) == self.index


def shard_of(keys: pd.Series, count: int) -> np.ndarray:
    """The shard of each video key among ``count`` shards: SHA-256 of the key, modulo ``count``."""
    return np.fromiter(
        (int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % count for key in keys),
        dtype=np.int64,
        count=len(keys),
    )


def plan_digest(videos: pd.DataFrame, config: PreprocessConfig, content_hash: bool) -> str:
    """What a sharded run is made of: every video-table row in order, the settings, the hashing."""
    digest = hashlib.sha256()
    digest.update(json.dumps([config.digest(), content_hash]).encode())
    for row in videos[list(VIDEO_COLUMNS)].astype(str).itertuples(index=False):
        digest.update(json.dumps(list(row)).encode())
    return digest.hexdigest()[:16]


def shard_folder(cache_root: str | Path, name: str) -> Path:
    return Path(cache_root) / "tables" / f"{name}.shards"


def part_path(cache_root: str | Path, name: str, shard: Shard) -> Path:
    """A finished shard's rows and record (its done marker)."""
    return shard_folder(cache_root, name) / f"{shard.index}-of-{shard.count}.parquet"


def started_path(cache_root: str | Path, name: str, shard: Shard) -> Path:
    return shard_folder(cache_root, name) / f"{shard.index}-of-{shard.count}.started.json"


def start_shard(cache_root: str | Path, name: str, shard: Shard, plan: str) -> None:
    """Note that ``shard`` runs (for the merge's messages) and drop its old part."""
    part_path(cache_root, name, shard).unlink(missing_ok=True)
    started = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "plan": plan,
    }
    atomic_write_json(started_path(cache_root, name, shard), started)


def finish_shard(
    cache_root: str | Path,
    name: str,
    shard: Shard,
    plan: str,
    frames: pd.DataFrame,
    failures: pd.DataFrame,
    counts: dict[str, int],
) -> Path:
    """Write the finished shard's part: its frame rows, failure rows and counts, atomically."""
    record = {
        "shard": [shard.index, shard.count],
        "plan": plan,
        "failures": failures.to_dict("records"),
        "counts": counts,
    }
    return write_with_record(part_path(cache_root, name, shard), frames, record)


@dataclass
class MergedShards:
    """The finished parts of every shard: frame rows per part, all failure rows, summed counts."""

    parts: list[pd.DataFrame]
    failures: list[dict[str, Any]]
    counts: dict[str, int]


def gather_shards(cache_root: str | Path, name: str, count: int, plan: str) -> MergedShards:
    """Read the parts of shards ``0 .. count-1``, made for ``plan``.

    Raises:
        ShardError: one line naming every shard that never ran, is unfinished
            (running, or stopped before its end) or was made for another plan.
    """
    problems, parts, failures = [], [], []
    counts: dict[str, int] = {}
    for index in range(count):
        shard = Shard(index, count)
        record = read_record(part_path(cache_root, name, shard))
        if record is None:
            problems.append(_not_done(cache_root, name, shard, plan))
        elif record.get("plan") != plan or record.get("shard") != [index, count]:
            problems.append(f"shard {shard} was made from another video table or other settings")
        else:
            parts.append(pd.read_parquet(part_path(cache_root, name, shard)))
            failures.extend(record["failures"])
            for key, value in record["counts"].items():
                counts[key] = counts.get(key, 0) + value
    if problems:
        raise ShardError(
            f"cannot merge the {count} shards of frame table {name!r}: "
            + "; ".join(problems)
            + f" (run each with --shard I/{count} and the same options, then merge again)"
        )
    return MergedShards(parts, failures, counts)


def _not_done(cache_root: str | Path, name: str, shard: Shard, plan: str) -> str:
    """Why a shard without a part is not done: it never ran, or it started and has not finished."""
    try:
        started = json.loads(started_path(cache_root, name, shard).read_text())
    except (OSError, ValueError):
        return f"shard {shard} never ran"
    if started.get("plan") != plan:
        return f"shard {shard} never ran on this video table and settings"
    return (
        f"shard {shard} is unfinished (started {started.get('started')} on "
        f"{started.get('host')}, process {started.get('pid')}: still running, or stopped)"
    )
