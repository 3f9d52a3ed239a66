"""PRLE stage 1 as a job: Grad-CAM against a hand derivation, map building, resuming."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from conftest import TINY_SIZE
from torch import Tensor, nn

from src.augment.prle import decode_map, encode_map, fuse_maps
from src.contracts import InputContract
from src.detectors import build_detector
from src.detectors.base import Detector, DetectorOutput
from src.tools import prle_maps
from src.tools.prle_maps import MapSettings, build_prle_maps, gradcam_maps, read_map_index


class TinyDetector(Detector):
    """conv 3x3 (the CAM layer, full resolution) -> global mean -> linear: Grad-CAM by hand."""

    cam_layers = ("features",)

    def __init__(self, seed: int, size: int = 16) -> None:
        super().__init__()
        self.default_contract = InputContract((size, size), (0.5,) * 3, (0.25,) * 3)
        torch.manual_seed(seed)
        self.features = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 1)

    def forward(self, images: Tensor) -> DetectorOutput:
        features = self.features(images)
        return DetectorOutput(logit=self.fc(features.mean(dim=(2, 3))).squeeze(1))


def hand_gradcam(detector: TinyDetector, images: Tensor, sign: Tensor) -> np.ndarray:
    """d logit / d H^k_uv = w_k / (U V) for this model, so alpha_k = w_k / (U V) (Eq. 3)."""
    with torch.no_grad():
        features = detector.features(images).numpy()
    height, width = features.shape[-2:]
    alpha = detector.fc.weight[0].detach().numpy() / (height * width)
    cams = []
    for b in range(images.shape[0]):
        cam = np.maximum(float(sign[b]) * np.einsum("k,khw->hw", alpha, features[b]), 0)
        cam = cam - cam.min()
        cams.append(cam / (cam.max() + 1e-7))
    return np.stack(cams)


def test_gradcam_maps_equal_the_hand_derivation() -> None:
    detector = TinyDetector(seed=0)
    images = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([1.0, 0.0, 1.0])
    fake = gradcam_maps(detector, images)
    assert fake.shape == (3, 16, 16) and fake.dtype == torch.float32
    np.testing.assert_allclose(
        fake.numpy(), hand_gradcam(detector, images, torch.ones(3)), atol=1e-4
    )
    own = gradcam_maps(detector, images, target="label", labels=labels)
    expected = hand_gradcam(detector, images, 2 * labels - 1)
    np.testing.assert_allclose(own.numpy(), expected, atol=1e-4)
    assert detector.training and detector.features.weight.grad is None  # left as found
    with pytest.raises(ValueError, match="needs the images' labels"):
        gradcam_maps(detector, images, target="label")


def test_zoo_members_give_maps_at_the_image_size() -> None:
    torch.manual_seed(0)
    detector = build_detector("xception", pretrained=False, input_size=TINY_SIZE)
    # The authors' choice for Xception: conv4 and conv3, their maps averaged.
    assert detector.cam_layers == ("backbone.conv4", "backbone.conv3")
    assert build_detector("f3net", input_size=TINY_SIZE).cam_layers == ("backbone.model.conv4",)
    maps = gradcam_maps(detector, torch.randn(2, 3, TINY_SIZE, TINY_SIZE))
    assert maps.shape == (2, TINY_SIZE, TINY_SIZE)
    assert maps.min() >= 0 and maps.max() <= 1 and maps.amax(dim=(1, 2)).min() > 0.99


def test_gradcam_backward_stops_at_the_cam_layers() -> None:
    """Same maps as the package's own full backward, without the layers before conv3."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import BinaryClassifierOutputTarget

    torch.manual_seed(0)
    detector = build_detector("xception", pretrained=False, input_size=TINY_SIZE).eval()
    detector.backbone.conv2.weight.requires_grad_(False)  # a user's frozen layer stays frozen
    images = torch.randn(3, 3, TINY_SIZE, TINY_SIZE)
    early_outputs: list[Tensor] = []
    hook = detector.backbone.block1.register_forward_hook(
        lambda _module, _inputs, output: early_outputs.append(output)
    )
    maps = gradcam_maps(detector, images)
    hook.remove()
    assert not early_outputs[0].requires_grad  # nothing before the CAM layers is differentiated
    assert [n for n, p in detector.named_parameters() if not p.requires_grad] == [
        "backbone.conv2.weight"
    ]
    cam = GradCAM(model=detector.as_classifier(), target_layers=detector.cam_target_layers())
    with torch.enable_grad():
        reference = cam(images, targets=[BinaryClassifierOutputTarget(1)] * 3)
    cam.activations_and_grads.release()
    np.testing.assert_allclose(maps.numpy(), reference, atol=1e-5)


