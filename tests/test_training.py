"""Training recipes shared by every detector: SAM, the warm-up/decay schedule, backbone freezing."""

from __future__ import annotations

import functools
import math
import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.plugins.precision import MixedPrecision
from torch import Tensor

from src.detectors.training import SAM, WarmupDecay

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.example_detector import TapDetector  # noqa: E402

QUIET = {
    "logger": False,
    "enable_checkpointing": False,
    "enable_progress_bar": False,
    "enable_model_summary": False,
}


def test_sam_climbs_along_the_normalised_gradient_and_comes_back() -> None:
    weight = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    optimizer = torch.optim.SGD([weight], lr=0.1)
    sam = SAM(rho=0.5)
    (weight**2).sum().backward()  # gradient (2, 4)
    sam.climb([weight])
    g = torch.tensor([2.0, 4.0])
    assert torch.allclose(weight.detach(), torch.tensor([1.0, 2.0]) + 0.5 * g / g.norm())
    optimizer.zero_grad()
    (weight**2).sum().backward()
    climbed_grad = weight.grad.clone()  # the gradient at the climbed point: 2 (w + e)
    assert torch.allclose(climbed_grad, 2 * (torch.tensor([1.0, 2.0]) + 0.5 * g / g.norm()))
    sam.descend()
    optimizer.step()
    assert torch.allclose(weight.detach(), torch.tensor([1.0, 2.0]) - 0.1 * climbed_grad)


def test_adaptive_sam_scales_the_neighbourhood_by_the_weights() -> None:
    """ASAM: e = rho |w|^2 g / || |w| g ||; hand-computed for w = (1, 2), g = (2, 4)."""
    weight = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    (weight**2).sum().backward()
    SAM(rho=0.5, adaptive=True).climb([weight])
    scaled = torch.tensor([1.0 * 2.0, 2.0 * 4.0])  # |w| g
    expected = (
        torch.tensor([1.0, 2.0])
        + 0.5 * torch.tensor([1.0, 4.0]) * torch.tensor([2.0, 4.0]) / scaled.norm()
    )
    assert torch.allclose(weight.detach(), expected)


def test_sam_rejects_a_non_positive_radius() -> None:
    with pytest.raises(ValueError, match="sam_rho must be positive"):
        SAM(rho=0)


def _data(batches: int = 4, size: int = 32, batch_size: int = 4) -> torch.utils.data.DataLoader:
    generator = torch.Generator().manual_seed(0)
    n = batches * batch_size
    label = (torch.arange(n) % 2).float()
    mask = torch.zeros(n, 1, size, size)
    mask[label == 1, :, 8:24, 8:24] = 1
    items = [
        {
            "image": torch.randn(3, size, size, generator=generator) + label[i],
            "label": label[i],
            "mask": mask[i],
            "has_mask": torch.tensor(True),
            "sample_idx": torch.tensor(i),
            "video_idx": torch.tensor(i),
            "frame_idx": torch.tensor(0),
        }
        for i in range(n)
    ]
    return torch.utils.data.DataLoader(items, batch_size=batch_size)


class _Recorder(pl.Callback):
    """Learning rate at every optimiser step, and backward passes per training batch."""

    def __init__(self) -> None:
        self.lrs: list[float] = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:  # noqa: ANN001
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])


@pytest.mark.parametrize("sam_rho", [None, 0.05])
def test_warmup_decay_schedule_inside_a_trainer(sam_rho: float | None) -> None:
    """8 steps, warm-up over a quarter (2 steps) from 0.25 x lr, then linear to 0."""
    torch.manual_seed(0)
    schedule = functools.partial(WarmupDecay, warmup_fraction=0.25, start_factor=0.25)
    model = TapDetector(
        sam_rho=sam_rho,
        optimizer=functools.partial(torch.optim.SGD, lr=0.8),
        lr_scheduler=schedule,
        input_size=32,
    )
    recorder = _Recorder()
    trainer = pl.Trainer(
        accelerator="cpu", max_epochs=2, limit_train_batches=4, callbacks=[recorder], **QUIET
    )
    trainer.fit(model, _data())
    # Independent hand computation: warm-up 0.2, 0.5 then 0.8 * (1 - k / 6) for k = 0..5.
    expected = [0.2, 0.5, 0.8, 0.8 * 5 / 6, 0.8 * 4 / 6, 0.4, 0.8 * 2 / 6, 0.8 / 6]
    assert recorder.lrs == pytest.approx(expected)
    assert trainer.global_step == 8


