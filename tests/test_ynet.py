"""The local-similarity Y-net: shapes, ablation flags, loss terms, the CLAFFM gate, the decoder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from conftest import TINY_SIZE
from sklearn.metrics import roc_auc_score
from torch.utils.data import DataLoader

from src.cli import main
from src.detectors import YNet, build_detector
from src.detectors.layers.localisation import (
    CrossLevelAttention,
    ForgeryLocalisation,
    SkipFusionBlock,
)
from src.detectors.targets import localisation_target
from src.synthetic import SyntheticFaceDataModule

ROOT = Path(__file__).resolve().parents[1]


def batch_with_masks(size: int = TINY_SIZE) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    mask = torch.zeros(4, 1, size, size)
    mask[1, :, size // 4 : size // 2, size // 4 : 3 * size // 4] = 1.0
    mask[3, :, size // 2 :, :] = 0.7
    return {
        "image": torch.randn(4, 3, size, size, generator=generator),
        "label": torch.tensor([0.0, 1.0, 0.0, 1.0]),
        "mask": mask,
        "has_mask": torch.tensor([True, True, True, False]),
        "sample_idx": torch.arange(4),
        "video_idx": torch.arange(4),
        "frame_idx": torch.zeros(4, dtype=torch.long),
    }


@pytest.fixture(scope="module")
def tiny_model() -> YNet:
    torch.manual_seed(0)
    return build_detector("ynet", input_size=TINY_SIZE).eval()


def test_paper_contract_and_output_shapes(tiny_model: YNet) -> None:
    assert build_detector("ynet").input_contract.input_size == (224, 224)
    assert tiny_model.input_contract.mean == (0.5, 0.5, 0.5)
    with torch.no_grad():
        output = tiny_model(batch_with_masks()["image"])
    assert output.logit.shape == (4,)
    assert output.mask_logit.shape == (4, 1, TINY_SIZE, TINY_SIZE)
    # block7 at 64 px: 728 x 4 x 4 -> a 16 x 16 pair map.
    assert output.extras["llsm_input"].shape == (4, 728, 4, 4)
    assert output.extras["pair_logit"].shape == (4, 16, 16)
    with torch.no_grad():
        assert tiny_model.as_classifier()(torch.zeros(2, 3, TINY_SIZE, TINY_SIZE)).shape == (2, 1)


def test_paper_size_shapes() -> None:
    """At 224 px block7 is 14 x 14: a 196 x 196 pair map; the mask comes back at 224 x 224."""
    torch.manual_seed(0)
    model = build_detector("ynet").eval()
    with torch.no_grad():
        output = model(torch.randn(1, 3, 224, 224))
    assert output.logit.shape == (1,)
    assert output.mask_logit.shape == (1, 1, 224, 224)
    assert output.extras["llsm_input"].shape == (1, 728, 14, 14)
    assert output.extras["pair_logit"].shape == (1, 196, 196)
    assert output.features.shape[1] == model.head.fc.in_features


def test_loss_is_the_weighted_sum_of_named_terms_over_known_masks() -> None:
    torch.manual_seed(0)
    model = build_detector("ynet", input_size=TINY_SIZE, alpha=0.3, beta=0.7).eval()
    batch = batch_with_masks()
    with torch.no_grad():
        output = model(batch["image"])
        losses = model.loss(output, batch)
    assert set(losses) == {"loss", "bce", "similarity", "localisation"}
    expected = losses["bce"] + 0.3 * losses["similarity"] + 0.7 * losses["localisation"]
    assert losses["loss"].item() == pytest.approx(expected.item(), rel=1e-6)
    known = torch.tensor([0, 1, 2])  # sample 3 is a fake without a mask
    target = batch["mask"][known] * batch["label"][known].view(-1, 1, 1, 1)
    localisation = F.binary_cross_entropy_with_logits(output.mask_logit[known], target)
    assert losses["localisation"].item() == pytest.approx(localisation.item(), rel=1e-6)
    # Sample 1's mask at 4 x 4 is rows 1 (cols 1-2); pairs mixing them with the rest are 1.
    inside = {5, 6}
    pair = torch.tensor(
        [[float((i in inside) != (j in inside)) for j in range(16)] for i in range(16)]
    )
    pair_target = torch.stack([torch.zeros(16, 16), pair, torch.zeros(16, 16)])
    similarity = F.binary_cross_entropy_with_logits(output.extras["pair_logit"][known], pair_target)
    assert losses["similarity"].item() == pytest.approx(similarity.item(), rel=1e-6)

    # What a maskless fake's mask says changes nothing; a known one's does.
    changed = dict(batch, mask=batch["mask"].clone())
    changed["mask"][3] = 1.0
    with torch.no_grad():
        again = model.loss(output, changed)
    assert again["localisation"] == losses["localisation"]
    changed["mask"][1] = 1.0
    with torch.no_grad():
        assert model.loss(output, changed)["localisation"] != losses["localisation"]


@pytest.mark.parametrize(
    ("use_llsm", "use_flm"), [(False, False), (True, False), (False, True), (True, True)]
)
def test_ablation_flags_switch_modules_outputs_and_terms(use_llsm: bool, use_flm: bool) -> None:
    torch.manual_seed(0)
    model = build_detector("ynet", input_size=TINY_SIZE, use_llsm=use_llsm, use_flm=use_flm)
    batch = batch_with_masks()
    # Grad-CAM reads what the classifier pools: decoder output, or the encoder's last stage.
    (cam_layer,) = model.cam_target_layers()
    seen = []
    handle = cam_layer.register_forward_hook(lambda m, i, o: seen.append(o))
    output = model(batch["image"])
    handle.remove()
    assert seen[0].shape[1] == model.head.fc.in_features
    losses = model.loss(output, batch)
    terms = [losses[name] for name in ("bce", "similarity", "localisation") if name in losses]
    assert losses["loss"].item() == pytest.approx(sum(terms).item(), rel=1e-6)  # alpha = beta = 1
    assert ("similarity" in losses) == use_llsm == ("pair_logit" in output.extras)
    assert ("localisation" in losses) == use_flm == (output.mask_logit is not None)
    assert (model.llsm is not None) == use_llsm and (model.flm is not None) == use_flm
    # The parameter set: encoder and head always, the LLSM and the FLM only when switched on.
    owners = {name.split(".")[0] for name, _ in model.named_parameters()}
    expected_owners = {"backbone", "head"}
    expected_owners |= {"llsm"} if use_llsm else set()
    expected_owners |= {"flm"} if use_flm else set()
    assert owners == expected_owners
    decoder_width = model.flm.out_channels if use_flm else 2048
    assert model.head.fc.in_features == decoder_width
    losses["loss"].backward()
    assert model.head.fc.weight.grad is not None
    if use_llsm:
        assert model.llsm.pair_conv.weight.grad.abs().sum() > 0


def test_baseline_variant_is_the_xception_classifier() -> None:
    baseline = build_detector("ynet", use_llsm=False, use_flm=False, drop_rate=0.2)
    xception = build_detector("xception")
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(baseline) == count(xception)
    assert baseline.head.fc.in_features == 2048


def test_wrong_tap_names_the_choices() -> None:
    with pytest.raises(KeyError, match="no stage 'block99'.*block7"):
        build_detector("ynet", llsm_tap="block99")


def test_claffm_gates_channels_with_the_pooled_previous_level() -> None:
    gate = CrossLevelAttention(current_channels=2, previous_channels=1, reduction=2, pool_size=4)
    assert gate.squeeze.kernel_size == (4, 4) and gate.excite.out_channels == 2
    with torch.no_grad():
        gate.squeeze.weight.zero_()
        gate.squeeze.weight[0, 0, 0, 0] = 1.0  # reads the top-left pooled cell only
        gate.squeeze.bias.zero_()
        gate.excite.weight.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1))
        gate.excite.bias.zero_()
    previous = torch.zeros(1, 1, 8, 8)
    previous[0, 0, :2, :2] = torch.tensor([[1.0, 2.0], [3.0, 6.0]])  # pooled (0, 0) = 3
    current = torch.randn(1, 2, 5, 5)
    expected = current * torch.sigmoid(torch.tensor([3.0, -3.0])).view(1, 2, 1, 1)
    torch.testing.assert_close(gate(current, previous), expected)
    # The activation sits between the two convolutions: a negative hidden value gives 0.5.
    torch.testing.assert_close(gate(current, -previous), current * 0.5)


def test_decoder_follows_odd_skip_sizes_to_the_input_size() -> None:
    block = SkipFusionBlock(in_channels=8, skip_channels=4, out_channels=6)
    assert block(torch.randn(2, 8, 7, 7), torch.randn(2, 4, 14, 13)).shape == (2, 6, 14, 13)
    flm = ForgeryLocalisation(16, [8, 4], [6, 3])
    mask, features = flm(
        torch.randn(2, 16, 2, 2), [torch.randn(2, 8, 4, 4), torch.randn(2, 4, 9, 9)], (20, 20)
    )
    assert mask.shape == (2, 1, 20, 20) and features.shape == (2, 3, 9, 9)
    assert ForgeryLocalisation(16, [8, 4], [6, 3], use_attention=False).gates is None
    with pytest.raises(ValueError, match="one width per skip"):
        ForgeryLocalisation(16, [8, 4], [6])
    with pytest.raises(ValueError, match="expects 2 skip features"):
        flm(torch.randn(1, 16, 2, 2), [torch.randn(1, 8, 4, 4)], (8, 8))


def test_localisation_target_resizes_and_zeroes_reals() -> None:
    mask = torch.zeros(2, 1, 4, 4)
    mask[:, :, :2, :2] = 1.0
    label = torch.tensor([1.0, 0.0])
    same = localisation_target(mask, label, (4, 4))
    assert torch.equal(same[0], mask[0]) and same[1].sum() == 0
    small = localisation_target(mask, label, (2, 2))
    assert small[0, 0].tolist() == [[1.0, 0.0], [0.0, 0.0]]
    assert localisation_target(mask, label, (8, 8)).shape == (2, 1, 8, 8)


@pytest.mark.slow
def test_ynet_learns_to_detect_and_localise_synthetic_fakes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo profile on the in-memory faces: every loss term falls; AUC, pixel AUC, IoU high."""
    monkeypatch.chdir(tmp_path)
    configs = []
    for config in ("data/synthetic.yaml", "detectors/ynet.yaml", "trainer/cpu.yaml"):
        configs += ["-c", str(ROOT / "configs" / config)]
    configs += ["-c", str(ROOT / "configs/profiles/demo.yaml")]
    common = [*configs, "--data.init_args.test_sets=[blend]", "--trainer.enable_progress_bar=false"]
    training = [
        "--trainer.max_epochs=8",
        "--model.init_args.optimizer.init_args.lr=5e-4",
        "--model.init_args.lr_scheduler.class_path=torch.optim.lr_scheduler.CosineAnnealingLR",
        "--model.init_args.lr_scheduler.init_args.T_max=8",
    ]
    assert main(["fit", *common, *training]) == 0
    (run,) = tmp_path.glob("runs/ynet*/synthetic_face/*")
    (metrics_csv,) = run.glob("fit-*/metrics.csv")
    log = pd.read_csv(metrics_csv)
    epochs = log.dropna(subset=["train/loss_epoch"])
    for term in ("bce", "similarity", "localisation"):
        first, last = epochs[f"train/{term}_epoch"].iloc[[0, -1]]
        assert last < 0.8 * first, (term, first, last)
    (best,) = run.glob("checkpoints/best-*.ckpt")
    assert main(["test", *common, f"--ckpt_path={best}"]) == 0
    (metrics,) = run.glob("test-*/test_metrics.json")
    result = json.loads(metrics.read_text())["blend"]
    assert result["frame_auc"] > 0.85, result
    assert result["pixel_auc"] > 0.9 and result["pixel_auc_binning_bound"] < 0.01, result
    # Calling every pixel manipulated scores an IoU of 0.14 on these faces.
    assert result["pixel_iou"] > 0.4 and result["pixel_f1"] > 0.5, result