@pytest.mark.slow
def test_cam_layers_of_the_other_backbones() -> None:
    expected = {
        "efficientnet_b4": ("backbone.conv_head",),
        "vgg16": ("backbone.features.28",),  # the last conv before timm's conv-MLP head
        "resnet50": ("backbone.layer4",),
    }
    for name, layers in expected.items():
        detector = build_detector(name, pretrained=False, input_size=TINY_SIZE)
        assert detector.cam_layers == layers
        assert all(detector.get_submodule(layer) is not None for layer in layers)


def write_cache(root: Path, count: int = 7, missing: int | None = 3) -> pd.DataFrame:
    """``count`` smooth random face crops of varied sizes and their frame-table rows."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(count):
        side = 36 + 4 * (i % 3)
        crop = cv2.resize(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8), (side, side))
        crop_path = f"ffpp/Deepfakes/c23/{i // 3:03d}/{i:06d}.png"
        if i != missing:
            (root / crop_path).parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / crop_path), crop)
        rows.append(
            {
                "crop_path": crop_path,
                "video_key": f"ffpp/Deepfakes/c23/{i // 3:03d}",
                "frame_idx": i,
                "face_idx": 0,
                "label": i % 2,
            }
        )
    return pd.DataFrame(rows)


def zoo() -> dict[str, TinyDetector]:
    return {"a.ckpt": TinyDetector(seed=1, size=16), "b.ckpt": TinyDetector(seed=2, size=24)}


SETTINGS = MapSettings(map_size=32, tau1=0.2, lam=0.1)


def test_build_writes_one_fused_map_per_frame_and_a_failures_table(tmp_path: Path) -> None:
    frames = write_cache(tmp_path / "cache")
    result = build_prle_maps(
        zoo(), frames, tmp_path / "cache", tmp_path / "maps", SETTINGS, batch_size=2, progress=False
    )
    assert result.built == 6 and result.skipped == 0
    assert list(result.failures["crop_path"]) == [frames["crop_path"][3]]
    assert "face crop missing" in result.failures["reason"][0]
    index = read_map_index(tmp_path / "maps")
    assert list(index.columns) == list(prle_maps.INDEX_COLUMNS) and len(index) == 6
    assert set(index["crop_path"]) == set(frames["crop_path"]) - {frames["crop_path"][3]}
    failures = pd.read_csv(tmp_path / "maps" / "failures.csv")
    assert list(failures["crop_path"]) == [frames["crop_path"][3]]

    # Frame 0 recomputed by hand from the members' maps: crop -> 32 px -> each member's size.
    row = index.iloc[0]
    stored = cv2.imread(str(tmp_path / "maps" / row["path"]), cv2.IMREAD_UNCHANGED)
    assert stored.dtype == np.uint8 and stored.shape == (32, 32)
    crop = cv2.cvtColor(cv2.imread(str(tmp_path / "cache" / row["crop_path"])), cv2.COLOR_BGR2RGB)
    face = torch.from_numpy(cv2.resize(crop, (32, 32), interpolation=cv2.INTER_AREA))
    face = face.permute(2, 0, 1)[None].float() / 255
    members = []
    for detector in zoo().values():
        size = detector.input_contract.input_size
        image = F.interpolate(face, size=size, mode="bilinear", antialias=True)
        cam = gradcam_maps(detector, (image - 0.5) / 0.25)
        members.append(F.interpolate(cam[:, None], size=(32, 32), mode="bilinear")[:, 0])
    fused = fuse_maps(torch.stack(members, 1), tau1=0.2, lam=0.1)[0]
    assert np.abs(stored.astype(int) - encode_map(fused).astype(int)).max() <= 1
    assert np.abs(decode_map(stored) - fused.numpy()).max() <= 1.5 / 255
    assert (stored > 0).any()


def test_resumed_build_equals_a_clean_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    frames = write_cache(tmp_path / "cache", count=9, missing=None)
    clean = build_prle_maps(
        zoo(),
        frames,
        tmp_path / "cache",
        tmp_path / "clean",
        SETTINGS,
        batch_size=2,
        progress=False,
    )
    assert clean.built == 9

    written = []
    real_write = prle_maps._write_png

    def dying_write(path: Path, image: np.ndarray) -> None:
        if len(written) == 5:  # killed halfway through the third chunk
            raise KeyboardInterrupt
        written.append(path)
        real_write(path, image)

    monkeypatch.setattr(prle_maps, "_write_png", dying_write)
    with pytest.raises(KeyboardInterrupt):
        build_prle_maps(
            zoo(),
            frames,
            tmp_path / "cache",
            tmp_path / "run",
            SETTINGS,
            batch_size=2,
            progress=False,
        )
    assert not (tmp_path / "run" / "index.parquet").exists()
    monkeypatch.setattr(prle_maps, "_write_png", real_write)
    resumed = build_prle_maps(
        zoo(), frames, tmp_path / "cache", tmp_path / "run", SETTINGS, batch_size=2, progress=False
    )
    assert (resumed.skipped, resumed.built) == (4, 5)  # two whole chunks kept, the half one redone
    for path in clean.index["path"]:
        assert (tmp_path / "run" / path).read_bytes() == (tmp_path / "clean" / path).read_bytes()
    pd.testing.assert_frame_equal(resumed.index, clean.index)
    again = build_prle_maps(
        zoo(), frames, tmp_path / "cache", tmp_path / "run", SETTINGS, batch_size=2, progress=False
    )
    assert (again.built, again.skipped) == (0, 9)


def test_a_folder_refuses_other_settings(tmp_path: Path) -> None:
    frames = write_cache(tmp_path / "cache", count=2, missing=None)
    build_prle_maps(zoo(), frames, tmp_path / "cache", tmp_path / "maps", SETTINGS, progress=False)
    with pytest.raises(ValueError, match="other settings \\(lam differ\\)"):
        build_prle_maps(
            zoo(),
            frames,
            tmp_path / "cache",
            tmp_path / "maps",
            MapSettings(map_size=32, tau1=0.2, lam=0.3),
            progress=False,
        )
    with pytest.raises(ValueError, match="unknown PRLE fusion 'max'"):
        build_prle_maps(zoo(), frames, tmp_path, tmp_path / "x", MapSettings(fusion="max"))

    class NoCam(TinyDetector):
        cam_layers = ()

    with pytest.raises(ValueError, match="zoo member 'n' cannot give Grad-CAM maps"):
        build_prle_maps({"n": NoCam(0)}, frames, tmp_path, tmp_path / "y", SETTINGS)


KILLED_RUN = """
import sys, time
import pandas as pd
import test_prle_maps as t
from src.tools import prle_maps

