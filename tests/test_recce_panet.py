"""RECCE and PANet: losses by hand, parameter counts by formula, noise, placements, Lightning."""

from __future__ import annotations

import math

import pytest
import pytorch_lightning as pl
import timm
import torch
from torch.utils.data import DataLoader

from src.detectors import RECCE, PANet, build_detector
from src.detectors.base import DetectorOutput
from src.detectors.layers.cbam import CBAM
from src.detectors.layers.ema import EfficientMultiScaleAttention
from src.detectors.losses import metric_learning_loss, reconstruction_loss
from src.detectors.recce import METRIC_EMBEDDINGS

#: Xception's smallest comfortable input (block4 2 x 2, conv4 1 x 1): fast on a loaded CPU.
SIZE = 32


def batch_of(size: int = SIZE, labels: tuple[float, ...] = (0, 1, 0, 1)) -> dict:
    generator = torch.Generator().manual_seed(0)
    n = len(labels)
    return {
        "image": torch.rand(n, 3, size, size, generator=generator) * 2 - 1,
        "label": torch.tensor(labels, dtype=torch.float32),
        "mask": torch.zeros(n, 1, size, size),
        "has_mask": torch.zeros(n, dtype=torch.bool),
        "sample_idx": torch.arange(n),
        "video_idx": torch.arange(n),
        "frame_idx": torch.zeros(n, dtype=torch.long),
    }


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ------------------------------------------------------------------- losses
def test_reconstruction_loss_by_hand_and_ignores_fakes() -> None:
    image = torch.zeros(4, 3, 2, 2)
    image[0] = 0.5  # real: |0 - 0.5| = 0.5 everywhere
    image[2] = -0.25  # real: 0.25
    image[1] = 7.0  # fakes: any value
    label = torch.tensor([0.0, 1.0, 0.0, 1.0])
    reconstruction = torch.zeros_like(image)
    assert reconstruction_loss(reconstruction, image, label).item() == pytest.approx(0.375)
    reconstruction[1] = -100.0
    reconstruction[3] = 3.0
    assert reconstruction_loss(reconstruction, image, label).item() == pytest.approx(0.375)


def test_reconstruction_loss_is_zero_without_reals() -> None:
    reconstruction = torch.randn(3, 3, 4, 4, requires_grad=True)
    loss = reconstruction_loss(reconstruction, torch.randn(3, 3, 4, 4), torch.ones(3))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(reconstruction.grad, torch.zeros_like(reconstruction))


def test_metric_loss_on_a_hand_computed_four_sample_case() -> None:
    # real r1 = (1, 0), fake f1 = (-1, 0), real r2 = (0, 5), fake f2 = (3, 3).
    embeddings = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 5.0], [3.0, 3.0]])
    label = torch.tensor([0.0, 1.0, 0.0, 1.0])
    # Distances (1 - cos) / 2: r1-r2 0.5; r1-f1 1, r1-f2 (1 - 1/sqrt2)/2, r2-f1 0.5, r2-f2 the same.
    diagonal = (1 - 1 / math.sqrt(2)) / 2
    expected = 0.5 - (1 + diagonal + 0.5 + diagonal) / 4
    assert metric_learning_loss(embeddings, label).item() == pytest.approx(expected, abs=1e-6)
    # Swapping labels makes r's fakes: the real pair (f1, f2) has distance (1 + 1/sqrt2) / 2.
    swapped = metric_learning_loss(embeddings, 1 - label).item()
    assert swapped == pytest.approx(
        (1 + 1 / math.sqrt(2)) / 2 - (1 + diagonal + 0.5 + diagonal) / 4
    )


def test_metric_loss_without_pairs_of_a_kind() -> None:
    embeddings = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    # One real only: no real-real pair, the loss is minus the mean real-fake distance.
    label = torch.tensor([0.0, 1.0, 1.0])
    expected = -(0.5 + (1 - 1 / math.sqrt(2)) / 2) / 2
    assert metric_learning_loss(embeddings, label).item() == pytest.approx(expected)
    # All real: no real-fake pair; mean over the 6 ordered distinct pairs.
    expected = (0.5 * 2 + (1 - 1 / math.sqrt(2)) / 2 * 4) / 6
    assert metric_learning_loss(embeddings, torch.zeros(3)).item() == pytest.approx(expected)
    assert metric_learning_loss(embeddings, torch.ones(3)).item() == 0.0


def test_recce_loss_combines_all_three_terms_with_its_weights() -> None:
    model = RECCE(input_size=SIZE, reconstruction_weight=2.0, metric_weight=3.0)
    batch = batch_of()
    output = model.eval()(batch["image"])
    losses = model.loss(output, batch)
    assert set(losses) == {"loss", "bce", "reconstruction", "metric"}
    rec = reconstruction_loss(output.reconstruction, batch["image"], batch["label"])
    metric = sum(metric_learning_loss(output.extras[k], batch["label"]) for k in METRIC_EMBEDDINGS)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(output.logit, batch["label"])
    assert losses["reconstruction"].item() == pytest.approx(rec.item()) and rec > 0
    assert losses["metric"].item() == pytest.approx(metric.item()) and metric != 0
    assert losses["loss"].item() == pytest.approx((bce + 2 * rec + 3 * metric).item(), rel=1e-6)

    model.flood_level = 10.0  # |bce - 10| + 10
    assert model.loss(output, batch)["bce"].item() == pytest.approx(20 - bce.item(), rel=1e-6)