@pytest.mark.parametrize("use_flm", [True, False])
def test_pixel_metrics_reach_the_test_results(use_flm: bool) -> None:
    """A Trainer's test: pixel AUC (scikit-learn on the pixels), IoU and F1 by hand; none w/o FLM."""
    torch.manual_seed(0)
    model = build_detector("ynet", input_size=32, use_llsm=False, use_flm=use_flm)
    data = SyntheticFaceDataModule(
        train_videos=2, val_videos=2, test_videos=4, frames_per_video=1, test_sets=["blend"]
    )
    trainer = pl.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    trainer.test(model, datamodule=data, verbose=False)
    results = model.test_results["blend"]
    if not use_flm:
        assert not any(key.startswith("pixel_") for key in results)
        return
    # The same faces through the model, the metrics computed independently.
    images, masks, labels = [], [], []
    for batch in DataLoader(data.sets["test"][0][1], batch_size=4):
        batch = data.normalise(batch)
        images.append(batch["image"])
        masks.append(batch["mask"])
        labels.append(batch["label"])
    model.eval()
    with torch.no_grad():
        probability = torch.sigmoid(model(torch.cat(images)).mask_logit).numpy()
    truth = torch.cat(masks).numpy() > 0.5
    labels = torch.cat(labels).numpy()
    expected_auc = roc_auc_score(truth.ravel(), probability.ravel())
    assert results["n_pixel_frames"] == len(labels) == 4
    assert abs(results["pixel_auc"] - expected_auc) <= results["pixel_auc_binning_bound"] + 1e-9
    found = probability > 0.5
    ious, f1s = [], []
    for fake in np.flatnonzero(labels == 1):
        tp = float((found[fake] & truth[fake]).sum())
        fp = float((found[fake] & ~truth[fake]).sum())
        fn = float((~found[fake] & truth[fake]).sum())
        ious.append(tp / (tp + fp + fn) if tp + fp + fn else 1.0)
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0)
    assert results["pixel_iou"] == pytest.approx(np.mean(ious))
    assert results["pixel_f1"] == pytest.approx(np.mean(f1s))
