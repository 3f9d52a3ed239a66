"""Class balance: the sampler's per-epoch and per-rank counts, the DataModule's choice, DDP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_datamodule import PaintSquare, make_dm

from src.data.sampling import BalancedSampler

ROOT = Path(__file__).resolve().parents[1]


def imbalanced_table(toy_cache, folder: Path) -> Path:
    """The toy table with its training fake repeated as three videos: 1 real to 3 fakes."""
    result, _, _ = toy_cache
    table = pd.read_parquet(result.table_path)
    fake = table[(table["split"] == "train") & (table["label"] == 1)]
    copies = [fake.assign(video_key=f"{key}_{n}") for n in (1, 2) for key in fake["video_key"]]
    path = folder / "imbalanced.parquet"
    pd.concat([table, *copies], ignore_index=True).to_parquet(path)
    return path


def test_each_epoch_draws_both_classes_equally() -> None:
    labels = np.array([0] * 2 + [1] * 8)
    sampler = BalancedSampler(labels, seed=3)
    epochs = []
    for epoch in range(4):
        sampler.set_epoch(epoch)
        drawn = list(sampler)
        assert len(drawn) == len(sampler) == 10
        assert Counter(labels[drawn].tolist()) == {0: 5, 1: 5}
        # The smaller class in whole passes: each real 2 or 3 times; fakes never twice.
        assert sorted(Counter(i for i in drawn if labels[i] == 0).values()) == [2, 3]
        assert len({i for i in drawn if labels[i] == 1}) == 5
        epochs.append(drawn)
    assert len({tuple(e) for e in epochs}) == 4  # a new draw every epoch
    again = BalancedSampler(labels, seed=3)
    again.set_epoch(2)
    assert list(again) == epochs[2]  # and the same draw for the same seed and epoch


def test_each_rank_gets_its_own_balanced_share() -> None:
    labels = np.array([0] * 3 + [1] * 17)
    shares = []
    for rank in range(2):
        sampler = BalancedSampler(labels, num_replicas=2, rank=rank, seed=0)
        sampler.set_epoch(5)
        shares.append(list(sampler))
    for drawn in shares:
        assert Counter(labels[drawn].tolist()) == {0: 5, 1: 5}
    fakes = [{i for i in drawn if labels[i] == 1} for drawn in shares]
    assert not fakes[0] & fakes[1]  # the larger class is split, not repeated, across ranks
    with pytest.raises(ValueError, match="needs real and fake training items, got 0 reals"):
        BalancedSampler([1, 1, 1])


def test_the_datamodule_balances_an_imbalanced_training_set(toy_cache, tmp_path) -> None:
    _, cache, _ = toy_cache
    table = str(imbalanced_table(toy_cache, tmp_path))
    dm = make_dm(cache, train=[table], val=[table], test=[table], batch_size=2)
    assert dm.balanced is True
    assert dict(dm.hparams) == {
        "val_fakes": "real",
        "balance": True,
        "train_real_videos": 1,
        "train_fake_videos": 3,
    }
    loader = dm.train_dataloader()
    assert isinstance(loader.sampler, BalancedSampler)
    labels = Counter(int(v) for batch in loader for v in batch["label"])
    assert abs(labels[0] - labels[1]) <= dm.batch_size and labels[0] > 0
    assert labels[0] == labels[1] == len(dm.sets["fit"][0][1]) // 2
    # Told not to, it does not; a balanced set (the toy one, 1:1) needs nothing.
    assert make_dm(cache, train=[table], val=[table], test=[table], balance=False).balanced is False
    plain = make_dm(cache)
    assert plain.balanced is False and not isinstance(
        plain.train_dataloader().sampler, BalancedSampler
    )


def test_pseudo_fakes_are_balanced_by_construction(toy_cache, tmp_path) -> None:
    _, cache, _ = toy_cache
    table = str(imbalanced_table(toy_cache, tmp_path))
    dm = make_dm(cache, train=[table], val=[table], test=[table], pseudo_fake=PaintSquare())
    assert dm.balanced is False and dm.hparams["balance"] is False
    with pytest.raises(ValueError, match="balance=true with pseudo_fake"):
        make_dm(cache, pseudo_fake=PaintSquare(), balance=True)
    with pytest.raises(ValueError, match="balance must be true, false or null"):
        make_dm(cache, balance="yes")


@pytest.mark.ddp
def test_two_ranks_each_see_balanced_epochs(toy_cache, tmp_path) -> None:
    _, cache, _ = toy_cache
    table = imbalanced_table(toy_cache, tmp_path)
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1")
    probe = Path(__file__).with_name("ddp_balance_probe.py")
    done = subprocess.run(
        [sys.executable, str(probe), str(cache), str(table), str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    seen = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    # 4 videos x 3 slots = 12 items: 6 per class, 3 per class on each rank, every epoch.
    for epoch in range(3):
        fakes = []
        for rank in seen:
            steps = [step for step in rank if step[0] == epoch]
            labels = [label for _, batch, _ in steps for label in batch]
            assert Counter(labels) == {0.0: 3, 1.0: 3}, (epoch, labels)
            fakes.append(
                {i for _, batch, idx in steps for i, v in zip(idx, batch, strict=True) if v}
            )
        assert not fakes[0] & fakes[1]
