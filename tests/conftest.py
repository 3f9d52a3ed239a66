"""Shared fixtures: every test runs offline on tiny synthetic data."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

#: Input size that every registered backbone accepts and that keeps CPU tests fast.
TINY_SIZE = 64


@pytest.fixture
def tiny_synthetic_args() -> list[str]:
    """LightningCLI arguments that shrink any fit/test/predict to a seconds-long CPU run."""
    return [
        "--data.init_args.train_videos=8",
        "--data.init_args.train_frames_per_video=3",
        "--data.init_args.val_videos=4",
        "--data.init_args.test_videos=5",
        "--data.init_args.frames_per_video=3",
        "--data.init_args.batch_size=4",
        "--trainer.max_epochs=1",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
    ]


@pytest.fixture(scope="session")
def toy_videos(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """Video-table rows of six small real videos (a real and a fake per split)."""
    from media import write_dataset

    return write_dataset(tmp_path_factory.mktemp("toy_videos"))


@pytest.fixture(scope="session")
def toy_cache(tmp_path_factory: pytest.TempPathFactory, toy_videos: list[dict]):
    """The toy videos preprocessed (6 frames per video) into a frame cache named 'toy'."""
    import pandas as pd

    from src.data.preprocess import PreprocessConfig, preprocess

    cache = tmp_path_factory.mktemp("toy_cache")
    config = PreprocessConfig(frames={"train": 6, "val": 6, "test": 6})
    return preprocess(pd.DataFrame(toy_videos), cache, "toy", config, progress=False), cache, config


@pytest.fixture(scope="session")
def astronaut_face():
    """The bundled astronaut photo's face crop (380 px, RGB) and its 68 dlib landmarks in crop pixels."""
    import cv2
    from skimage import data

    from src.data.faces import FaceDetector, Landmarker, crop_box

    image = data.astronaut()
    face = FaceDetector().detect([image])[0][0]
    landmarks = Landmarker()(image, face.box)
    x0, y0, x1, y1 = crop_box(face.box, 1.3, *image.shape[:2])
    scale = 380 / (x1 - x0)
    crop = cv2.resize(image[y0:y1, x0:x1], (380, 380), interpolation=cv2.INTER_LINEAR)
    return crop, ((landmarks - [x0, y0]) * scale).astype("float32")