def test_metric_embeddings_are_the_pooled_block4_and_decoder_maps() -> None:
    model = RECCE(input_size=SIZE).eval()
    maps = {}
    model.backbone.model.block4.register_forward_hook(lambda m, i, o: maps.update(block4=o))
    model.decoder.block1.register_forward_hook(lambda m, i, o: maps.update(d2=o))
    model.decoder.block2.register_forward_hook(lambda m, i, o: maps.update(d4=o))
    output = model(batch_of()["image"])
    for key, name in zip(METRIC_EMBEDDINGS, ("block4", "d2", "d4"), strict=True):
        assert torch.allclose(output.extras[key], maps[name].mean(dim=(2, 3)))


# ------------------------------------------------------------- architecture
def _decoder_parameters() -> int:
    def separable(cin: int, cout: int) -> int:
        return cin * 9 + cin * cout

    up = sum(separable(a, b) + 2 * b for a, b in ((728, 256), (256, 128), (128, 64)))
    blocks = sum(3 * (separable(c, c) + 2 * c) for c in (256, 128))
    return up + blocks + 64 * 3


def test_recce_parameters_per_component_by_formula() -> None:
    model = RECCE()
    xception = timm.create_model("legacy_xception", num_classes=0)
    reasoning = (
        728 * 256 + 256 * 256  # query embedding
        + 2 * 728 * 256  # two gates
        + (256 * 256 + 256 * 256) + (128 * 256 + 256 * 256)  # neighbour embeddings
        + 2 * 512  # two attention scores
        + 768 * 728 + 728 * 728  # re-projection
    )  # fmt: skip
    guided = 3 * 3 * 9 + 3 + 728 * 728 + 2 * 728
    assert count(model.backbone) == count(xception)
    assert count(model.decoder) == _decoder_parameters()
    assert count(model.reasoning) == reasoning
    assert count(model.guided_attention) == guided
    assert count(model.head) == 2048 + 1
    assert count(model.attention) == 0
    assert count(model) == count(xception) + _decoder_parameters() + reasoning + guided + 2049
    assert 23.7e6 < count(model) < 23.9e6  # "about 23.8 M without the Xception fc"


def test_recce_shapes_at_299_px() -> None:
    model = RECCE().eval()
    with torch.no_grad():
        output = model(torch.zeros(1, 3, 299, 299))
    assert output.logit.shape == (1,)
    assert output.reconstruction.shape == (1, 3, 299, 299)
    assert output.features.shape == (1, 2048)
    assert [output.extras[k].shape[1] for k in METRIC_EMBEDDINGS] == [728, 256, 128]


def test_recce_registered_with_its_contract_and_cam_layer() -> None:
    model = build_detector("recce").eval()
    assert isinstance(model, RECCE)
    contract = model.input_contract
    assert (contract.input_size, contract.mean, contract.std) == (
        (299, 299),
        (0.5,) * 3,
        (0.5,) * 3,
    )
    assert model.cam_target_layers() == [model.backbone.model.conv4]
    assert model.as_classifier()(torch.zeros(1, 3, SIZE, SIZE)).shape == (1, 1)


# -------------------------------------------------------------------- noise
def _record_inputs(model: RECCE) -> list[dict]:
    """Hooks that record the encoder's input and the images the guided attention compares."""
    calls: list[dict] = []

    def encoder_hook(module: torch.nn.Module, args: tuple) -> None:
        stage = model._trainer.state.stage if model._trainer is not None else None
        calls.append({"encoder": args[0].detach().clone(), "stage": stage})

    def guided_hook(module: torch.nn.Module, args: tuple) -> None:
        calls[-1]["clean"] = args[0].detach().clone()

    model.backbone.model.conv1.register_forward_pre_hook(encoder_hook)
    model.guided_attention.register_forward_pre_hook(guided_hook)
    return calls


def test_noise_on_a_random_subset_in_training_only() -> None:
    torch.manual_seed(0)
    model = RECCE(input_size=SIZE, noise_std=0.5)
    calls = _record_inputs(model)
    batch = batch_of(labels=(0, 1) * 4)
    model.train()
    model.step_forward(batch)
    noised = (calls[0]["encoder"] != batch["image"]).flatten(1).any(1)
    assert 0 < noised.sum() < 8  # a random subset, each sample whole or not at all
    assert ((calls[0]["encoder"] == batch["image"]).flatten(1).all(1) == ~noised).all()
    assert calls[0]["encoder"].abs().max() <= 1.0  # clipped to the normalised range
    assert (calls[0]["encoder"] - batch["image"]).std() > 0.1
    assert torch.equal(calls[0]["clean"], batch["image"])  # guided attention: the clean input

    model.eval()
    model.step_forward(batch)
    assert torch.equal(calls[1]["encoder"], batch["image"])


