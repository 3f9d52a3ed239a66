"""Preprocessing: evenly spaced frames, faces, landmarks, masks, failures, resuming."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest
from media import write_defects

from src.data.preprocess import PreprocessConfig, load_frame_table, preprocess, sample_indices


@pytest.mark.parametrize(("n", "k"), [(12, 6), (300, 32), (31, 32), (1, 5), (100, 1)])
def test_frames_are_evenly_spaced_over_the_whole_video(n: int, k: int) -> None:
    indices = sample_indices(n, k)
    assert len(indices) == min(n, k)
    assert indices[0] == 0 and indices[-1] == (n - 1 if k > 1 else 0)
    if len(indices) > 2:
        gaps = np.diff(indices)
        assert gaps.min() >= 1 and gaps.max() - gaps.min() <= 1
    assert sample_indices(0, 5).size == 0


def test_every_video_gets_faces_landmarks_and_masks(toy_cache) -> None:
    result, cache, _ = toy_cache
    frames = result.frames
    assert result.failures.empty
    assert frames.groupby("video_key").size().to_dict() == {
        key: 6 for key in frames.video_key.unique()
    }
    assert frames.video_key.nunique() == 6
    for key, group in frames.groupby("video_key"):
        assert group.frame_idx.tolist() == sample_indices(12, 6).tolist(), key
    table = load_frame_table(result.table_path)
    for row in table.to_dict("records"):
        crop = cv2.imread(str(cache / row["crop_path"]))
        assert crop is not None and crop.shape[0] == row["crop_y1"] - row["crop_y0"]
        assert row["landmarks"].shape == (68, 2)
        inside = (row["landmarks"] >= 0).all(1) & (row["landmarks"] < crop.shape[1]).all(1)
        assert inside.mean() > 0.9
        # The face box sits inside the crop, which is about crop_scale times larger.
        face_side = max(row["face_x1"] - row["face_x0"], row["face_y1"] - row["face_y0"])
        assert crop.shape[0] <= 1.3 * face_side + 2
        if row["label"] == 1:
            mask = cv2.imread(str(cache / row["crop_mask_path"]), cv2.IMREAD_GRAYSCALE)
            assert mask.shape == crop.shape[:2] and set(np.unique(mask)) <= {0, 255}
            assert 0.05 < (mask > 0).mean() < 0.6
        else:
            assert row["crop_mask_path"] == ""


def test_bad_videos_are_reported_and_the_rest_processed(tmp_path, toy_videos) -> None:
    rows = write_defects(tmp_path / "defects") + toy_videos[:2]
    result = preprocess(
        pd.DataFrame(rows),
        tmp_path / "cache",
        "mixed",
        PreprocessConfig(frames={"train": 3, "test": 3}),
        progress=False,
    )
    reasons = result.failures.groupby("video_key").reason.first().to_dict()
    assert "empty" in reasons["toy/defect/empty"]
    assert "cannot be opened" in reasons["toy/defect/truncated"]
    assert reasons["toy/defect/noface"] == "no face found"
    assert (result.failures.video_key == "toy/defect/noface").sum() == 3
    assert set(result.frames.video_key) == {toy_videos[0]["video_key"], toy_videos[1]["video_key"]}
    saved = pd.read_csv(result.failures_path)
    assert len(saved) == len(result.failures)


def test_interrupted_run_resumes_and_equals_a_clean_run(tmp_path, toy_videos, toy_cache) -> None:
    clean, _, config = toy_cache
    videos = pd.DataFrame(toy_videos)
    cache = tmp_path / "cache"
    partial = preprocess(videos, cache, "toy", config, progress=False, limit=2)
    assert partial.processed == 2 and not partial.table_path.exists()
    # A video killed halfway: crops on disk, no done marker.
    half = toy_videos[4]["video_key"]
    preprocess(videos.iloc[[4]], cache, "half", config, progress=False)
    (cache / half / "frames.parquet").unlink()
    resumed = preprocess(videos, cache, "toy", config, progress=False)
    assert (resumed.processed, resumed.skipped) == (4, 2)
    again = preprocess(videos, cache, "toy", config, progress=False)
    assert (again.processed, again.skipped) == (0, 6)
    pd.testing.assert_frame_equal(
        load_frame_table(resumed.table_path).drop(columns="landmarks"),
        load_frame_table(clean.table_path).drop(columns="landmarks"),
    )
    for a, b in zip(
        load_frame_table(resumed.table_path).landmarks,
        load_frame_table(clean.table_path).landmarks,
        strict=True,
    ):
        assert np.array_equal(a, b)


def test_changed_settings_redo_finished_videos(tmp_path, toy_videos) -> None:
    videos = pd.DataFrame(toy_videos[:1])
    preprocess(videos, tmp_path, "one", PreprocessConfig(frames={"train": 2}), progress=False)
    redo = preprocess(
        videos, tmp_path, "one", PreprocessConfig(frames={"train": 3}), progress=False
    )
    assert redo.processed == 1 and len(redo.frames) == 3


@pytest.mark.slow
def test_killed_preprocess_resumes_to_the_clean_result(tmp_path, toy_videos, toy_cache) -> None:
    """SIGKILL `dfbench preprocess` once a video is done; the re-run redoes only the rest."""
    import os
    import signal
    import subprocess
    import sys
    import time

    clean, _, _ = toy_cache
    index = tmp_path / "toy.csv"
    pd.DataFrame(toy_videos).to_csv(index, index=False)
    cache = tmp_path / "cache"
    command = [
        sys.executable,
        "-m",
        "src.cli",
        "preprocess",
        "--index",
        str(index),
        "--cache-dir",
        str(cache),
        "--train-frames",
        "6",
        "--eval-frames",
        "6",
        "--no-progress",
    ]
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not list(cache.glob("toy/*/*/frames.parquet")) and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished_before = len(list(cache.glob("toy/*/*/frames.parquet")))
    assert 1 <= finished_before < 6, "the kill came too late to test resuming"
    assert not (cache / "tables" / "toy.parquet").exists()

    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    assert f"{6 - finished_before} processed, {finished_before} already done" in out
    resumed = load_frame_table(cache / "tables" / "toy.parquet")
    expected = load_frame_table(clean.table_path)
    pd.testing.assert_frame_equal(
        resumed.drop(columns="landmarks"), expected.drop(columns="landmarks")
    )
