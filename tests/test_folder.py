"""dfbench predict on a plain folder of the user's videos and images."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import pandas as pd
import pytest
from conftest import TINY_SIZE
from media import moving_face, write_defects

from src.cli import main
from src.data.folder import scan_folder

ROOT = Path(__file__).resolve().parents[1]


def test_predict_scores_every_file_of_a_folder(
    tmp_path, monkeypatch: pytest.MonkeyPatch, toy_videos
) -> None:
    folder = tmp_path / "mine"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(toy_videos[0]["path"], folder / "clip.mp4")
    shutil.copy(toy_videos[1]["path"], folder / "sub" / "other.mp4")
    cv2.imwrite(str(folder / "photo.jpg"), cv2.cvtColor(moving_face(1, 5)[0], cv2.COLOR_RGB2BGR))
    write_defects(folder / "bad")  # good.mp4 plus three unreadable or face-less files
    (folder / "notes.txt").write_text("not a video")
    assert len(scan_folder(folder)) == 7

    monkeypatch.chdir(tmp_path)
    args = [
        "predict",
        "-c",
        str(ROOT / "configs/detectors/xception.yaml"),
        "-c",
        str(ROOT / "configs/data/folder.yaml"),
        "-c",
        str(ROOT / "configs/profiles/demo.yaml"),
        f"--model.init_args.input_size={TINY_SIZE}",
        f"--data.init_args.path={folder}",
        f"--data.init_args.cache_dir={tmp_path / 'cache'}",
        "--data.init_args.frames_per_video=4",
        "--trainer.enable_progress_bar=false",
        "--allow_untrained=true",
    ]
    assert main(args) == 0
    (out,) = tmp_path.glob("runs/xception/folder/untrained/predict-*")
    videos = pd.read_csv(out / "videos.csv")
    frames = pd.read_csv(out / "frames.csv")
    assert set(videos.video_key) == {
        "files/clip.mp4",
        "files/sub/other.mp4",
        "files/photo.jpg",
        "files/bad/good.mp4",
    }
    assert videos.set_index("video_key").n_frames.to_dict() == {
        "files/clip.mp4": 4,
        "files/sub/other.mp4": 4,
        "files/photo.jpg": 1,
        "files/bad/good.mp4": 4,
    }
    assert videos.label.isna().all() and videos.score.between(0, 1).all()
    assert set(videos.source_path) == {
        str(folder.resolve() / key.removeprefix("files/")) for key in videos.video_key
    }
    assert len(frames) == 13
    failures = pd.read_csv(tmp_path / "cache" / "tables" / "files_failures.csv")
    assert {"files/bad/empty.mp4", "files/bad/truncated.mp4", "files/bad/noface.mp4"} == set(
        failures.video_key
    )


def test_missing_or_empty_folder_is_explained(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="folder to score not found"):
        scan_folder(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no videos"):
        scan_folder(tmp_path / "empty")
