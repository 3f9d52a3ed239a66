"""Structure every detector relies on: registration, the classifier view, CAM layers, feature taps.

The detectors under test are the registry's: a detector added by one module
under src/detectors is tested here without editing a list.
"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from conftest import TINY_SIZE

from src.detectors import list_detectors
from src.detectors.backbones import staged_backbone
from src.detectors.registry import (
    DETECTORS,
    build_detector,
    import_submodules,
    register_detector,
    registry_entry,
)

ROOT = Path(__file__).resolve().parents[1]

#: Detectors registered by the tests themselves (tests/example_detector.py), not shipped.
TEST_EXAMPLES = {"example_tap"}
#: Detectors that must be there: the guard against a registry that lost its modules.
KNOWN = {"efficientnet_b4", "f3net", "laa_net", "panet", "recce", "vgg16", "xception", "ynet"}
#: What the suite ships: every registered name but the tests' examples.
SHIPPED = sorted(set(list_detectors()) - TEST_EXAMPLES)

_FIND_UNREGISTERED = """
import importlib, inspect, json, pkgutil
import src.detectors as package
from src.detectors.base import Detector
from src.detectors.registry import DETECTORS
registered = {entry.obj for entry in DETECTORS}
found = []
for info in pkgutil.walk_packages(package.__path__, "src.detectors."):
    module = importlib.import_module(info.name)
    for _, cls in inspect.getmembers(module, inspect.isclass):
        if issubclass(cls, Detector) and cls is not Detector and cls.__module__ == info.name:
            found.append([info.name, cls.__name__, cls in registered])
print(json.dumps(found))
"""


def test_every_detector_class_under_src_detectors_is_registered_by_the_package() -> None:
    """A Detector subclass under src/detectors that never registers itself is in no test."""
    out = subprocess.run(
        [sys.executable, "-c", _FIND_UNREGISTERED], cwd=ROOT, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout)
    assert found, "no Detector subclass found under src/detectors"
    missing = [f"{module}.{name}" for module, name, registered in found if not registered]
    assert not missing, f"defined but not registered after `import src.detectors`: {missing}"


def test_the_shipped_detectors_are_the_registrys_and_live_under_src_detectors() -> None:
    assert set(SHIPPED) >= KNOWN
    package = ROOT / "src" / "detectors"
    for name in SHIPPED:
        cls = registry_entry(name).obj
        assert cls.__module__.startswith("src.detectors."), (name, cls.__module__)
        assert Path(inspect.getfile(cls)).resolve().is_relative_to(package), name


def test_a_module_added_to_a_package_registers_its_detector(tmp_path, monkeypatch) -> None:
    """The discovery `import src.detectors` runs, on a package holding one new module."""
    package = tmp_path / "probe_detectors"
    (package / "nested").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "nested" / "__init__.py").write_text("")
    (package / "nested" / "probe.py").write_text(
        textwrap.dedent(
            """
            from src.detectors import Detector, register_detector

            @register_detector("probe_added_by_one_module")
            class Probe(Detector):
                pass
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    modules: list[str] = []
    try:
        modules = import_submodules("probe_detectors")
        assert modules == ["probe_detectors.nested", "probe_detectors.nested.probe"]
        assert "probe_added_by_one_module" in list_detectors()
    finally:
        DETECTORS.unregister("probe_added_by_one_module")
        for module in ("probe_detectors", *modules):
            sys.modules.pop(module, None)


def test_the_detectors_verb_lists_whatever_is_registered(capsys) -> None:
    from src.cli import main

    sys.path.insert(0, str(ROOT))
    from tests.example_detector import TapDetector

    register_detector("probe_listed")(TapDetector)
    try:
        assert main(["detectors"]) == 0
    finally:
        DETECTORS.unregister("probe_listed")
    by_name = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert set(by_name) >= {*SHIPPED, "probe_listed"}
    assert "input 64x64" in by_name["probe_listed"]
    assert "dense: mask (scored against the manipulation mask)" in by_name["probe_listed"]
    assert "dense: heatmap (not scored)" in by_name["laa_net"]
    assert "dense" not in by_name["xception"]


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_classifier_view_shares_weights_and_cam_layers_see_activations(name: str) -> None:
    torch.manual_seed(0)
    model = build_detector(name, pretrained=False, input_size=TINY_SIZE).eval()
    images = torch.randn(2, 3, TINY_SIZE, TINY_SIZE)
    view = model.as_classifier()
    seen: list[torch.Size] = []
    hooks = [
        layer.register_forward_hook(lambda m, i, o: seen.append(o.shape))
        for layer in model.cam_target_layers()
    ]
    logits = view(images)
    for hook in hooks:
        hook.remove()
    assert logits.shape == (2, 1)
    assert torch.allclose(logits[:, 0], model(images).logit)
    assert len(seen) >= len(model.cam_layers) and all(len(shape) == 4 for shape in seen)
    # The view holds the detector's own parameters, not a copy: gradients reach them.
    logits.sum().backward()
    head = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    assert head.weight.grad is not None and head.weight.grad.abs().sum() > 0
    assert {id(p) for p in view.parameters()} == {id(p) for p in model.parameters()}


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_evaluation_layout_gives_the_same_outputs_and_is_undone(name: str) -> None:
    torch.manual_seed(0)
    model = build_detector(name, pretrained=False, input_size=TINY_SIZE).eval()
    images = torch.randn(2, 3, TINY_SIZE, TINY_SIZE)
    with torch.no_grad():
        default = model(images).maps() | {"logit": model(images).logit}
        model.evaluation_layout(True)
        convs = [p for p in model.parameters() if p.dim() == 4]
        assert all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
        evaluated = model(images).maps() | {"logit": model(images).logit}
        model.evaluation_layout(False)
    assert all(p.is_contiguous() for p in model.parameters())
    assert default.keys() == evaluated.keys()
    for key, value in default.items():
        # An untrained network in eval mode (BN running stats 0 / 1) can reach huge activations
        # (timm's HRNet: about 1e8); rounding then follows the map's scale, not each element's.
        scale = max(1.0, value.abs().max().item())
        torch.testing.assert_close(evaluated[key], value, rtol=1e-4, atol=1e-5 * scale, msg=key)