class _CountingDetector(TapDetector):
    def __init__(self, **kwargs) -> None:  # noqa: ANN003
        super().__init__(**kwargs)
        self.backward_calls = 0

    def on_after_backward(self) -> None:
        self.backward_calls += 1
        super().on_after_backward()


def test_on_after_backward_fires_once_per_sam_pass_and_freezing_holds() -> None:
    torch.manual_seed(0)
    model = _CountingDetector(sam_rho=0.05, freeze_backbone_epochs=1, input_size=32)
    before = {k: v.clone() for k, v in model.backbone.state_dict().items() if "weight" in k}
    trainer = pl.Trainer(accelerator="cpu", max_epochs=1, limit_train_batches=3, **QUIET)
    trainer.fit(model, _data())
    assert model.backward_calls == 6  # 3 steps x 2 passes
    after = model.backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # frozen in epoch 0


class _Overflow(pl.Callback):
    """Injects an inf gradient into one parameter during the training batch ``at``."""

    def __init__(self, at: int, second_pass: bool = False) -> None:
        self.at, self.second_pass = at, second_pass
        self.weights: dict[str, dict[str, Tensor]] = {}
        self.scales: list[float] = []

    @staticmethod
    def _scale(trainer: pl.Trainer) -> float:
        scaler = getattr(trainer.precision_plugin, "scaler", None)
        return scaler.get_scale() if scaler is not None else 1.0

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:  # noqa: ANN001
        self.scales.append(self._scale(trainer))
        self.weights[f"start{batch_idx}"] = {k: v.clone() for k, v in module.state_dict().items()}
        self.passes = 0
        if batch_idx == self.at:
            weight = module.head.fc.weight
            self.handle = weight.register_hook(self._poison)

    def _poison(self, grad: Tensor) -> Tensor:
        self.passes += 1
        if self.passes == (2 if self.second_pass else 1):
            return torch.full_like(grad, math.inf)
        return grad

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        self.weights[f"end{batch_idx}"] = {k: v.clone() for k, v in module.state_dict().items()}
        if batch_idx == self.at:
            self.handle.remove()
        self.scales.append(self._scale(trainer))


@pytest.mark.parametrize("fp16", [True, False], ids=["16-mixed", "32-true"])
@pytest.mark.parametrize("second_pass", [False, True], ids=["first-pass", "second-pass"])
def test_sam_skips_a_non_finite_step_and_the_scaler_backs_off(
    fp16: bool, second_pass: bool
) -> None:
    """An inf gradient in either SAM pass leaves every weight bit-identical and finite;
    under fp16 the gradient scaler halves its scale, and the next step trains normally."""
    torch.manual_seed(0)
    model = TapDetector(sam_rho=0.05, input_size=32)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12)
    overflow = _Overflow(at=1, second_pass=second_pass)
    trainer = pl.Trainer(
        accelerator="cpu",
        plugins=[MixedPrecision("16-mixed", "cpu", scaler=scaler)] if fp16 else None,
        max_epochs=1,
        limit_train_batches=3,
        callbacks=[overflow],
        **QUIET,
    )
    trainer.fit(model, _data())
    params = {k for k, _ in model.named_parameters()}
    start, end = overflow.weights["start1"], overflow.weights["end1"]
    # The poisoned step changes no weight (BN running statistics are not weights) ...
    assert all(torch.equal(start[k], end[k]) for k in params)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    # ... the scaler halves its scale, and the step after it trains normally.
    if fp16:
        assert overflow.scales[3] == overflow.scales[2] / 2
    after = overflow.weights
    assert any(not torch.equal(after["start2"][k], after["end2"][k]) for k in params)
