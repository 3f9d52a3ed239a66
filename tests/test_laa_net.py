"""LAA-Net: shapes, E-FPN weighting, losses wired, SAM training, the authors' checkpoint importer."""

from __future__ import annotations

import pytest
import torch

from src.detectors import LAANet, build_detector
from src.detectors.laa_net.importer import (
    authors_to_dfbench,
    dfbench_to_authors,
    load_authors_checkpoint,
)
from src.detectors.layers.efpn import EFPN
from src.detectors.optim import SAM

DEMO = {"backbone": "efficientnet_b0", "input_size": 64}


@pytest.fixture(scope="module")
def paper_model() -> LAANet:
    torch.manual_seed(0)
    return build_detector("laa_net").eval()


def test_paper_architecture_shapes_and_size(paper_model: LAANet) -> None:
    with torch.no_grad():
        out = paper_model(torch.randn(1, 3, 384, 384))
    assert out.logit.shape == (1,)
    assert out.heatmap.shape == (1, 1, 96, 96)
    assert out.consistency.shape == (1, 256, 96, 96)
    # The authors' model: 27,128,786 parameters (the shared inception block counted once).
    assert sum(p.numel() for p in paper_model.parameters()) == 27_128_786
    assert paper_model.hm[3].bias.item() == pytest.approx(-2.19)


def test_efpn_weighting_on_a_hand_made_tensor() -> None:
    """The skip entering the next level is (1 - sigmoid(E)) ** gamma * C, beside E (paper Eq. 9)."""
    torch.manual_seed(0)
    efpn = EFPN([8, 4], [False], gamma=2.0).eval()
    top = torch.randn(1, 8, 3, 3)
    skip = torch.arange(36, dtype=torch.float32).view(1, 4, 3, 3) / 10
    captured = {}
    efpn.deconv_2.register_forward_hook(lambda m, i, o: captured.__setitem__("efpn", i[0]))
    efpn([top, skip])
    decoded = efpn.deconv_1(top)
    assert torch.allclose(captured["efpn"][:, :4], decoded)
    assert torch.allclose(captured["efpn"][:, 4:], (1 - torch.sigmoid(decoded)) ** 2 * skip)
    # Hand check of one value: E = 0 (ReLU'd) gives a weight of (1 - 1/2)^2 = 1/4.
    zero = decoded == 0
    assert zero.any() and torch.allclose(captured["efpn"][:, 4:][zero], skip[zero] / 4)
    plain = EFPN([8, 4], [False], weighted=False).eval()
    plain.load_state_dict(efpn.state_dict())
    plain.deconv_2.register_forward_hook(lambda m, i, o: captured.__setitem__("plain", i[0]))
    plain([top, skip])
    assert torch.equal(captured["plain"][:, 4:], skip)


def test_every_loss_term_is_named_and_finite() -> None:
    torch.manual_seed(0)
    model = LAANet(**DEMO, sam=False)
    mask = torch.zeros(4, 1, 64, 64)
    mask[1::2, :, 16:48, 20:44] = 1.0
    mask = torch.nn.functional.avg_pool2d(mask, 9, stride=1, padding=4)
    batch = {
        "image": torch.randn(4, 3, 64, 64),
        "label": torch.tensor([0.0, 1, 0, 1]),
        "mask": mask,
        "has_mask": torch.ones(4, dtype=torch.bool),
    }
    losses = model.loss(model(batch["image"]), batch)
    assert set(losses) == {"loss", "bce", "heatmap", "consistency"}
    assert torch.isclose(
        losses["loss"], losses["bce"] + 10 * losses["heatmap"] + 100 * losses["consistency"]
    )
    ablated = LAANet(**DEMO, use_heatmap=False, use_consistency=False)
    assert ablated.hm is None and ablated.cstency is None
    assert set(ablated.loss(ablated(batch["image"]), batch)) == {"loss", "bce"}


def test_levels_must_run_down_from_six() -> None:
    assert LAANet(**DEMO, levels=[6, 5]).levels == (6, 5)
    with pytest.raises(ValueError, match="levels must run down from 6"):
        LAANet(**DEMO, levels=[6, 4, 3])


def test_sam_restores_the_weights_before_the_base_step() -> None:
    weight = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    optimizer = torch.optim.SGD([weight], lr=0.1)
    sam = SAM(optimizer, rho=0.5)
    (weight**2).sum().backward()  # gradient (2, 4)
    sam.climb()
    g = torch.tensor([2.0, 4.0])
    assert torch.allclose(weight.detach(), torch.tensor([1.0, 2.0]) + 0.5 * g / g.norm())
    optimizer.zero_grad()
    (weight**2).sum().backward()
    climbed_grad = weight.grad.clone()
    sam.descend()
    optimizer.step()
    assert torch.allclose(weight.detach(), torch.tensor([1.0, 2.0]) - 0.1 * climbed_grad)


