"""Pixel-level localisation metrics against scikit-learn and hand-computed cases; DDP gather."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import run_dfbench
from conftest import TINY_SIZE
from sklearn.metrics import roc_auc_score

from src.metrics import PixelMetric, binned_auc, pixel_metrics, pixel_summaries

ROOT = Path(__file__).resolve().parents[1]


def random_masks(seed: int, n: int = 12, size: int = 16) -> tuple[torch.Tensor, ...]:
    """Soft true masks (reals all zero) and logits that follow them with noise."""
    generator = torch.Generator().manual_seed(seed)
    labels = (torch.arange(n) % 3 != 0).float()
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    centre = torch.rand(n, 2, generator=generator) * size
    distance = ((yy - centre[:, 0, None, None]) ** 2 + (xx - centre[:, 1, None, None]) ** 2).sqrt()
    masks = (1 - (distance - 4).clamp(0, 3) / 3) * labels.view(-1, 1, 1)
    logits = 3 * (masks - 0.5) + 1.5 * torch.randn(n, size, size, generator=generator)
    return logits.unsqueeze(1), masks.unsqueeze(1), labels


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pixel_auc_matches_sklearn_within_its_bound(seed: int) -> None:
    logits, masks, labels = random_masks(seed)
    metric = PixelMetric()
    metric.update(logits, masks, labels, torch.arange(len(labels)))
    result = metric.compute()
    expected = roc_auc_score((masks > 0.5).flatten().numpy(), logits.flatten().numpy())
    assert 0.6 < expected < 0.99
    assert result["pixel_auc_binning_bound"] < 2e-3
    assert abs(result["pixel_auc"] - expected) <= result["pixel_auc_binning_bound"] + 1e-12


def test_pixel_auc_is_exact_when_scores_are_constant_per_bin() -> None:
    bins, logit_range = 16, 4.0
    width = 2 * logit_range / bins
    logits, masks, labels = random_masks(3)
    # Bin centres, including values beyond the range that fall into the outer bins.
    index = ((logits + logit_range) / width).floor().clamp(0, bins - 1)
    centred = -logit_range + (index + 0.5) * width
    histograms, confusion = pixel_summaries(centred, masks, bins, logit_range)
    result = pixel_metrics(histograms.numpy(), confusion.numpy(), labels.numpy())
    expected = roc_auc_score((masks > 0.5).flatten().numpy(), centred.flatten().numpy())
    assert result["pixel_auc"] == pytest.approx(expected, abs=1e-12)
    assert result["pixel_auc_binning_bound"] > 0.01  # coarse bins: many ties, still exact


def test_binned_auc_hand_computed() -> None:
    # Scores by bin: negatives at bins 0, 0, 1; positives at bins 1, 2.
    auc, bound = binned_auc(np.array([2, 1, 0]), np.array([0, 1, 1]))
    # Pairs: pos@1 beats 2 negatives, ties 1 (half); pos@2 beats 3 -> (2 + 0.5 + 3) / 6.
    assert auc == pytest.approx(5.5 / 6)
    assert bound == pytest.approx(0.5 / 6)


def test_iou_and_f1_hand_computed_over_fakes_only() -> None:
    true = torch.tensor(
        [
            [[1.0, 1.0], [0.0, 0.0]],  # fake: TP 1 (0,0), FP 1 (1,0), FN 1 (0,1)
            [[0.6, 0.0], [0.0, 0.5]],  # fake: 0.5 is not manipulated; TP 1, FP 3
            [[0.0, 0.0], [0.0, 0.0]],  # real: its false positives count in no IoU
        ]
    ).unsqueeze(1)
    logits = torch.tensor(
        [
            [[2.0, -1.0], [3.0, -2.0]],
            [[1.0, 1.0], [1.0, 1.0]],
            [[5.0, 5.0], [5.0, 0.0]],  # a logit of exactly 0 (p = 0.5) is negative
        ]
    ).unsqueeze(1)
    labels = torch.tensor([1.0, 1.0, 0.0])
    histograms, confusion = pixel_summaries(logits, true)
    assert confusion.tolist() == [[1, 1, 1], [1, 3, 0], [0, 3, 0]]
    result = pixel_metrics(histograms.numpy(), confusion.numpy(), labels.numpy())
    assert result["pixel_iou"] == pytest.approx((1 / 3 + 1 / 4) / 2)
    assert result["pixel_f1"] == pytest.approx((2 / 4 + 2 / 5) / 2)
    assert result["n_pixel_frames"] == 3 and result["n_pixel_fakes"] == 2
    # Pixel AUC pools all 12 pixels (the real's included): 3 positives, 9 negatives.
    expected = roc_auc_score((true > 0.5).flatten().numpy(), logits.flatten().numpy())
    assert result["pixel_auc"] == pytest.approx(expected, abs=result["pixel_auc_binning_bound"])


def test_empty_fake_mask_found_empty_scores_one_and_single_class_is_nan() -> None:
    true = torch.zeros(1, 1, 2, 2)
    logits = -torch.ones(1, 1, 2, 2)
    histograms, confusion = pixel_summaries(logits, true)
    with pytest.warns(RuntimeWarning, match="pixel AUC is reported as NaN"):
        result = pixel_metrics(histograms.numpy(), confusion.numpy(), np.array([1]))
    assert result["pixel_iou"] == 1.0 and result["pixel_f1"] == 1.0
    assert np.isnan(result["pixel_auc"])


def test_metric_keeps_one_row_per_sample_and_drops_unknown_masks() -> None:
    logits, masks, labels = random_masks(4, n=9)
    reference = PixelMetric()
    reference.update(logits, masks, labels, torch.arange(9))
    expected = reference.compute()

    metric = PixelMetric()
    order = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 1])  # sampler padding repeats 0 and 1
    for chunk in order.split(3):
        metric.update(logits[chunk], masks[chunk], labels[chunk], chunk)
    # A fake without a mask (keep False) is left out, whatever its (zero) mask says.
    metric.update(
        torch.full((1, 1, 16, 16), 9.0),
        torch.zeros(1, 1, 16, 16),
        torch.ones(1),
        torch.tensor([99]),
        keep=torch.tensor([False]),
    )
    result = metric.compute()
    assert result == pytest.approx(expected, abs=1e-12)
    assert result["n_pixel_frames"] == 9


def test_prediction_is_resized_to_the_true_mask() -> None:
    true = torch.zeros(1, 1, 8, 8)
    true[..., :4, :] = 1.0
    small = torch.tensor([[4.0], [-4.0]]).expand(2, 4).reshape(1, 1, 2, 4)
    _, confusion = pixel_summaries(small, true)
    assert confusion.tolist() == [[32, 0, 0]]
    with pytest.raises(ValueError, match="differ in samples or channels"):
        pixel_summaries(torch.zeros(2, 1, 8, 8), true)


@pytest.mark.ddp
def test_pixel_metrics_on_two_processes_equal_one(
    tmp_path: Path, tiny_synthetic_args: list[str]
) -> None:
    configs = []
    for config in ("detectors/ynet.yaml", "data/synthetic.yaml", "trainer/cpu.yaml"):
        configs += ["-c", str(ROOT / "configs" / config)]
    configs += ["-c", str(ROOT / "configs/profiles/demo.yaml")]
    common = [*configs, f"--model.init_args.input_size={TINY_SIZE}", *tiny_synthetic_args]
    common += ["--trainer.limit_train_batches=2"]
    fit_dirs = ["--trainer.default_root_dir=fit", "--trainer.logger.init_args.save_dir=fit"]
    run_dfbench(tmp_path, "fit", *common, *fit_dirs)
    (checkpoint,) = tmp_path.glob("fit/ynet*/synthetic_face/*/checkpoints/last.ckpt")
    results = {}
    for name, extra in {
        "single": ["--trainer.devices=1"],
        "ddp": ["--trainer.devices=2", "--trainer.strategy=ddp"],
    }.items():
        run_dfbench(
            tmp_path,
            "test",
            *common,
            f"--ckpt_path={checkpoint}",
            *extra,
            f"--trainer.logger.init_args.save_dir={name}",
        )
        (path,) = (tmp_path / name).rglob("test_metrics.json")
        results[name] = json.loads(path.read_text())
    single, ddp = results["single"], results["ddp"]
    for test_set in single:
        # 15 frames on 2 ranks: the sampler pads to 16; the copy must not count.
        assert single[test_set]["n_pixel_frames"] == ddp[test_set]["n_pixel_frames"] == 15
        for key in ("pixel_auc", "pixel_auc_binning_bound", "pixel_iou", "pixel_f1"):
            assert ddp[test_set][key] == pytest.approx(single[test_set][key], abs=1e-9), key
