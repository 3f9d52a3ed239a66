"""Face X-ray: shapes, the X-ray target, the loss by hand, pixel metrics, Grad-CAM, a BI fit step."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import pytorch_lightning as pl
import torch
from conftest import TINY_SIZE
from sklearn.metrics import roc_auc_score

from src.bench.grid import load_grid
from src.cli import main
from src.data.preprocess import load_frame_table
from src.detectors import build_detector
from src.detectors.base import DetectorOutput
from src.detectors.dense import FACE_XRAY
from src.detectors.face_xray import FaceXRay
from src.errors import DFBenchError
from src.synthetic import SyntheticFaceDataModule

ROOT = Path(__file__).resolve().parents[1]
SMALL = "hrnet_w18_small"  # branches of 16, 32, 64 and 128 channels


def small_model(**options) -> FaceXRay:
    torch.manual_seed(0)
    return build_detector("face_xray", backbone=SMALL, input_size=TINY_SIZE, **options)


def test_paper_contract_and_output_shapes() -> None:
    model = small_model().eval()
    with torch.no_grad():
        output = model(torch.randn(3, 3, TINY_SIZE, TINY_SIZE))
    assert output.logit.shape == (3,)
    assert output.extras["xray_logit"].shape == (3, 1, TINY_SIZE, TINY_SIZE)
    # The head reads the four branches concatenated; its 1 x 1 convs keep that width.
    assert model.head.fuse[0].in_channels == 16 + 32 + 64 + 128 == model.head.fuse[0].out_channels
    assert [model.backbone.reduction(tap) for tap in model.taps] == [4, 8, 16, 32]
    paper = build_detector("face_xray", backbone=SMALL).input_contract
    assert paper.input_size == (256, 256) and paper.mean == (0.485, 0.456, 0.406)
    with torch.no_grad():
        assert model.as_classifier()(torch.zeros(2, 3, TINY_SIZE, TINY_SIZE)).shape == (2, 1)


@pytest.fixture(scope="module")
def paper_model() -> FaceXRay:
    torch.manual_seed(0)
    return build_detector("face_xray", input_size=TINY_SIZE).eval()


def test_hrnet_w48_default_has_the_papers_720_channel_head(paper_model: FaceXRay) -> None:
    assert [paper_model.backbone.channels(tap) for tap in paper_model.taps] == [48, 96, 192, 384]
    # 1 x 1 conv 720 -> 720 (no bias: a BN follows), BN (2 x 720), 1 x 1 conv 720 -> 1 with bias.
    head = 720 * 720 + 2 * 720 + 720 + 1
    assert sum(p.numel() for p in paper_model.head.parameters()) == head == 520_561
    assert sum(p.numel() for p in paper_model.classifier.parameters()) == 2


@pytest.mark.slow
def test_hrnet_w48_default_predicts_at_a_quarter_of_the_input(paper_model: FaceXRay) -> None:
    seen = []
    handle = paper_model.head.fuse.register_forward_hook(lambda m, i, o: seen.append(o))
    with torch.no_grad():
        output = paper_model(torch.randn(1, 3, TINY_SIZE, TINY_SIZE))
    handle.remove()
    assert seen[0].shape == (1, 720, TINY_SIZE // 4, TINY_SIZE // 4)
    assert output.extras["xray_logit"].shape == (1, 1, TINY_SIZE, TINY_SIZE)


def test_xray_target_is_4m_1_minus_m_with_binary_masks_softened() -> None:
    # A binary step: the 3 x 3 Gaussian [1, 2, 1] / 4 (reflected border) gives 0, .25, .75, 1.
    binary = torch.zeros(1, 1, 4, 4)
    binary[..., 2:] = 1.0
    step = [0.0, 0.75, 0.75, 0.0]  # 4 M (1 - M) of 0, .25, .75, 1
    # A soft mask keeps its values: 4 M (1 - M) of 0.5 is 1, of 0.25 is 0.75.
    soft = torch.tensor([0.0, 0.25, 0.5, 1.0]).expand(1, 1, 4, 4)
    target = FACE_XRAY({"mask": torch.cat([binary, soft, torch.zeros(1, 1, 4, 4)])})
    assert target.shape == (3, 1, 4, 4)
    torch.testing.assert_close(target[0, 0], torch.tensor([step] * 4))
    torch.testing.assert_close(target[1, 0], torch.tensor([[0.0, 0.75, 1.0, 0.0]] * 4))
    assert target[2].abs().sum() == 0  # a real face has no X-ray
    # OpenCV's blur, the one DeepfakeBench's Face X-ray data runs, on a 2-D binary mask.
    square = np.zeros((9, 9), np.float32)
    square[2:6, 3:8] = 1.0
    blurred = cv2.GaussianBlur(square, (3, 3), 0)
    expected = torch.from_numpy(4 * blurred * (1 - blurred))
    got = FACE_XRAY({"mask": torch.from_numpy(square).view(1, 1, 9, 9)})[0, 0]
    torch.testing.assert_close(got, expected)


def hand_batch() -> dict[str, torch.Tensor]:
    """A real, a BI fake with a soft mask, and a fake without a mask, 2 x 2 pixels each."""
    mask = torch.zeros(3, 1, 2, 2)
    mask[1, 0] = torch.tensor([[0.5, 0.25], [1.0, 0.0]])  # X-ray 1, 0.75, 0, 0
    mask[2, 0] = 0.5  # ignored: sample 2 has no mask
    return {
        "image": torch.zeros(3, 3, 2, 2),
        "label": torch.tensor([0.0, 1.0, 1.0]),
        "mask": mask,
        "has_mask": torch.tensor([True, True, False]),
        "sample_idx": torch.arange(3),
        "video_idx": torch.arange(3),
        "frame_idx": torch.zeros(3, dtype=torch.long),
    }


def bce(logit: float, target: float) -> float:
    p = 1 / (1 + math.exp(-logit))
    return -(target * math.log(p) + (1 - target) * math.log(1 - p))


@pytest.mark.parametrize("weight", [100.0, 3.0])
def test_loss_is_lambda_pixel_bce_plus_classification_bce(weight: float) -> None:
    model = small_model(xray_weight=weight)
    xray_logits = [[[1.0, -2.0], [0.5, 0.0]], [[2.0, 1.0], [-1.0, -3.0]], [[4.0, 4.0], [4.0, 4.0]]]
    logits = [-1.0, 2.0, 0.5]
    output = DetectorOutput(
        logit=torch.tensor(logits), extras={"xray_logit": torch.tensor(xray_logits).unsqueeze(1)}
    )
    losses = model.loss(output, hand_batch())
    # Pixel BCE over the samples with a known mask (0 and 1), mean over their 8 pixels.
    targets = [[[0, 0], [0, 0]], [[1.0, 0.75], [0.0, 0.0]]]
    pixels = [
        bce(xray_logits[s][i][j], targets[s][i][j]) for s in (0, 1) for i in (0, 1) for j in (0, 1)
    ]
    xray = sum(pixels) / 8
    classification = (bce(-1.0, 0) + bce(2.0, 1) + bce(0.5, 1)) / 3
    assert set(losses) == {"loss", "bce", "xray"}
    assert losses["xray"].item() == pytest.approx(xray, rel=1e-6)
    assert losses["bce"].item() == pytest.approx(classification, rel=1e-6)
    assert losses["loss"].item() == pytest.approx(weight * xray + classification, rel=1e-6)


def test_paper_classifier_is_an_affine_map_of_the_mean_xray_probability() -> None:
    model = small_model().eval()
    with torch.no_grad():
        model.classifier.fc.weight.fill_(2.0)
        model.classifier.fc.bias.fill_(-1.0)
        output = model(torch.randn(2, 3, TINY_SIZE, TINY_SIZE))
    probability = torch.sigmoid(output.extras["xray_logit"]).mean(dim=(1, 2, 3))
    torch.testing.assert_close(output.logit, 2 * probability - 1)
    assert sum(p.numel() for p in model.classifier.parameters()) == 2


def test_deepfakebench_classifier_is_their_mlp_on_the_xray_pooled_to_128() -> None:
    model = small_model(classifier="deepfakebench").eval()
    with torch.no_grad():
        output = model(torch.randn(2, 3, TINY_SIZE, TINY_SIZE))
    assert output.logit.shape == (2,)
    # 128 * 128 -> 1024 -> 128 -> 1, each hidden layer with a batch norm (2 parameters a unit).
    expected = (16384 * 1024 + 1024) + 2 * 1024 + (1024 * 128 + 128) + 2 * 128 + (128 + 1)
    assert sum(p.numel() for p in model.classifier.parameters()) == expected
    with pytest.raises(DFBenchError, match="classifier must be 'paper' or 'deepfakebench'"):
        small_model(classifier="mlp")
    with pytest.raises(DFBenchError, match="backbone must be a timm HRNet .* got 'resnet18'"):
        build_detector("face_xray", backbone="resnet18")


def test_grad_cam_reads_the_fused_representation() -> None:
    model = small_model()
    (layer,) = model.cam_target_layers()
    seen = []

    def keep(module, inputs, output) -> None:
        output.retain_grad()
        seen.append(output)

    handle = layer.register_forward_hook(keep)
    model.as_classifier()(torch.randn(2, 3, TINY_SIZE, TINY_SIZE)).sum().backward()
    handle.remove()
    assert seen[0].shape == (2, 240, TINY_SIZE // 4, TINY_SIZE // 4)
    assert seen[0].grad is not None and seen[0].grad.abs().sum() > 0


def test_pixel_metrics_score_the_xray_against_its_target() -> None:
    """``xray_pixel_auc`` of a Trainer's test is scikit-learn's AUC of the X-ray that predict
    writes against 4M(1-M) > 0.5 of the faces' masks (binary ones blurred by OpenCV)."""
    model = small_model()
    data = SyntheticFaceDataModule(
        test_videos=4, frames_per_video=1, test_sets=["blend"], input_size=TINY_SIZE
    )
    trainer = pl.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    trainer.test(model, datamodule=data, verbose=False)
    results = model.test_results["blend"]
    assert not any(key.startswith("pixel_") for key in results)  # not the manipulation mask
    predicted = trainer.predict(model, datamodule=data)
    probability = torch.cat([batch["dense"]["xray"] for batch in predicted])[:, 0].numpy()
    faces = data.sets["predict"][0][1]
    targets = []
    for index in torch.cat([batch["sample_idx"] for batch in predicted]).tolist():
        mask = faces[index]["mask"][0].numpy() / np.float32(255)  # items hold uint8 masks
        soft = cv2.GaussianBlur(mask, (3, 3), 0) if np.isin(mask, (0.0, 1.0)).all() else mask
        targets.append(4 * soft * (1 - soft))
    truth = np.stack(targets) > 0.5
    assert truth.any() and results["xray_n_pixel_frames"] == len(targets) == 4
    expected = roc_auc_score(truth.ravel(), probability.ravel())
    assert abs(results["xray_pixel_auc"] - expected) <= results["xray_pixel_auc_binning_bound"]