def test_lr_schedule_warms_up_then_decays() -> None:
    model = LAANet(**DEMO)
    factors = [model.lr_factor(step, 100) for step in (0, 12, 25, 50, 100)]
    assert factors[0] == pytest.approx(5e-5 / 2e-4)
    assert factors[2] == pytest.approx(1.0)
    assert factors[0] < factors[1] < factors[2] > factors[3] > factors[4] == 0


def test_authors_state_dict_loads_strictly_and_round_trips(tmp_path, paper_model: LAANet) -> None:
    authors = dfbench_to_authors(paper_model.state_dict(), paper_model)
    # Facts from the authors' code: 803 keys, efficientnet_pytorch naming, float64.
    assert len(authors) == 803
    shapes = {k: tuple(v.shape) for k, v in authors.items()}
    assert shapes["_conv_stem.weight"] == (48, 3, 3, 3)
    assert shapes["_blocks.0._project_conv.weight"] == (24, 48, 1, 1)
    assert "_blocks.1._expand_conv.weight" not in shapes and shapes[
        "_blocks.2._expand_conv.weight"
    ] == (144, 24, 1, 1)
    assert shapes["_blocks.6._depthwise_conv.weight"] == (192, 1, 5, 5)
    assert shapes["_blocks.31._se_reduce.weight"] == (112, 2688, 1, 1)
    assert shapes["_conv_head.weight"] == (1792, 448, 1, 1) and shapes["_bn1.running_var"] == (
        1792,
    )
    assert shapes["deconv_2.0.0.weight"] == (160, 896, 3, 3) and shapes["deconv_2.1.weight"] == (
        160,
        160,
        4,
        4,
    )
    assert (
        shapes["deconv_4.0.conv5_block.0.weight"]
        == shapes["inception_block.conv5_block.0.weight"]
        == (28, 28, 5, 5)
    )
    assert shapes["cls.5.weight"] == (1, 64) and shapes["cstency.3.weight"] == (256, 64, 1, 1)
    assert sum(k.startswith("_blocks.") for k in authors) == 692
    assert authors["_bn0.weight"].dtype == torch.float64
    assert authors["_bn0.num_batches_tracked"].dtype == torch.int64

    path = tmp_path / "authors.pth"
    torch.save(
        {"epoch": 3, "state_dict": {f"module.{k}": v for k, v in authors.items()}, "optimizer": {}},
        path,
    )
    imported = load_authors_checkpoint(path).eval()
    original = LAANet(authors_padding=True).eval()
    original.load_state_dict(paper_model.state_dict())
    images = torch.randn(1, 3, 384, 384)
    with torch.no_grad():
        a, b = original(images), imported(images)
    assert torch.allclose(a.logit, b.logit, atol=1e-5)
    assert torch.allclose(a.heatmap, b.heatmap, atol=1e-5)
    assert torch.equal(
        authors_to_dfbench(authors, imported)["cls.5.weight"],
        paper_model.state_dict()["cls.5.weight"],
    )


class _Snapshots(__import__("pytorch_lightning").Callback):
    def __init__(self) -> None:
        self.backbone: list[dict[str, torch.Tensor]] = []
        self.decoder: list[dict[str, torch.Tensor]] = []

    def _take(self, module: LAANet) -> None:
        self.backbone.append({k: v.detach().clone() for k, v in module.backbone.named_parameters()})
        self.decoder.append({k: v.detach().clone() for k, v in module.decoder.named_parameters()})

    def on_train_start(self, trainer, module) -> None:
        self._take(module)

    def on_train_epoch_end(self, trainer, module) -> None:
        self._take(module)


def test_sam_training_freezes_the_backbone_then_trains_it_in_mixed_precision(tmp_path) -> None:
    import pytorch_lightning as pl

    from src.synthetic import SyntheticFaceDataModule

    torch.manual_seed(0)
    model = LAANet(backbone="efficientnet_b0", input_size=64, sam=True, freeze_epochs=1)
    data = SyntheticFaceDataModule(train_videos=8, val_videos=4, test_videos=4, batch_size=4)
    snapshots = _Snapshots()
    trainer = pl.Trainer(
        accelerator="cpu",
        precision="bf16-mixed",
        max_epochs=2,
        limit_train_batches=2,
        limit_val_batches=1,
        callbacks=[snapshots],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, data)

    def moved(before: dict, after: dict) -> int:
        return sum(not torch.equal(before[k], after[k]) for k in before)

    start, frozen, trained = snapshots.backbone
    assert moved(start, frozen) == 0  # epoch 0: backbone frozen
    assert moved(frozen, trained) > 0.5 * len(start)  # epoch 1: it trains
    assert moved(snapshots.decoder[0], snapshots.decoder[1]) > 0.5 * len(snapshots.decoder[0])
    assert trainer.global_step == 4  # one optimiser step per batch, SAM's two passes included
