"""Frames per second of `dfbench preprocess` as one process and as N shards run side by side.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/preprocess_shards.py [--dataset ffpp] [--shards 3]

Writes the demo's synthetic copy of one dataset (``dfbench synth``, as
``make synthetic-data`` does), indexes it (``dfbench index``) and preprocesses
it with the demo's frame counts (8 per training video, 2 per validation/test
video) twice, into two fresh caches under a temporary folder:

* one process: ``dfbench preprocess --index ... --cache-dir single``;
* N shards started together, ``--shard I/N``, then ``--merge-shards N``.

Every process is a fresh ``dfbench`` (start-up and model loading included, as
on a cluster) limited to ``--threads`` threads, so the N shards use N times
the cores. Frames/s counts the face frames of the final table over the wall
time until the table exists (for shards: the last shard plus the merge).
The two frame tables and failure files are then compared: they must be equal.
Results go to ``benchmarks/results/preprocess_shards.json`` and the terminal.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from src.files import atomic_write_json
from src.synthetic.layouts import ROOTS

RESULTS = Path(__file__).resolve().parent / "results"
DFBENCH = [sys.executable, "-m", "src.cli"]


def dfbench(*args: str, threads: int) -> subprocess.Popen:
    environment = dict(
        os.environ,
        OMP_NUM_THREADS=str(threads),
        HF_HUB_OFFLINE="1",
        NO_ALBUMENTATIONS_UPDATE="1",
    )
    return subprocess.Popen(
        [*DFBENCH, *args], env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def finish(*processes: subprocess.Popen) -> None:
    for process in processes:
        output, _ = process.communicate()
        if process.returncode != 0:
            sys.exit(f"{' '.join(map(str, process.args))} failed:\n{output.decode()}")


def same_tables(cache: Path, reference: Path, name: str) -> None:
    """Fail unless both caches hold the same frame table and failures (landmarks bit for bit)."""
    table = pd.read_parquet(cache / "tables" / f"{name}.parquet")
    expected = pd.read_parquet(reference / "tables" / f"{name}.parquet")
    pd.testing.assert_frame_equal(
        table.drop(columns="landmarks"), expected.drop(columns="landmarks"), check_exact=True
    )
    assert all(map(np.array_equal, table.landmarks, expected.landmarks))
    failures = (cache / "tables" / f"{name}_failures.csv").read_bytes()
    assert failures == (reference / "tables" / f"{name}_failures.csv").read_bytes()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="ffpp", choices=sorted(ROOTS))
    parser.add_argument("--shards", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="threads per process")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        finish(dfbench("synth", "--out", str(root), "--datasets", args.dataset, threads=1))
        index = root / f"{args.dataset}.csv"
        raw = str(root / ROOTS[args.dataset])
        finish(
            dfbench(
                "index", "--dataset", args.dataset, "--root", raw, "--out", str(index), threads=1
            )
        )
        frames = ["--train-frames", "8", "--eval-frames", "2", "--no-progress"]

        def preprocess(cache: str, *extra: str) -> subprocess.Popen:
            options = ["--index", str(index), "--cache-dir", str(root / cache), *frames]
            return dfbench("preprocess", *options, *extra, threads=args.threads)

        start = time.perf_counter()
        finish(preprocess("single"))
        single = time.perf_counter() - start

        start = time.perf_counter()
        finish(
            *(preprocess("sharded", "--shard", f"{i}/{args.shards}") for i in range(args.shards))
        )
        shards_done = time.perf_counter() - start
        finish(preprocess("sharded", "--merge-shards", str(args.shards)))
        sharded = time.perf_counter() - start

        same_tables(root / "sharded", root / "single", args.dataset)
        table = pd.read_parquet(root / "single" / "tables" / f"{args.dataset}.parquet")
        parts = root / "sharded" / "tables" / f"{args.dataset}.shards"
        per_shard = [
            pd.read_parquet(parts / f"{i}-of-{args.shards}.parquet").video_key.nunique()
            for i in range(args.shards)
        ]
    n_frames, n_videos = len(table), table.video_key.nunique()
    results = {
        "dataset": args.dataset,
        "videos": n_videos,
        "frames": n_frames,
        "threads_per_process": args.threads,
        "cpus": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "one_process": {"seconds": single, "frames_per_s": n_frames / single},
        f"{args.shards}_shards": {
            "seconds": sharded,
            "seconds_before_merge": shards_done,
            "merge_seconds": sharded - shards_done,
            "frames_per_s": n_frames / sharded,
            "videos_per_shard": per_shard,
        },
        "tables_equal": True,
    }
    RESULTS.mkdir(exist_ok=True)
    atomic_write_json(RESULTS / "preprocess_shards.json", results)
    print(
        f"{args.dataset}: {n_frames} face frames from {n_videos} videos, "
        f"{args.threads} thread(s) per process, {os.cpu_count()} CPUs"
    )
    print(f"1 process   {single:7.1f} s  {n_frames / single:6.1f} frames/s")
    print(
        f"{args.shards} shards    {sharded:7.1f} s  {n_frames / sharded:6.1f} frames/s "
        f"(merge {sharded - shards_done:.1f} s; videos per shard {per_shard})"
    )
    print("merged table == single-process table, failures too")


if __name__ == "__main__":
    main()
