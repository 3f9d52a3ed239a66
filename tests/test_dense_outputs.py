"""Declared dense outputs: scored by declaration (a Face X-ray-style boundary), written, drawn."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from sklearn.metrics import roc_auc_score
from torch import Tensor, nn
from torch.utils.data import DataLoader

from src.contracts import InputContract
from src.detectors.base import Detector, DetectorOutput
from src.detectors.dense import (
    BLENDING_BOUNDARY,
    DenseOutput,
    check_dense_outputs,
    manipulation_mask_output,
)
from src.synthetic import SyntheticFaceDataModule
from src.tools.show_masks import COLUMNS, mask_samples_grid

BOUNDARY = DenseOutput(
    key="boundary_logit",
    name="boundary",
    description="the blending boundary of the face swap",
    target=BLENDING_BOUNDARY,
)


class BoundaryDetector(Detector):
    """A Face X-ray stand-in: its boundary logits are the image's first channel.

    It also fills ``mask_logit`` with the same map; that field is scored only
    when ``declare_mask`` declares it.
    """

    def __init__(self, declare_mask: bool = False, size: int = 4) -> None:
        super().__init__()
        self.default_contract = InputContract((size, size))
        self.dense_outputs = (BOUNDARY, manipulation_mask_output()) if declare_mask else (BOUNDARY,)
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, images: Tensor) -> DetectorOutput:
        logits = images[:, :1] * self.scale
        return DetectorOutput(
            logit=images.mean((1, 2, 3)),
            mask_logit=logits,
            extras={"boundary_logit": logits},
        )


def hand_batch() -> list[dict[str, Tensor]]:
    """A real and a fake whose mask has a soft seam: the boundary 4 M (1 - M) is 1 at M = 0.5."""
    mask = torch.tensor([[0, 0, 0, 0], [0, 0.5, 0.5, 0], [0, 0.5, 1.0, 0], [0, 0, 0, 0]]).view(
        1, 4, 4
    )
    # Fake: the seam is (1,1), (1,2), (2,1); predicted (1,1), (1,2) and the inside (2,2).
    fake = torch.tensor(
        [
            [-3.0, -2.5, -2.0, -1.5],
            [-1.0, 2.0, 3.0, -0.5],
            [-2.2, -0.2, 1.0, -2.8],
            [-4, -3, -2, -1],
        ]
    )
    real = torch.full((4, 4), -2.0)
    real[0, 0] = 1.5  # a false positive on a real counts in the AUC, in no IoU
    items = []
    for index, (logits, label, m) in enumerate(((real, 0, torch.zeros(1, 4, 4)), (fake, 1, mask))):
        items.append(
            {
                "image": logits.expand(3, 4, 4).clone(),
                "label": torch.tensor(float(label)),
                "mask": m,
                "has_mask": torch.tensor(True),
                "sample_idx": torch.tensor(index),
                "video_idx": torch.tensor(index),
                "frame_idx": torch.tensor(0),
            }
        )
    return items


def run_test(model: Detector) -> dict[str, float]:
    trainer = pl.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    trainer.test(model, dataloaders=DataLoader(hand_batch(), batch_size=2), verbose=False)
    return model.test_results["test"]


def test_a_declared_boundary_is_scored_against_the_boundary_target() -> None:
    results = run_test(BoundaryDetector())
    # Seam pixels of the fake: TP 2, FP 1 (the inside, M = 1), FN 1.
    assert results["boundary_pixel_iou"] == pytest.approx(2 / 4)
    assert results["boundary_pixel_f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    items = hand_batch()
    truth = np.concatenate([np.zeros(16), (4 * items[1]["mask"] * (1 - items[1]["mask"])).ravel()])
    scores = np.concatenate([items[0]["image"][0].ravel(), items[1]["image"][0].ravel()])
    expected = roc_auc_score(truth > 0.5, scores)
    bound = results["boundary_pixel_auc_binning_bound"]
    assert abs(results["boundary_pixel_auc"] - expected) <= bound + 1e-12
    assert results["boundary_n_pixel_frames"] == 2 and results["boundary_n_pixel_fakes"] == 1
    # mask_logit is set but not declared: no manipulation-mask metrics.
    assert not any(key.startswith("pixel_") for key in results)


def test_each_declared_output_is_scored_against_its_own_target() -> None:
    results = run_test(BoundaryDetector(declare_mask=True))
    # The same map against the manipulation mask (M > 0.5 only at (2,2)): TP 1, FP 2, FN 0.
    assert results["pixel_iou"] == pytest.approx(1 / 3)
    assert results["pixel_f1"] == pytest.approx(2 / 4)
    assert results["boundary_pixel_iou"] == pytest.approx(2 / 4)


def test_declarations_that_clash_are_refused() -> None:
    twin = DenseOutput(
        "other", "other", "a second map", BLENDING_BOUNDARY, metric_prefix="boundary_"
    )
    with pytest.raises(ValueError, match="share the metric prefix"):
        check_dense_outputs((BOUNDARY, twin), "Twin")
    with pytest.raises(ValueError, match="share a key"):
        check_dense_outputs((BOUNDARY, BOUNDARY), "Twin")
    check_dense_outputs((BOUNDARY, DenseOutput("other", "other", "not scored")), "Fine")


def synthetic_data() -> SyntheticFaceDataModule:
    return SyntheticFaceDataModule(
        train_videos=2, val_videos=2, test_videos=4, frames_per_video=1,
        test_sets=["blend"], input_size=32, batch_size=4,
    )  # fmt: skip


def test_predict_writes_every_declared_output(tmp_path: Path) -> None:
    from src.cli.predictions import MaskWriter

    writer = MaskWriter(lambda: tmp_path)
    trainer = pl.Trainer(
        accelerator="cpu", callbacks=[writer], logger=False,
        enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    model = BoundaryDetector(declare_mask=True, size=32)
    trainer.predict(model, datamodule=synthetic_data())
    masks = sorted((tmp_path / "masks").rglob("[0-9][0-9][0-9][0-9][0-9][0-9].png"))
    boundaries = sorted((tmp_path / "masks").rglob("*_boundary.png"))
    assert len(masks) == len(boundaries) > 0 and writer.written == 2 * len(masks)
    assert [p.name.replace("_boundary", "") for p in boundaries] == [p.name for p in masks]
    # Both maps are the same logits here, so both files hold the same probabilities.
    mask = cv2.imread(str(masks[0]), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(mask, cv2.imread(str(boundaries[0]), cv2.IMREAD_UNCHANGED))


def test_show_masks_draws_three_columns_per_declared_output() -> None:
    data = synthetic_data()
    one = mask_samples_grid(BoundaryDetector(size=32), data, per_class=1, size=32)
    two = mask_samples_grid(
        BoundaryDetector(declare_mask=True, size=32), data, per_class=1, size=32
    )
    assert one.shape == (2 * 32, len(COLUMNS) * 32, 3)
    assert two.shape == (2 * 32, (1 + 2 * 3) * 32, 3)
    # The second output's probability column equals the first's (the same logits).
    assert np.array_equal(two[32:, 3 * 32 : 4 * 32], two[32:, 6 * 32 :])