def test_one_fit_step_on_reals_and_bi_pseudo_fakes(
    toy_cache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``dfbench fit`` with the shipped config, shrunk: BI fakes reach the X-ray loss."""
    result, cache, _ = toy_cache
    table = load_frame_table(result.table_path)
    # The toy set has one real training video; BI needs two, so every real trains here.
    table = table.assign(split=np.where(table.label == 0, "train", table.split))
    table = table.assign(landmarks=[points.reshape(-1) for points in table.landmarks])
    path = tmp_path / "toy_bi.parquet"
    table.to_parquet(path)
    monkeypatch.chdir(tmp_path)
    args = [
        "fit",
        *("-c", str(ROOT / "configs/detectors/face_xray.yaml")),
        *("-c", str(ROOT / "configs/trainer/cpu.yaml")),
        f"--model.init_args.backbone={SMALL}",
        "--model.init_args.pretrained=false",
        f"--model.init_args.input_size={TINY_SIZE}",
        f"--data.init_args.cache_dir={cache}",
        f"--data.init_args.train=[{path}]",
        f"--data.init_args.test=[{path}]",
        "--data.init_args.pseudo_fake.init_args.k=10",
        "--data.init_args.batch_size=2",
        "--data.init_args.train_frames_per_video=1",
        "--data.init_args.num_workers=0",
        "--trainer.max_steps=1",
        "--trainer.limit_val_batches=1",
        "--trainer.log_every_n_steps=1",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
    ]
    assert main(args) == 0
    (metrics_csv,) = tmp_path.glob("runs/face_xray*/toy_bi/*/fit-*/metrics.csv")
    step = pd.read_csv(metrics_csv).dropna(subset=["train/loss_step"]).iloc[0]
    # Two BI fakes with seams: a non-zero X-ray term, weighted by the paper's lambda.
    assert step["train/xray_step"] > 0
    expected = 100 * step["train/xray_step"] + step["train/bce_step"]
    assert step["train/loss_step"] == pytest.approx(expected, rel=1e-5)


def test_paper_grids_have_face_xray_rows_and_the_demos_do_not() -> None:
    face_xray = ("configs/detectors/face_xray.yaml",)
    for grid, data in (("cross_dataset", "cross_dataset"), ("in_dataset", "ffpp")):
        cells = [c for c in load_grid(ROOT / f"benchmarks/{grid}.yaml", "paper")]
        rows = [c for c in cells if c.entry == "face_xray"]
        assert rows, grid
        assert all(c.configs == (f"configs/data/{data}.yaml", *face_xray) for c in rows), grid
        demo = load_grid(ROOT / f"benchmarks/{grid}.yaml", "demo")
        assert "face_xray" not in {c.entry for c in demo}, grid
