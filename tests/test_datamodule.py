"""DeepfakeDataModule over a real frame cache: sets, per-epoch sampling, filters, pseudo-fakes."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from src.augment.generator import PairedGenerator
from src.augment.perturb import Perturbation
from src.augment.recipes import PairTransform, Recipe
from src.contracts import BATCH_KEYS
from src.data import DeepfakeDataModule
from src.errors import DFBenchError


def make_dm(cache: Path, **kwargs) -> DeepfakeDataModule:
    options = {
        "cache_dir": str(cache),
        "train": ["toy"],
        "test": ["toy"],
        "batch_size": 4,
        "input_size": 64,
    }
    dm = DeepfakeDataModule(**(options | kwargs))
    dm.setup()
    return dm


class PaintSquare(PairedGenerator):
    """A trivial pseudo-fake: a bright square over the nose landmark, with its mask."""

    def pair(self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, side):
        x, y = np.asarray(side["landmarks"])[30].astype(int)
        blend = np.zeros(image.shape[:2], np.float32)
        blend[max(y - 8, 0) : y + 8, max(x - 8, 0) : x + 8] = 1.0
        fake = image.copy()
        fake[blend > 0] = 255
        return image, fake, blend


def test_sets_follow_the_splits_and_the_contract(toy_cache) -> None:
    _, cache, _ = toy_cache
    dm = make_dm(cache, train_frames_per_video=4)
    train, val, test = (dm.sets[stage][0][1] for stage in ("fit", "validate", "test"))
    assert len(train) == 2 * 4 and len(val) == 2 * 6 and len(test) == 2 * 6
    assert test.video_keys == ["toy/Swap/test", "toy/real/test"]
    batch = dm.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)
    assert set(batch) == set(BATCH_KEYS)
    assert batch["image"].shape == (4, 3, 64, 64) and batch["image"].dtype == torch.float32
    assert batch["has_mask"].all()
    items = [test[i] for i in range(len(test))]
    assert [int(i["sample_idx"]) for i in items] == list(range(12))
    assert [int(i["video_idx"]) for i in items] == [0] * 6 + [1] * 6
    fake_masks = torch.stack([i["mask"] for i in items[:6]]).float()
    assert (fake_masks > 0).float().mean() > 0.05 and all(i["mask"].max() == 0 for i in items[6:])


def test_training_frames_are_drawn_afresh_and_spread(toy_cache) -> None:
    _, cache, _ = toy_cache
    dm = make_dm(cache, train_frames_per_video=3)
    train = dm.sets["fit"][0][1]
    epochs = []
    for seed in (0, 1, 2, 3):
        torch.manual_seed(seed)
        epochs.append([int(train[i]["frame_idx"]) for i in range(len(train))])
    assert len({tuple(e) for e in epochs}) > 1
    for drawn in epochs:
        for video in range(2):
            frames = drawn[3 * video : 3 * video + 3]
            assert len(set(frames)) == 3 and frames == sorted(frames)  # one per stretch


def test_method_filter_keeps_reals(toy_cache) -> None:
    _, cache, _ = toy_cache
    assert make_dm(cache, methods=["Swap"]).frames(["toy"], "test").label.tolist().count(0) == 6
    only_reals = make_dm(cache, methods=["NeuralTextures"]).frames(["toy"], "test")
    assert set(only_reals.label) == {0}


def test_pseudo_fakes_pair_each_real_in_the_batch(toy_cache) -> None:
    _, cache, _ = toy_cache
    dm = make_dm(cache, pseudo_fake=PaintSquare(), train_frames_per_video=2, batch_size=2)
    train = dm.sets["fit"][0][1]
    assert len(train) == 1 * 2  # reals only: one training real video
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape[0] == 4
    assert batch["label"].tolist() == [0.0, 1.0, 0.0, 1.0]
    assert batch["sample_idx"].unique().numel() == 4
    real, fake = batch["image"][0], batch["image"][1]
    fake_mask = batch["mask"][1, 0] > 0
    assert batch["mask"][0].max() == 0 and fake_mask.any()
    assert torch.equal(real[:, ~fake_mask], fake[:, ~fake_mask])
    core = batch["mask"][1, 0] == 255  # resizing softens the edge; the core is all fake
    assert core.any() and (fake[:, core] == 255).all()


def test_missing_table_and_empty_split_are_explained(toy_cache, tmp_path) -> None:
    result, cache, _ = toy_cache
    with pytest.raises(FileNotFoundError, match=r"nope\.parquet.*dfbench preprocess"):
        make_dm(cache, train=["nope"])
    test_only = tmp_path / "test_only.parquet"
    table = pd.read_parquet(result.table_path)
    table[table.split == "test"].to_parquet(test_only)
    with pytest.raises(ValueError, match=r"hold no train frames"):
        make_dm(cache, train=[str(test_only)])
    from src.data.paths import UnsafePathError

    with pytest.raises(UnsafePathError, match=r"table name '\.\./\.\./toy' contains a path"):
        make_dm(cache, train=["../../toy"])


def test_fit_and_test_through_the_cli(toy_cache, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from src.cli import main

    _, cache, _ = toy_cache
    root = Path(__file__).resolve().parents[1] / "configs"
    monkeypatch.chdir(tmp_path)
    common = [
        "-c",
        str(root / "detectors/xception.yaml"),
        "-c",
        str(root / "data/ffpp.yaml"),
        "-c",
        str(root / "profiles/demo.yaml"),
        f"--data.init_args.cache_dir={cache}",
        "--data.init_args.train=[toy]",
        "--data.init_args.test=[toy]",
        "--data.init_args.num_workers=0",
        "--data.init_args.batch_size=4",
        "--trainer.max_epochs=1",
        "--trainer.enable_progress_bar=false",
    ]
    assert main(["fit", *common]) == 0
    (last,) = tmp_path.glob("runs/xception*/toy/*/checkpoints/last.ckpt")
    # The class-balance choice (off: the toy set is 1:1) is recorded with the run.
    (hparams,) = tmp_path.glob("runs/xception*/toy/*/fit-*/hparams.yaml")
    assert "balance: false" in hparams.read_text()
    assert "train_real_videos: 1" in hparams.read_text()
    assert main(["test", *common, f"--ckpt_path={last}"]) == 0
    (metrics,) = tmp_path.glob("runs/xception*/toy/*/test-*/test_metrics.json")
    result = json.loads(metrics.read_text())
    assert (
        list(result) == ["toy"]
        and result["toy"]["n_frames"] == 12
        and result["toy"]["n_videos"] == 2
    )


def test_deepfakebench_json_index_feeds_the_same_frames(toy_cache, tmp_path) -> None:
    from src.data.deepfakebench import write_deepfakebench_json

    result, cache, _ = toy_cache
    table = pd.read_parquet(result.table_path)
    index = write_deepfakebench_json(
        table, tmp_path / "Toy.json", data_root=cache, dataset_name="Toy"
    )
    from_json = make_dm(cache, train=[str(index)], test=[str(index)], deepfakebench_root=str(cache))
    from_parquet = make_dm(cache)
    a, b = from_json.sets["test"][0][1], from_parquet.sets["test"][0][1]
    assert len(a) == len(b) == 12
    for i in range(len(a)):
        assert torch.equal(a[i]["image"], b[i]["image"])
        assert a[i]["label"] == b[i]["label"]


class IdentityFake(PairedGenerator):
    def pair(self, image, mask, rng, side):
        return image, image.copy(), np.zeros(image.shape[:2], np.float32)


@pytest.mark.parametrize("recipe", ["sbi", "laa_net", "laa_net_sbi"])
def test_pairs_share_every_augmentation_draw(toy_cache, recipe: str) -> None:
    """A 'fake' equal to its real stays equal through the recipe and the pair transform."""
    _, cache, _ = toy_cache
    dm = make_dm(
        cache,
        pseudo_fake=IdentityFake(),
        train_augment=Recipe(recipe),
        pair_transform=PairTransform(recipe),
        train_frames_per_video=2,
        batch_size=2,
    )
    for seed in range(6):
        torch.manual_seed(seed)
        batch = next(iter(dm.train_dataloader()))
        assert torch.equal(batch["image"][0::2], batch["image"][1::2])


def test_test_perturbation_is_applied_and_repeatable(toy_cache) -> None:
    _, cache, _ = toy_cache
    clean = make_dm(cache).sets["test"][0][1]
    noisy = [
        make_dm(cache, test_perturbation=Perturbation("noise", 4)).sets["test"][0][1]
        for _ in range(2)
    ]
    assert not torch.equal(clean[0]["image"], noisy[0][0]["image"])
    assert torch.equal(noisy[0][0]["image"], noisy[1][0]["image"])
    # Seeded by the frame: two frames get different noise, one frame the same in any order.
    assert torch.equal(noisy[0][3]["image"], noisy[1][3]["image"])
    assert torch.equal(clean[0]["mask"], noisy[0][0]["mask"])
    with pytest.raises(ValueError, match="unknown perturbation 'fog'"):
        Perturbation("fog")


def test_objects_that_break_the_protocol_are_refused() -> None:
    # A configuration the user can fix: the suite's own error type, shown as one line.
    with pytest.raises(DFBenchError, match="pseudo_fake must implement PseudoFakeGenerator"):
        DeepfakeDataModule(pseudo_fake="sbi")
    with pytest.raises(DFBenchError, match="test_perturbation must implement Augment"):
        DeepfakeDataModule(test_perturbation="blur")


class Recorder(PairedGenerator):
    """Records the side data it is given, and paints nothing."""

    def __init__(self) -> None:
        self.seen: list[dict] = []

    def pair(self, image, mask, rng, side):
        self.seen.append(dict(side))
        return image, image.copy(), np.zeros(image.shape[:2], np.float32)


class SideAugment:
    """An augmentation that writes the named side array into the mask (to see it arrive)."""

    def __call__(self, image, mask, rng, side):
        return image, cv2.resize(
            side["prle_map"], mask.shape[::-1], interpolation=cv2.INTER_NEAREST
        )


def test_side_data_reaches_generators_and_augmentations(toy_cache, tmp_path) -> None:
    result, cache, _ = toy_cache
    table = pd.read_parquet(result.table_path)
    maps = tmp_path / "prle_maps"
    for path in table["crop_path"]:
        (maps / path).parent.mkdir(parents=True, exist_ok=True)
        # Each frame's map is a flat grey level fixed by its frame number.
        frame = int(table.loc[table.crop_path == path, "frame_idx"].iloc[0])
        cv2.imwrite(str(maps / path), np.full((20, 30), 10 + frame, np.uint8))
    recorder = Recorder()
    dm = make_dm(
        cache,
        pseudo_fake=recorder,
        train_augment=SideAugment(),
        side_data={"prle_map": str(maps)},
        train_frames_per_video=2,
    )
    train = dm.sets["fit"][0][1]
    item = train[0]
    (side,) = recorder.seen
    row = table[table.crop_path == side["crop_path"]].iloc[0]
    np.testing.assert_array_equal(side["landmarks"], np.asarray(row["landmarks"]).reshape(-1, 2))
    assert side["video_key"] == row["video_key"] and side["prle_map"].shape == (20, 30)
    assert (side["prle_map"] == 10 + int(row["frame_idx"])).all()
    # The augmentation saw the same array: the fake's mask is that grey level everywhere.
    assert (item["mask"][1] == 10 + int(row["frame_idx"])).all()
    with pytest.raises(TypeError):
        train.side(train.rows[0])["label"] = 1  # read-only
    # Validation and test frames carry no side data: they need no maps at all.
    dm = make_dm(cache, side_data={"prle_map": str(tmp_path / "no_maps")})
    for stage in ("validate", "test"):
        evaluated = dm.sets[stage][0][1]
        assert "prle_map" not in evaluated.side(evaluated.rows[0])
        assert len([evaluated[i] for i in range(len(evaluated))]) == len(evaluated)
    missing = make_dm(cache, side_data={"prle_map": str(maps)}).sets["fit"][0][1]
    (maps / missing.rows[0]["crop_path"]).unlink()
    with pytest.raises(FileNotFoundError, match="side_data 'prle_map'"):
        [missing[i] for i in range(len(missing))]


def test_the_datamodule_never_imports_augment() -> None:
    import subprocess
    import sys

    code = (
        "import sys, src.data.datamodule; "
        "print(sorted(m for m in sys.modules if m.startswith('src.augment')))"
    )
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=True
    )
    assert out.stdout.strip() == "[]"
