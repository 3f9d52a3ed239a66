"""dfbench predict on a plain folder of the user's videos and images."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from conftest import TINY_SIZE
from media import moving_face, write_defects

from src.cli import main
from src.data.folder import FolderDataModule, folder_files, scan_folder

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
    (out,) = tmp_path.glob("runs/xception*/folder/untrained/predict-*")
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
    # What got no score, and why: the table predict writes beside the scores.
    module = FolderDataModule(path=str(folder), cache_dir=str(tmp_path / "cache"))
    skipped = module.skipped().set_index("path")["reason"].to_dict()
    bad = folder.resolve() / "bad"
    assert skipped == {
        str(bad / "empty.mp4"): "file is empty (0 bytes)",
        str(bad / "noface.mp4"): "no face found (4 frames)",
        str(
            bad / "truncated.mp4"
        ): "cannot be opened as a video (truncated, corrupt or not a video)",
    }


def test_a_file_whose_content_changes_is_scored_anew(tmp_path) -> None:
    """Same path, size and time, new pixels: the content hash catches it; the file's time would not."""
    folder = tmp_path / "mine"
    folder.mkdir()
    image = folder / "face.bmp"
    face = moving_face(1, 3)[0]
    cv2.imwrite(str(image), cv2.cvtColor(face, cv2.COLOR_RGB2BGR))
    by_content = FolderDataModule(str(folder), str(tmp_path / "a"), input_size=TINY_SIZE)
    by_time = FolderDataModule(
        str(folder), str(tmp_path / "b"), input_size=TINY_SIZE, content_hash=False
    )

    def first_crop(module: FolderDataModule):
        module.prepare_data()
        module.setup("predict")
        return module.sets["predict"][0][1].rows[0]["crop_x0"]

    before = first_crop(by_content), first_crop(by_time)
    info = os.stat(image)
    cv2.imwrite(str(image), cv2.cvtColor(np.fliplr(face).copy(), cv2.COLOR_RGB2BGR))
    os.utime(image, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert first_crop(by_content) != before[0]
    assert first_crop(by_time) == before[1]


def test_names_that_cannot_be_keys_are_skipped_with_a_reason(tmp_path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "a\\b.mp4").write_bytes(b"")
    (folder / "ok.mp4").write_bytes(b"")
    videos, skipped = folder_files(folder)
    assert videos["video_key"].tolist() == ["files/ok.mp4"]
    assert skipped.to_dict("records") == [
        {
            "path": str(folder.resolve() / "a\\b.mp4"),
            "reason": "its name cannot be a cache key: contains a backslash (parts are separated by '/')",
        }
    ]


def test_missing_or_empty_folder_is_explained(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="folder to score not found"):
        scan_folder(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no videos"):
        scan_folder(tmp_path / "empty")
