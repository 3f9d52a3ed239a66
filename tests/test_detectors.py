"""The Detector interface, the registry and the baseline classifiers."""

from __future__ import annotations

import time

import pytest
import timm
import torch
from conftest import TINY_SIZE

from src.detectors import (
    BackboneClassifier,
    Detector,
    DetectorOutput,
    PretrainedWeightsUnavailable,
    backbones,
    build_detector,
    list_detectors,
    register_detector,
)


def tiny_batch(size: int = TINY_SIZE, batch: int = 4) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {
        "image": torch.randn(batch, 3, size, size, generator=generator),
        "label": torch.tensor([0.0, 1.0] * (batch // 2)),
        "mask": torch.zeros(batch, 1, size, size),
        "has_mask": torch.tensor([False, True] * (batch // 2)),
        "sample_idx": torch.arange(batch),
        "video_idx": torch.arange(batch) // 2,
        "frame_idx": torch.arange(batch) % 2,
    }


def test_registry_errors() -> None:
    with pytest.raises(KeyError, match="no detector named 'nope'.*xception"):
        build_detector("nope")

    class Other(Detector):
        pass

    with pytest.raises(ValueError, match="already taken"):
        register_detector("xception")(Other)


def test_registered_names_pick_their_backbones() -> None:
    expected = {
        "xception": ((299, 299), (0.5, 0.5, 0.5)),
        "efficientnet_b4": ((380, 380), (0.485, 0.456, 0.406)),
        "resnet50": ((224, 224), (0.485, 0.456, 0.406)),
        "vgg16": ((224, 224), (0.485, 0.456, 0.406)),
    }
    for name, (size, mean) in expected.items():
        contract = build_detector(name).input_contract
        assert (contract.input_size, contract.mean) == (size, mean), name
    assert build_detector("xception", input_size=256).input_contract.input_size == (256, 256)
    assert build_detector("xception", input_size=(320, 256)).input_contract.input_size == (320, 256)


@pytest.mark.parametrize("name", list_detectors())
def test_every_detector_forward_loss_and_step(name: str) -> None:
    torch.manual_seed(0)
    model = build_detector(name, pretrained=False, input_size=TINY_SIZE)
    batch = tiny_batch()
    model.train()
    output = model(batch["image"])
    assert isinstance(output, DetectorOutput)
    assert output.logit.shape == (4,)
    assert torch.isfinite(output.logit).all()

    losses = model.loss(output, batch)
    assert "loss" in losses and len(losses) >= 2
    assert all(v.dim() == 0 and torch.isfinite(v) for v in losses.values())

    configured = model.configure_optimizers()
    optimizer = configured["optimizer"] if isinstance(configured, dict) else configured
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    optimizer.zero_grad()
    losses["loss"].backward()
    optimizer.step()
    changed = [k for k, v in model.named_parameters() if not torch.equal(v, before[k])]
    last_linear = [name for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)][-1]
    assert f"{last_linear}.weight" in changed
    # Not all: ResNet's zero-initialised last BN per block leaves conv3 without a
    # gradient on the very first step.
    assert len(changed) > 0.75 * len(before), f"only {len(changed)}/{len(before)} tensors moved"


def test_bce_loss_matches_hand_computation() -> None:
    model = build_detector("resnet50", input_size=TINY_SIZE)
    logit = torch.tensor([2.0, -1.0])
    batch = {"label": torch.tensor([1.0, 1.0])}
    expected = -(torch.log(torch.sigmoid(logit))).mean()
    assert model.loss(DetectorOutput(logit=logit), batch)["loss"] == pytest.approx(expected.item())
    smoothed = BackboneClassifier(backbone="resnet50", label_smoothing=0.2)
    target = torch.tensor([0.9, 0.9])
    expected = -(
        target * torch.log(torch.sigmoid(logit))
        + (1 - target) * torch.log(1 - torch.sigmoid(logit))
    )
    assert smoothed.loss(DetectorOutput(logit=logit), batch)["loss"] == pytest.approx(
        expected.mean().item()
    )


def test_output_rejects_wrong_logit_shape() -> None:
    with pytest.raises(ValueError, match=r"shape \(B,\)"):
        DetectorOutput(logit=torch.zeros(3, 1))
    out = DetectorOutput(
        logit=torch.zeros(2), heatmap=torch.zeros(2, 1, 4, 4), extras={"x": torch.ones(1)}
    )
    assert set(out.maps()) == {"heatmap", "x"}


def test_pretrained_true_offline_fails_fast_with_instructions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(backbones, "_cached_weights", lambda name: None)
    start = time.monotonic()
    with pytest.raises(
        PretrainedWeightsUnavailable, match=r"offline.*pretrained=/path/to/model\.safetensors"
    ):
        build_detector("xception", pretrained=True)
    assert time.monotonic() - start < 10


def test_pretrained_true_uses_a_cached_copy(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    reference = timm.create_model("resnet50")
    path = tmp_path / "cached.pth"
    torch.save(reference.state_dict(), path)
    monkeypatch.setattr(backbones, "_cached_weights", lambda name: path)
    model = build_detector("resnet50", pretrained=True)
    assert torch.equal(model.backbone.conv1.weight, reference.conv1.weight)


def test_pretrained_local_file_loads_an_imagenet_checkpoint(tmp_path) -> None:
    reference = timm.create_model("resnet50")  # 1000-class head, as a downloaded file has
    path = tmp_path / "resnet50_imagenet.pth"
    torch.save(reference.state_dict(), path)
    model = build_detector("resnet50", pretrained=str(path))
    assert torch.equal(model.backbone.conv1.weight, reference.conv1.weight)
    assert torch.equal(model.backbone.layer4[2].conv3.weight, reference.layer4[2].conv3.weight)


def test_pretrained_missing_file_names_it(tmp_path) -> None:
    missing = tmp_path / "nowhere.safetensors"
    with pytest.raises(FileNotFoundError, match="nowhere.safetensors"):
        build_detector("xception", pretrained=str(missing))


def test_optimizer_and_scheduler_callables_are_used() -> None:
    model = build_detector(
        "resnet50",
        optimizer=lambda params: torch.optim.SGD(params, lr=0.5),
        lr_scheduler=lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=3),
        scheduler_interval="step",
    )
    config = model.configure_optimizers()
    assert isinstance(config["optimizer"], torch.optim.SGD)
    assert config["optimizer"].param_groups[0]["lr"] == 0.5
    assert config["lr_scheduler"]["interval"] == "step"
    default = build_detector("resnet50").configure_optimizers()
    assert isinstance(default, torch.optim.Adam) and default.param_groups[0]["lr"] == 2e-4
    with pytest.raises(ValueError, match="scheduler_interval"):
        build_detector("resnet50", scheduler_interval="batch")
