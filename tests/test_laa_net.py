"""LAA-Net: shapes, E-FPN weighting, losses wired, SAM training, the authors' checkpoint importer."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from src.detectors import LAANet, build_detector
from src.detectors.laa_net.importer import (
    authors_to_dfbench,
    dfbench_to_authors,
    load_authors_checkpoint,
)
from src.detectors.layers.efpn import EFPN

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
    model = LAANet(**DEMO, sam_rho=None)
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


AUTHORS_KEYS = Path(__file__).parent / "data" / "laa_net_authors_state_dict.tsv"


def authors_state_dict_spec() -> list[tuple[str, tuple[int, ...]]]:
    """(key, shape) of every tensor of the authors' model, in their state-dict order."""
    rows = [line.split("\t") for line in AUTHORS_KEYS.read_text().splitlines() if line[:1] != "#"]
    return [(key, () if shape == "-" else tuple(map(int, shape.split("x")))) for key, shape in rows]


def test_importer_maps_the_authors_keys_onto_ours_in_order(paper_model: LAANet) -> None:
    """Against an independent list of the authors' keys and shapes (from their model code).

    Each authors tensor carries a distinct value; it must land on the dfbench tensor at the
    same position of the computation order (efficientnet_pytorch and timm register a block's
    layers in the order they run), so two same-shaped tensors swapped by the mapping fail.
    """
    spec = authors_state_dict_spec()
    assert len(spec) == 803
    ours = paper_model.state_dict()
    authors = {key: torch.full(shape, float(i)) for i, (key, shape) in enumerate(spec)}
    mapped = authors_to_dfbench(authors, paper_model)
    assert set(mapped) == set(ours)  # every tensor of ours is covered, nothing extra
    assert all(mapped[k].shape == ours[k].shape for k in ours)
    backbone_spec = [key for key, _ in spec if key.startswith("_")]
    backbone_ours = [key for key in ours if key.startswith("backbone.")]
    assert len(backbone_spec) == len(backbone_ours)
    index = {key: i for i, (key, _) in enumerate(spec)}
    for theirs, mine in zip(backbone_spec, backbone_ours, strict=True):
        assert float(mapped[mine].flatten()[0]) == index[theirs], f"{theirs} -> {mine}"
    # Decoder and heads keep the authors' names (the E-FPN's under decoder.).
    for key, _ in spec:
        if not key.startswith("_"):
            ours_key = key if key.split(".")[0] in ("hm", "cls", "cstency") else f"decoder.{key}"
            assert float(mapped[ours_key].flatten()[0]) == index[key], key


def test_authors_state_dict_loads_strictly_and_round_trips(tmp_path, paper_model: LAANet) -> None:
    authors = dfbench_to_authors(paper_model.state_dict(), paper_model)
    assert {k: tuple(v.shape) for k, v in authors.items()} == dict(authors_state_dict_spec())
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
    model = LAANet(backbone="efficientnet_b0", input_size=64, freeze_backbone_epochs=1)
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


def test_authors_mode_uses_their_targets_weights_and_layers() -> None:
    torch.manual_seed(0)
    paper = LAANet(**DEMO, sam_rho=None)
    authors = LAANet(
        **DEMO,
        sam_rho=None,
        targets="authors",
        heatmap_weight=100.0,
        heatmap_label_smoothing=0.35,
        authors_layers=True,
    )
    bns = [m for m in authors.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(m.momentum == 0.01 and m.eps == 1e-3 for m in bns)
    assert authors._positive_weight() == pytest.approx(0.72)
    mask = torch.zeros(2, 1, 64, 64)
    mask[1, :, 16:48, 20:44] = 1.0
    mask = torch.nn.functional.avg_pool2d(mask, 9, stride=1, padding=4)
    batch = {
        "image": torch.randn(2, 3, 64, 64),
        "label": torch.tensor([0.0, 1.0]),
        "mask": mask,
        "has_mask": torch.ones(2, dtype=torch.bool),
    }
    authors.load_state_dict(paper.state_dict())
    paper.eval(), authors.eval()
    a, b = paper.loss(paper(batch["image"]), batch), authors.loss(authors(batch["image"]), batch)
    assert a["bce"].item() == pytest.approx(b["bce"].item())  # same network, same logits
    assert a["heatmap"].item() != pytest.approx(b["heatmap"].item())  # other targets
    with pytest.raises(ValueError, match="targets must be 'paper' or 'authors'"):
        LAANet(**DEMO, targets="code")


def test_authors_inception_statistics_update_three_times_from_the_input() -> None:
    """Their inception block calls its shared 1x1 block on the input thrice, then on the max-pool."""
    from src.detectors.layers.efpn import InceptionBlock

    torch.manual_seed(0)
    x = torch.randn(4, 8, 6, 6)
    once, thrice, reference = InceptionBlock(8), InceptionBlock(8, passes=3), InceptionBlock(8)
    thrice.load_state_dict(once.state_dict())
    reference.load_state_dict(once.state_dict())
    assert torch.equal(once(x), thrice(x))  # training-mode outputs agree
    # The running mean after x, x, x, maxpool(x), computed by hand-driving the block:
    with torch.no_grad():
        for inputs in (x, x, x, reference.mp_layer(x)):
            reference.pw_block(inputs)
    assert torch.allclose(thrice.pw_block[1].running_mean, reference.pw_block[1].running_mean)
    assert not torch.allclose(once.pw_block[1].running_mean, reference.pw_block[1].running_mean)
