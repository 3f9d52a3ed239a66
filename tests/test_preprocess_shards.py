"""Sharded preprocessing: shards merged equal a single run, a failed shard redoes only its own
videos, and the merge refuses in one line while a shard is missing or unfinished."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from media import write_defects

from src.cli import main
from src.data.preprocess import PreprocessConfig, merge_shards, preprocess
from src.data.shards import Shard, ShardError, shard_of

SHARDS = 3


def assert_same_frame_table(path: Path, expected: Path) -> None:
    """Same rows, order, columns and dtypes (arrow schema), and the same landmarks bit for bit."""
    assert pq.read_schema(path).remove_metadata() == pq.read_schema(expected).remove_metadata()
    table, reference = pd.read_parquet(path), pd.read_parquet(expected)
    pd.testing.assert_frame_equal(
        table.drop(columns="landmarks"), reference.drop(columns="landmarks"), check_exact=True
    )
    for ours, theirs in zip(table.landmarks, reference.landmarks, strict=True):
        assert np.array_equal(ours, theirs)


def marker_times(cache: Path, keys: list[str]) -> dict[str, int]:
    return {key: (cache / key / "frames.parquet").stat().st_mtime_ns for key in keys}


# ------------------------------------------------------------------------------ assignment
def test_a_videos_shard_is_the_documented_hash_of_its_key_alone() -> None:
    keys = pd.Series([f"dfdc/train/part{i // 1000}/{i:06d}" for i in range(6000)])
    shards = shard_of(keys, 8)
    # The documented rule, spelled independently: first 8 bytes of SHA-256, big-endian, mod N.
    for key, shard in zip(keys[:50], shards[:50], strict=True):
        assert shard == int(hashlib.sha256(key.encode()).hexdigest()[:16], 16) % 8
    # Re-indexing (rows dropped, added, reordered) moves no video to another shard.
    reindexed = pd.concat([keys[::-2], pd.Series(["dfdc/new/a", "dfdc/new/b"])])
    again = dict(zip(reindexed, shard_of(reindexed, 8), strict=True))
    assert all(again[key] == shard for key, shard in zip(keys, shards, strict=True) if key in again)
    # Balanced: every shard within 4 standard deviations of n / N (binomial).
    sizes = np.bincount(shards, minlength=8)
    expected, spread = 6000 / 8, np.sqrt(6000 * (1 / 8) * (7 / 8))
    assert np.all(np.abs(sizes - expected) < 4 * spread), sizes
    # Shards partition the table.
    held = [Shard(i, 8).holds(keys) for i in range(8)]
    assert (np.sum(held, axis=0) == 1).all()


# ---------------------------------------------------------------- shards == a single run
@pytest.fixture
def mixed_index(tmp_path: Path, toy_videos: list[dict]) -> tuple[Path, pd.DataFrame]:
    """The toy videos plus three defective ones (failure rows), as a video table CSV."""
    videos = pd.DataFrame(toy_videos + write_defects(tmp_path / "defects"))
    index = tmp_path / "mixed.csv"
    videos.to_csv(index, index=False)
    return index, videos


def test_three_shards_merged_equal_a_single_run(tmp_path, mixed_index, toy_cache) -> None:
    index, videos = mixed_index
    _, toy_cache_root, config = toy_cache
    # The single-process reference: the toy cache already holds the six toy videos.
    single_cache = tmp_path / "single"
    shutil.copytree(toy_cache_root, single_cache)
    single = preprocess(videos, single_cache, "mixed", config, progress=False)
    assert single.processed == 3 and not single.failures.empty

    cache = tmp_path / "sharded"
    options = ["preprocess", "--index", str(index), "--cache-dir", str(cache), "--no-progress"]
    options += ["--train-frames", "6", "--eval-frames", "6"]
    held = []
    for shard in range(SHARDS):
        assert main([*options, "--shard", f"{shard}/{SHARDS}"]) == 0
        part = pd.read_parquet(cache / "tables" / "mixed.shards" / f"{shard}-of-{SHARDS}.parquet")
        held.append(set(part.video_key))
    assert not (cache / "tables" / "mixed.parquet").exists()
    assert all(held) and set.union(*held) == set(single.frames.video_key)
    assert sum(map(len, held)) == len(set.union(*held))  # disjoint
    assert main([*options, "--merge-shards", str(SHARDS)]) == 0

    assert_same_frame_table(cache / "tables" / "mixed.parquet", single.table_path)
    # Failure rows of every shard, in the single run's order.
    assert (cache / "tables" / "mixed_failures.csv").read_bytes() == (
        single.failures_path.read_bytes()
    )


# ------------------------------------------------------- a failed shard, the merge's refusals
def test_a_failed_shard_reruns_only_its_videos_and_the_merge_waits_for_it(
    tmp_path, toy_videos, toy_cache
) -> None:
    clean, _, config = toy_cache
    videos = pd.DataFrame(toy_videos)
    cache = tmp_path / "cache"
    with pytest.raises(ShardError) as refused:
        merge_shards(videos, cache, "toy", SHARDS, config)
    assert str(refused.value) == (
        "cannot merge the 3 shards of frame table 'toy': shard 0/3 never ran; shard 1/3 never "
        "ran; shard 2/3 never ran (run each with --shard I/3 and the same options, then merge "
        "again)"
    )

    owner = {
        key: int(s) for key, s in zip(videos.video_key, shard_of(videos.video_key, 3), strict=True)
    }
    failing = Shard(0, SHARDS)
    mine = [key for key, s in owner.items() if s == failing.index]
    others = [key for key, s in owner.items() if s != failing.index]
    assert len(mine) >= 2, "the failing shard must hold a finished and an unfinished video"
    # Shard 0 stops after its first video (a node lost mid-shard); the others finish.
    stopped = preprocess(videos, cache, "toy", config, progress=False, shard=failing, limit=1)
    assert stopped.processed == 1
    for index in (1, 2):
        done = preprocess(videos, cache, "toy", config, progress=False, shard=Shard(index, 3))
        assert done.processed == sum(s == index for s in owner.values())
    with pytest.raises(ShardError) as refused:
        merge_shards(videos, cache, "toy", SHARDS, config)
    message = str(refused.value)
    assert "\n" not in message and "shard 1/3" not in message and "shard 2/3" not in message
    assert message.startswith("cannot merge the 3 shards of frame table 'toy': shard 0/3 is ")
    assert "unfinished (started " in message and "still running, or stopped)" in message

    before = marker_times(cache, others)
    rerun = preprocess(videos, cache, "toy", config, progress=False, shard=failing)
    assert (rerun.processed, rerun.skipped) == (len(mine) - 1, 1)
    assert set(rerun.frames.video_key) == set(mine)
    assert marker_times(cache, others) == before  # the other shards' videos untouched

    merged = merge_shards(videos, cache, "toy", SHARDS, config)
    assert_same_frame_table(merged.table_path, clean.table_path)
    # The counts add up the shards' last runs: shard 0 found one video done.
    assert (merged.processed, merged.skipped) == (5, 1)

    # Parts made for another table or other settings are refused, each named.
    relabelled = videos.assign(
        label=np.where(videos.video_key == mine[0], 1 - videos.label, videos.label)
    )
    other_settings = PreprocessConfig(frames={"train": 5, "val": 6, "test": 6})
    for table, settings in ((relabelled, config), (videos, other_settings)):
        with pytest.raises(ShardError) as refused:
            merge_shards(table, cache, "toy", SHARDS, settings)
        assert str(refused.value).count("was made from another video table or other settings") == 3


def test_merge_and_shard_options_fail_in_one_line(tmp_path, toy_videos, capsys) -> None:
    index = tmp_path / "toy.csv"
    pd.DataFrame(toy_videos).to_csv(index, index=False)
    options = ["preprocess", "--index", str(index), "--cache-dir", str(tmp_path / "cache")]
    cases = [
        (
            ["--merge-shards", "2"],
            "dfbench preprocess: cannot merge the 2 shards of frame table 'toy': shard 0/2 "
            "never ran; shard 1/2 never ran (run each with --shard I/2",
        ),
        (
            ["--shard", "3/3"],
            "dfbench preprocess: argument --shard: shard 3/3: shard numbers run from 0 to 2 "
            "(numbered from 0, like Slurm array task ids)",
        ),
        (
            ["--shard", "1of3"],
            "dfbench preprocess: argument --shard: shard '1of3': expected I/N",
        ),
        (
            ["--shard", "0/0"],
            "dfbench preprocess: argument --shard: shard 0/0: the number of shards must be at "
            "least 1",
        ),
        (
            ["--shard", "0/2", "--merge-shards", "2"],
            "dfbench preprocess: argument --merge-shards: not allowed with argument --shard",
        ),
    ]
    for extra, expected in cases:
        assert main([*options, *extra]) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line.startswith(expected), line
    assert not (tmp_path / "cache" / "tables" / "toy.parquet").exists()


def test_the_batch_lines_run_a_shard_per_array_task_and_the_merge(
    tmp_path, toy_videos, monkeypatch
) -> None:
    """What a Slurm script runs: the shell expands the task id; paths are absolute."""
    import subprocess

    from src.cli.preprocess import build_parser, sharded_command_lines

    pd.DataFrame(toy_videos).to_csv(tmp_path / "toy.csv", index=False)
    monkeypatch.chdir(tmp_path)
    options = ["--index", "toy.csv", "--cache-dir", "cache", "--train-frames", "6"]
    shard_line, merge_line = sharded_command_lines([*options, "--shard", "0/9"], 3)

    def shell_words(line: str) -> list[str]:
        script = f'set -- {line}; printf "%s\\n" "$@"'
        environment = {"PATH": "/usr/bin:/bin", "SLURM_ARRAY_TASK_ID": "2"}
        run = subprocess.run(["bash", "-c", script], env=environment, capture_output=True)
        return run.stdout.decode().splitlines()

    shard_words, merge_words = shell_words(shard_line), shell_words(merge_line)
    assert shard_words[:2] == merge_words[:2] == ["dfbench", "preprocess"]
    shard, merge = (build_parser().parse_args(w[2:]) for w in (shard_words, merge_words))
    assert (shard.shard, shard.merge_shards) == (Shard(2, 3), None)
    assert (merge.shard, merge.merge_shards) == (None, 3)
    for args in (shard, merge):
        assert args.index == tmp_path / "toy.csv" and args.cache_dir == str(tmp_path / "cache")
        assert (args.table, args.train_frames, args.no_progress) == ("toy", 6, True)
