"""Tools that combine packages: augmentation chains, PRLE config, the CAM viewer, show-augment's PRLE columns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from src.augment.compose import Chain
from src.augment.prle import PrimaryRegionRemoval
from src.augment.recipes import Recipe
from src.cli import main
from src.contracts import InputContract
from src.detectors.base import Detector, DetectorOutput
from src.tools.cam import cam_grid
from src.tools.configs import datamodule_from_configs
from src.tools.prle_maps import build_prle_maps
from src.tools.show_augment import PRLE_COLUMNS, augment_grid

ROOT = Path(__file__).resolve().parents[1]


class SmallDetector(Detector):
    """conv -> mean -> linear, with its conv as the CAM layer."""

    cam_layers = ("features",)

    def __init__(self, size: int = 32) -> None:
        super().__init__()
        self.default_contract = InputContract((size, size))
        self.features = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 1)

    def forward(self, images: Tensor) -> DetectorOutput:
        return DetectorOutput(logit=self.fc(self.features(images).mean(dim=(2, 3))).squeeze(1))


def test_chain_runs_its_augmentations_in_order_with_the_side_data() -> None:
    calls = []

    def add(value: int):
        def augment(image, mask, rng, side):  # noqa: ANN001, ANN202
            calls.append((value, side["tag"]))
            return image + value, mask

        return augment

    image = np.zeros((2, 2, 3), np.uint8)
    out, _ = Chain([add(1), add(2)])(image, image[..., 0], np.random.default_rng(0), {"tag": "x"})
    assert calls == [(1, "x"), (2, "x")] and (out == 3).all()


def test_prle_config_stacks_removal_before_the_recipe() -> None:
    datamodule = datamodule_from_configs(
        [ROOT / "configs/data/ffpp_synthetic.yaml", ROOT / "configs/augment/prle.yaml"],
        ["--data.init_args.side_data={prle_map: /maps}"],
    )
    chain = datamodule.train_augment
    assert isinstance(chain, Chain)
    removal, recipe = chain.augments
    assert isinstance(removal, PrimaryRegionRemoval) and removal.p == 0.5
    assert isinstance(recipe, Recipe) and recipe.name == "prle"
    assert datamodule.side_data == {"prle_map": "/maps"}


def test_cam_grid_draws_a_row_per_set_and_two_classes(toy_cache) -> None:
    result, cache, _ = toy_cache
    frames = result.frames
    sets = {"a": frames, "b": frames[frames["split"] == "test"]}
    torch.manual_seed(0)
    grid = cam_grid(SmallDetector(), sets, cache, per_class=1, size=48)
    assert grid.shape == (24 + 2 * 48, 2 * 48, 3) and grid.dtype == np.uint8
    # Each tile holds a face with a jet overlay: colourful, not a flat colour.
    tile = grid[24 + 10 : 24 + 40, 5:40]
    assert tile.std() > 5


def test_show_augment_draws_prle_columns_from_a_map_folder(toy_cache, tmp_path) -> None:
    result, cache, _ = toy_cache
    frames = result.frames
    # BI pairs faces of two videos: the toy set's real training and validation videos.
    two = frames[(frames["label"] == 0) & frames["split"].isin(["train", "val"])]
    two = two.assign(split="train")
    table = tmp_path / "two.parquet"
    two.to_parquet(table)
    torch.manual_seed(0)
    build_prle_maps({"small": SmallDetector()}, two, cache, tmp_path / "maps", progress=False)
    grid = augment_grid(str(table), cache, rows=1, size=64, prle_maps=tmp_path / "maps")
    assert grid.shape[1] == 64 * (6 + len(PRLE_COLUMNS))
    removed_all = grid[24:, 7 * 64 : 8 * 64]
    original = grid[24:, 0:64]
    # The whole-map removal blacks out pixels the real keeps.
    assert (removed_all.sum(axis=2) == 0).sum() > (original.sum(axis=2) == 0).sum()


def test_prle_maps_and_cam_verbs_end_to_end(toy_cache, tmp_path) -> None:
    """A checkpoint as dfbench fit writes it (class recorded), then both verbs."""
    result, cache, _ = toy_cache
    torch.manual_seed(0)
    detector = SmallDetector()
    checkpoint = tmp_path / "small.ckpt"
    torch.save(
        {
            "state_dict": detector.state_dict(),
            "hyper_parameters": {"_class_path": f"{__name__}.SmallDetector"},
            "pytorch-lightning_version": pl.__version__,
        },
        checkpoint,
    )
    config = tmp_path / "data.yaml"
    config.write_text(
        "data:\n  class_path: src.data.DeepfakeDataModule\n"
        f"  init_args: {{cache_dir: {cache}, train: [toy], test: [toy]}}\n"
    )
    out = tmp_path / "prle"
    args = ["--zoo", str(checkpoint), "-c", str(config), "--out", str(out), "--no-progress"]
    assert main(["prle-maps", *args, "--map-size", "32"]) == 0
    maps = sorted((out / "maps").rglob("*.png"))
    n_train = int((result.frames["split"] == "train").sum())
    assert len(maps) == n_train
    assert (
        main(
            [
                "cam",
                "--ckpt-path",
                str(checkpoint),
                "-c",
                str(config),
                "--out",
                str(tmp_path / "cam.png"),
                "--per-class",
                "1",
            ]
        )
        == 0
    )
    assert (tmp_path / "cam.png").stat().st_size > 1000