real_write = prle_maps._write_png

def slow_write(path, image):
    time.sleep(0.2)
    real_write(path, image)

prle_maps._write_png = slow_write
frames = pd.read_parquet(sys.argv[1])
prle_maps.build_prle_maps(
    t.zoo(), frames, sys.argv[2], sys.argv[3], t.SETTINGS, batch_size=2, progress=False
)
"""


@pytest.mark.slow
def test_sigkilled_build_resumes_to_identical_maps(tmp_path: Path) -> None:
    frames = write_cache(tmp_path / "cache", count=24, missing=None)
    frames.to_parquet(tmp_path / "frames.parquet")
    tests_dir = Path(__file__).parent
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tests_dir.parent), str(tests_dir)]))
    args = [str(tmp_path / "frames.parquet"), str(tmp_path / "cache"), str(tmp_path / "run")]
    process = subprocess.Popen([sys.executable, "-c", KILLED_RUN, *args], env=env)
    maps_dir = tmp_path / "run" / "maps"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(list(maps_dir.rglob("*.png"))) < 7:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    done = len(list(maps_dir.rglob("*.png")))
    assert 7 <= done < 24, "the run was not killed halfway"

    resumed = build_prle_maps(
        zoo(), frames, tmp_path / "cache", tmp_path / "run", SETTINGS, batch_size=2, progress=False
    )
    clean = build_prle_maps(
        zoo(),
        frames,
        tmp_path / "cache",
        tmp_path / "clean",
        SETTINGS,
        batch_size=2,
        progress=False,
    )
    assert resumed.built + resumed.skipped == 24 and resumed.skipped >= done - 1
    for path in clean.index["path"]:
        assert (tmp_path / "run" / path).read_bytes() == (tmp_path / "clean" / path).read_bytes()