def test_lightning_evaluates_in_the_evaluation_layout_and_trains_in_the_default() -> None:
    import pytorch_lightning as pl

    from src.synthetic import SyntheticFaceDataModule

    model = build_detector("xception", pretrained=False, input_size=32)
    layouts: dict[str, set[bool]] = {}

    def record(_module: torch.nn.Module, _inputs: object) -> None:
        weight = model.backbone.conv1.weight
        stage = model.trainer.state.stage.value
        layouts.setdefault(stage, set()).add(
            weight.is_contiguous(memory_format=torch.channels_last)
        )

    hook = model.backbone.register_forward_pre_hook(record)
    data = SyntheticFaceDataModule(
        train_videos=4, val_videos=2, test_videos=2, frames_per_video=2, batch_size=4
    )
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(model, data)
    trainer.test(model, data)
    hook.remove()
    # Two epochs: training after a validation runs in the default layout again.
    assert layouts == {"train": {False}, "validate": {True}, "test": {True}}
    assert all(p.is_contiguous() for p in model.parameters())


@pytest.mark.parametrize(
    ("name", "size", "taps"),
    [
        ("legacy_xception", 299, {"block4": (728, 19), "block7": (728, 19), "conv4": (2048, 10)}),
        ("efficientnet_b0", 128, {"C3": (40, 16), "C5": (320, 4), "C6": (1280, 4)}),
        ("resnet18", 64, {"C2": (64, 16), "C4": (256, 4)}),
    ],
)
def test_feature_taps_match_the_whole_network_and_resume(name: str, size: int, taps: dict) -> None:
    torch.manual_seed(0)
    backbone = staged_backbone(name, num_classes=0).eval()
    images = torch.randn(1, 3, size, size)
    with torch.no_grad():
        features = backbone.features(images, list(taps))
        for tap, (channels, side) in taps.items():
            assert features[tap].shape == (1, channels, side, side), tap
            assert backbone.channels(tap) == channels
        whole = backbone.model.forward_features(images)
        first = list(taps)[0]
        resumed = backbone.run(backbone.run(images, until=first), after=first)
    assert torch.allclose(backbone.run(images), whole, atol=1e-5)
    assert torch.allclose(resumed, whole, atol=1e-5)


def test_unknown_tap_names_the_known_ones() -> None:
    backbone = staged_backbone("resnet18", num_classes=0)
    with pytest.raises(KeyError, match="no stage 'block4'.*layer1"):
        backbone.features(torch.zeros(1, 3, 32, 32), ["block4"])


def test_example_detector_trains_from_its_config(tmp_path, tiny_synthetic_args) -> None:
    """The example of adding a method: one source file, one config, SAM and a schedule from YAML."""
    from src.cli import main

    sys.path.insert(0, str(ROOT))
    args = [
        "fit",
        "-c",
        str(ROOT / "tests/configs/example_detector.yaml"),
        "-c",
        str(ROOT / "configs/data/synthetic.yaml"),
        *tiny_synthetic_args,
        "--model.init_args.input_size=32",
        f"--trainer.default_root_dir={tmp_path}",
        f"--trainer.logger.init_args.save_dir={tmp_path}",
    ]
    assert main(args) == 0
    (checkpoint,) = tmp_path.rglob("best-*.ckpt")
    saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
    assert saved["hyper_parameters"]["sam_rho"] == 0.05
    assert saved["hyper_parameters"]["freeze_backbone_epochs"] == 1
    assert "mask_head.weight" in saved["state_dict"]
