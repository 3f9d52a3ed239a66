"""DeepfakeMetric under DDP, in one process: shards with sampler padding, gathered, counted once.

Each rank runs in a thread with its own metric. The metric is given, through
torchmetrics' public ``dist_sync_fn`` and ``distributed_available_fn`` arguments,
an in-memory all-gather with the semantics of ``torch.distributed``'s: every rank
calls it in the same order, and the k-th call returns every rank's k-th tensor.
The shards are what ``torch.utils.data.DistributedSampler`` hands each rank, so
they carry its padding (samples repeated so that all ranks hold the same
number). The expected values come from scikit-learn and pandas on the dataset
itself.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import accuracy_score, average_precision_score, roc_auc_score
from torch.utils.data import DistributedSampler

from src.metrics import DeepfakeMetric

WORLD_SIZE = 4
N_SAMPLES = 21  # 24 after padding to a multiple of 4: three samples twice


class InMemoryAllGather:
    """An all-gather among threads: call k of every rank returns every rank's call-k tensor."""

    def __init__(self, world_size: int) -> None:
        self.world_size = world_size
        self.barrier = threading.Barrier(world_size, timeout=60)
        self.lock = threading.Lock()
        self.rounds: dict[int, list[torch.Tensor | None]] = {}

    def for_rank(self, rank: int) -> Callable[..., list[torch.Tensor]]:
        calls = 0

        def all_gather(tensor: torch.Tensor, group: object = None) -> list[torch.Tensor]:
            nonlocal calls
            calls, key = calls + 1, calls
            with self.lock:
                self.rounds.setdefault(key, [None] * self.world_size)[rank] = tensor.clone()
            self.barrier.wait()
            return list(self.rounds[key])

        return all_gather


def dataset(seed: int = 3) -> dict[str, np.ndarray]:
    """Frames of 3-frame videos, one label per video, logits that separate the classes partly."""
    rng = np.random.default_rng(seed)
    video = np.arange(N_SAMPLES) // 3
    label = rng.integers(0, 2, video.max() + 1)[video]
    logit = (rng.normal(size=N_SAMPLES) + 1.2 * label).astype(np.float32)
    return {
        "sample_idx": np.arange(N_SAMPLES),
        "video_idx": video,
        "frame_idx": np.arange(N_SAMPLES) % 3,
        "label": label,
        "logit": logit,
        "score": 1.0 / (1.0 + np.exp(-logit.astype(np.float64))),
    }


def shard(rank: int) -> list[int]:
    sampler = DistributedSampler(range(N_SAMPLES), num_replicas=WORLD_SIZE, rank=rank, seed=0)
    return list(sampler)


def run_ranks(work: Callable[[DeepfakeMetric], object]) -> list[object]:
    """Fill one metric per rank with its shard (batches of 2), then run ``work`` on every rank."""
    data = dataset()
    gather = InMemoryAllGather(WORLD_SIZE)

    def rank_main(rank: int) -> object:
        metric = DeepfakeMetric(
            dist_sync_fn=gather.for_rank(rank), distributed_available_fn=lambda: True
        )
        indices = np.array(shard(rank))
        for batch in np.array_split(indices, len(indices) // 2):
            metric.update(
                torch.as_tensor(data["logit"][batch]),
                torch.as_tensor(data["label"][batch]),
                torch.as_tensor(batch),
                torch.as_tensor(data["video_idx"][batch]),
                torch.as_tensor(data["frame_idx"][batch]),
            )
        return work(metric)

    with ThreadPoolExecutor(WORLD_SIZE) as pool:
        return list(pool.map(rank_main, range(WORLD_SIZE)))


def sklearn_metrics(frames: pd.DataFrame) -> dict[str, float]:
    videos = frames.groupby("video_idx").agg(score=("score", "mean"), label=("label", "first"))
    return {
        "frame_auc": roc_auc_score(frames.label, frames.score),
        "frame_ap": average_precision_score(frames.label, frames.score),
        "frame_acc": accuracy_score(frames.label, frames.score > 0.5),
        "video_auc": roc_auc_score(videos.label, videos.score),
        "video_ap": average_precision_score(videos.label, videos.score),
        "video_acc": accuracy_score(videos.label, videos.score > 0.5),
    }


def test_the_sampler_pads_the_shards_with_repeated_samples() -> None:
    """The premise: together the shards hold every sample, three of them twice."""
    shards = [shard(rank) for rank in range(WORLD_SIZE)]
    assert [len(s) for s in shards] == [6] * WORLD_SIZE
    counts = np.bincount(np.concatenate(shards), minlength=N_SAMPLES)
    assert counts.min() == 1 and sorted(counts)[-3:] == [2, 2, 2] and counts.sum() == 24


def test_padding_changes_the_metrics_so_counting_it_would_show() -> None:
    """Without this the next tests could pass with or without de-duplication."""
    frames = pd.DataFrame(dataset())
    padded = frames.iloc[np.concatenate([shard(rank) for rank in range(WORLD_SIZE)])]
    once, twice = sklearn_metrics(frames), sklearn_metrics(padded)
    for key in ("frame_auc", "frame_ap", "video_ap"):
        assert abs(once[key] - twice[key]) > 1e-3, key


@pytest.mark.parametrize("route", ["compute", "predictions"])
def test_every_rank_gets_the_metrics_of_the_dataset_counted_once(route: str) -> None:
    """``compute()`` (validation) and ``summarise(predictions())`` (test, predict) alike."""
    if route == "compute":
        results = run_ranks(lambda metric: metric.compute())
    else:
        results = run_ranks(lambda metric: metric.summarise(metric.predictions()))
    expected = sklearn_metrics(pd.DataFrame(dataset()))
    for result in results:
        assert result["n_frames"] == N_SAMPLES
        assert result["n_videos"] == 7
        for key, value in expected.items():
            assert result[key] == pytest.approx(value, abs=1e-12), key


def test_gathered_predictions_are_one_row_per_sample_in_sample_order() -> None:
    data = dataset()
    for predictions in run_ranks(lambda metric: metric.predictions()):
        for column in ("sample_idx", "video_idx", "frame_idx", "label"):
            np.testing.assert_array_equal(predictions[column], data[column], err_msg=column)
        np.testing.assert_allclose(predictions["score"], data["score"], rtol=0, atol=1e-12)