class _Batches(torch.utils.data.Dataset):
    def __init__(self, n: int) -> None:
        self.items = batch_of(labels=tuple(float(i % 2) for i in range(n)))

    def __len__(self) -> int:
        return len(self.items["label"])

    def __getitem__(self, index: int) -> dict:
        return {key: value[index] for key, value in self.items.items()}


def test_noise_never_reaches_validation_test_or_predict() -> None:
    torch.manual_seed(0)
    model = RECCE(input_size=SIZE, noise_std=0.5, noise_probability=1.0)
    calls = _record_inputs(model)
    loader = DataLoader(_Batches(8), batch_size=4)
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=1,
        limit_train_batches=1,
        limit_val_batches=1,
        limit_test_batches=1,
        limit_predict_batches=1,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, loader, loader)
    trainer.test(model, loader, verbose=False)
    trainer.predict(model, loader)
    by_stage: dict[str, list[bool]] = {}
    for call in calls:
        noised = not torch.equal(call["encoder"], call["clean"])
        by_stage.setdefault(getattr(call["stage"], "value", call["stage"]), []).append(noised)
    assert by_stage == {"train": [True], "validate": [False], "test": [False], "predict": [False]}


# -------------------------------------------------------------------- PANet
def test_panet_default_places_ema_on_the_embedding_and_cbam_after_guided_attention() -> None:
    model = build_detector("panet")
    assert isinstance(model, PANet)
    assert set(model.attention) == {"embedding", "guided"}
    (ema,) = model.attention["embedding"]
    (cbam,) = model.attention["guided"]
    assert isinstance(ema, EfficientMultiScaleAttention) and ema.groups == 8
    assert ema.coordinate_conv.in_channels == 728 // 8
    assert isinstance(cbam, CBAM) and cbam.channel.mlp[0].in_features == 728
    recce_parts = (
        model.backbone,
        model.decoder,
        model.reasoning,
        model.guided_attention,
        model.head,
    )
    assert count(model) == sum(map(count, recce_parts)) + count(ema) + count(cbam)


@pytest.mark.parametrize(
    ("flags", "modules"),
    [
        ({"use_cbam": False}, {"embedding": (EfficientMultiScaleAttention, 728)}),
        ({"use_ema": False}, {"guided": (CBAM, 728)}),
        ({"use_ema": False, "use_cbam": False}, {}),
        (
            {"ema_at": "decoder", "cbam_at": "final"},
            {
                "decoder2": (EfficientMultiScaleAttention, 256),
                "decoder4": (EfficientMultiScaleAttention, 128),
                "final": (CBAM, 2048),
            },
        ),
        (
            {"ema_at": "fusion", "cbam_at": "guided"},
            {"fusion": (EfficientMultiScaleAttention, 728), "guided": (CBAM, 728)},
        ),
    ],
)
def test_panet_flags_and_placements(flags: dict, modules: dict) -> None:
    torch.manual_seed(0)
    model = PANet(input_size=SIZE, **flags).eval()
    assert set(model.attention) == set(modules)
    calls: dict[str, int] = {}
    for point, (kind, channels) in modules.items():
        (module,) = model.attention[point]
        assert isinstance(module, kind)
        width = module.channel.mlp[0].in_features if kind is CBAM else None
        if kind is EfficientMultiScaleAttention:
            width = module.coordinate_conv.in_channels * module.groups
        assert width == channels
        module.register_forward_hook(
            lambda m, i, o, point=point: calls.update({point: calls.get(point, 0) + 1})
        )
    output = model(batch_of()["image"])
    assert output.logit.shape == (4,) and torch.isfinite(output.logit).all()
    assert calls == dict.fromkeys(modules, 1)


def test_panet_attention_changes_the_output() -> None:
    torch.manual_seed(0)
    images = batch_of()["image"]
    plain = PANet(input_size=SIZE, use_ema=False, use_cbam=False).eval()
    state = plain.state_dict()
    for flags in ({"use_cbam": False}, {"use_ema": False}):
        model = PANet(input_size=SIZE, **flags).eval()
        model.load_state_dict(state, strict=False)  # same RECCE weights, new attention
        with torch.no_grad():
            assert not torch.allclose(model(images).logit, plain(images).logit)


def test_panet_option_errors_name_the_option() -> None:
    with pytest.raises(ValueError, match=r"ema_at='block5' is not a placement.*embedding"):
        PANet(ema_at="block5")
    with pytest.raises(ValueError, match=r"cbam_at='head' is not a placement.*guided"):
        PANet(cbam_at="head")
    with pytest.raises(ValueError, match="groups=7 must divide channels=256"):
        PANet(ema_at="decoder", ema_groups=7)
    with pytest.raises(ValueError, match="noise_std must be >= 0"):
        RECCE(noise_std=-1.0)


def test_output_is_a_detector_output_with_the_reconstruction_at_the_input_size() -> None:
    model = PANet(input_size=48, ema_at="decoder").eval()
    output = model(torch.zeros(2, 3, 48, 48))
    assert isinstance(output, DetectorOutput)
    assert output.reconstruction.shape == (2, 3, 48, 48)
    assert set(output.extras) == set(METRIC_EMBEDDINGS)
