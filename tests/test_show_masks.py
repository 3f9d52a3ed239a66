"""The mask overlay picture: layout and pixel values by hand; the samples grid and its verb."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from src.cli import main
from src.contracts import InputContract
from src.detectors.base import Detector, DetectorOutput
from src.detectors.dense import manipulation_mask_output
from src.synthetic import SyntheticFaceDataModule
from src.tools.show_masks import (
    COLUMNS,
    TRUE_COLOUR,
    mask_overlay_grid,
    mask_samples_grid,
    overlay,
    pick_items,
    write_mask_samples,
)


def test_grid_layout_and_overlay_values() -> None:
    images = np.full((2, 8, 8, 3), 100, dtype=np.uint8)
    true = np.zeros((2, 8, 8), dtype=np.float32)
    true[:, :4] = 1.0  # top half manipulated
    predicted = np.zeros((2, 4, 4), dtype=np.float32)  # half resolution: resized to 8 x 8
    predicted[1] = 1.0
    grid = mask_overlay_grid(images, true, predicted, alpha=0.5, titles=False)
    assert grid.shape == (2 * 8, len(COLUMNS) * 8, 3)
    tile = lambda row, column: grid[8 * row : 8 * row + 8, 8 * column : 8 * column + 8]  # noqa: E731
    assert np.all(tile(0, 0) == 100)
    # True mask in green at opacity 0.5 where it is 1, the face untouched where it is 0.
    assert tile(0, 1)[0, 0].tolist() == [50, 178, 50]  # 100 * 0.5 + (0, 255, 0) * 0.5, rounded
    assert tile(0, 1)[7, 7].tolist() == [100, 100, 100]
    # Predicted mask: sample 0 predicts nothing, sample 1 everything (red).
    assert np.all(tile(0, 2) == 100)
    assert tile(1, 2)[3, 3].tolist() == [178, 50, 50]
    assert np.all(tile(0, 3) == 0) and np.all(tile(1, 3) == 255)


def test_titles_only_on_the_first_row_and_bad_inputs_named() -> None:
    images = np.full((2, 64, 64, 3), 100, dtype=np.uint8)
    masks = np.zeros((2, 64, 64))
    titled = mask_overlay_grid(images, masks, masks)
    plain = mask_overlay_grid(images, masks, masks, titles=False)
    assert not np.array_equal(titled[:64], plain[:64])
    assert np.array_equal(titled[64:], plain[64:])
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\) uint8"):
        mask_overlay_grid(images.astype(np.float32), masks, masks)
    with pytest.raises(ValueError, match="2 images but 1 true"):
        mask_overlay_grid(images, masks[:1], masks)


class TopHalfMasker(Detector):
    """Predicts the top half of every face as manipulated; score = P(fake) from the mean red."""

    dense_outputs = (manipulation_mask_output(),)

    def __init__(self, size: int = 32) -> None:
        super().__init__()
        self.default_contract = InputContract((size, size))
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, images: Tensor) -> DetectorOutput:
        b, _, h, w = images.shape
        mask = torch.full((b, 1, h, w), -20.0, device=images.device)
        mask[:, :, : h // 2] = 20.0
        return DetectorOutput(logit=self.scale * images[:, 0].mean((1, 2)), mask_logit=mask)


class NoMask(TopHalfMasker):
    dense_outputs = ()

    def forward(self, images: Tensor) -> DetectorOutput:
        return DetectorOutput(logit=super().forward(images).logit)


def synthetic_data(size: int = 32) -> SyntheticFaceDataModule:
    return SyntheticFaceDataModule(
        train_videos=2, val_videos=2, test_videos=6, frames_per_video=1,
        test_sets=["blend", "hard"], input_size=size, batch_size=4,
    )  # fmt: skip


def test_pick_items_reals_first_and_fakes_with_masks_preferred() -> None:
    kinds = [(0, True), (1, False), (1, True), (0, True), (1, False), (1, True), (0, True)]
    items = [
        {"label": torch.tensor(float(label)), "has_mask": torch.tensor(known), "id": index}
        for index, (label, known) in enumerate(kinds)
    ]
    picked = pick_items(items, 2, np.random.default_rng(0))
    assert [int(i["label"]) for i in picked] == [0, 0, 1, 1]
    assert all(bool(i["has_mask"]) for i in picked)
    assert len({i["id"] for i in picked}) == 4
    # Three fakes wanted, two have masks: the maskless one fills the last place.
    picked = pick_items(items, 3, np.random.default_rng(0))
    assert [bool(i["has_mask"]) for i in picked[3:]] == [True, True, False]
    # Same seed, same faces; another seed visits them in another order.
    ids = [[i["id"] for i in pick_items(items, 2, np.random.default_rng(s))] for s in (0, 0, 1)]
    assert ids[0] == ids[1] != ids[2]


def test_samples_grid_draws_true_and_predicted_masks_of_each_set() -> None:
    data = synthetic_data()
    grid = mask_samples_grid(TopHalfMasker(), data, per_class=1, size=32, seed=3)
    assert grid.shape == (2 * 2 * 32, len(COLUMNS) * 32, 3)  # 2 sets x (1 real + 1 fake)
    # The probability column: white on the top half of every row, black below
    # (the first row's top carries the column title).
    probability = grid[:, 3 * 32 :]
    for row in range(4):
        tile = probability[32 * row : 32 * row + 32]
        assert np.all(tile[16:] == 0) and (row == 0 or np.all(tile[:16] == 255))
    # The true-mask column is the face tinted by the item's own mask (reals untinted).
    rng = np.random.default_rng(3)
    items = pick_items(data.sets["test"][0][1], 1, rng)
    for row, item in enumerate(items):
        face = item["image"].permute(1, 2, 0).numpy()
        expected = overlay(face, item["mask"][0].numpy() / 255.0, TRUE_COLOUR, 0.5)
        tile = grid[32 * row : 32 * row + 32, 32:64]
        assert np.array_equal(tile[16:], expected[16:])  # below the title text
    assert int(items[1]["label"]) == 1 and items[1]["mask"].float().mean() > 10
    with pytest.raises(ValueError, match=r"no test set \['nope'\]"):
        mask_samples_grid(TopHalfMasker(), data, sets=["nope"])
    with pytest.raises(ValueError, match="NoMask declares no dense output"):
        mask_samples_grid(NoMask(), data, per_class=1)


def test_show_masks_verb_writes_the_picture(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = tmp_path / "data.yaml"
    config.write_text(
        "data:\n  class_path: src.synthetic.SyntheticFaceDataModule\n"
        "  init_args: {train_videos: 2, val_videos: 2, test_videos: 4, frames_per_video: 1,"
        " test_sets: [blend]}\n"
    )
    for cls, name in ((TopHalfMasker, "masker"), (NoMask, "nomask")):
        torch.save(
            {
                "state_dict": cls().state_dict(),
                "hyper_parameters": {"_class_path": f"{__name__}.{cls.__name__}"},
                "pytorch-lightning_version": pl.__version__,
            },
            tmp_path / f"{name}.ckpt",
        )
    out = tmp_path / "masks.png"
    args = ["-c", str(config), "--out", str(out), "--per-class", "1"]
    assert main(["show-masks", "--ckpt-path", str(tmp_path / "masker.ckpt"), *args]) == 0
    picture = cv2.imread(str(out))
    assert picture.shape == (2 * 160, len(COLUMNS) * 160, 3)  # 1 real + 1 fake, 160 px tiles
    assert "mask grid written to" in capsys.readouterr().out
    with pytest.raises(ValueError, match="NoMask declares no dense output"):
        write_mask_samples(tmp_path / "nomask.ckpt", [config], tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()


def test_predict_writes_every_frames_mask_and_keeps_only_scores(tmp_path: Path) -> None:
    from src.cli.predictions import MaskWriter

    data = synthetic_data()
    writer = MaskWriter(lambda: tmp_path)
    trainer = pl.Trainer(
        accelerator="cpu", callbacks=[writer], logger=False,
        enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    outputs = trainer.predict(TopHalfMasker(), datamodule=data)
    files = sorted((tmp_path / "masks").rglob("*.png"))
    batches = [b for part in outputs for b in (part if isinstance(part, list) else [part])]
    frames = sum(len(b["score"]) for b in batches)
    assert writer.written == len(files) == frames > 0
    assert all("dense" not in b and "score" in b for b in batches)
    names = {f.relative_to(tmp_path / "masks").parts[0] for f in files}
    assert len(names) == len(data.predict_dataloader())  # one folder per predicted set
    mask = cv2.imread(str(files[0]), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (32, 32) and (mask[:16] == 255).all() and (mask[16:] == 0).all()
