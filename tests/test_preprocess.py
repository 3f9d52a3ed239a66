"""Preprocessing: evenly spaced frames, faces, landmarks, masks, failures, resuming."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from media import SIZE, fake_of, moving_face, write_defects, write_video

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


def test_a_cache_given_relative_to_the_working_directory_keeps_its_faces(
    tmp_path, toy_videos, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = preprocess(
        pd.DataFrame(toy_videos[:1]),
        "cache",
        "one",
        PreprocessConfig(frames={"train": 2}),
        progress=False,
    )
    assert result.processed == 1 and len(result.frames) == 2
    assert all((tmp_path / "cache" / path).is_file() for path in result.frames["crop_path"])


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
    assert f"{6 - finished_before} processed, 0 re-indexed, {finished_before} already done" in out
    resumed = load_frame_table(cache / "tables" / "toy.parquet")
    expected = load_frame_table(clean.table_path)
    pd.testing.assert_frame_equal(
        resumed.drop(columns="landmarks"), expected.drop(columns="landmarks")
    )


# ------------------------------------------------------------------ bad input, one row each
def image_row(path: Path, key: str) -> dict:
    return {
        "video_key": key,
        "path": str(path),
        "label": 0,
        "split": "test",
        "dataset": "toy",
        "method": "image",
    }


def write_image(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path


def test_degenerate_images_are_failure_rows_and_the_run_goes_on(tmp_path) -> None:
    face = moving_face(1, 7)[0]
    rows = [
        image_row(
            write_image(tmp_path / "thin.png", np.full((8, 4000, 3), 90, np.uint8)), "t/thin"
        ),
        image_row(write_image(tmp_path / "dot.png", np.full((1, 1, 3), 90, np.uint8)), "t/dot"),
        image_row(write_image(tmp_path / "face.png", face), "t/face"),
    ]
    sequence = tmp_path / "sequence"
    write_image(sequence / "000.png", face)
    write_image(sequence / "001.png", np.full((1, 1, 3), 90, np.uint8))
    rows.append(image_row(sequence, "t/sequence"))
    result = preprocess(pd.DataFrame(rows), tmp_path / "cache", "bad", progress=False)
    reasons = {(r.video_key, r.frame_idx): r.reason for r in result.failures.itertuples()}
    assert reasons == {
        ("t/thin", 0): "image too small for face detection (4000 x 8 px; "
        "the shorter side must be at least 12 px)",
        ("t/dot", 0): "image too small for face detection (1 x 1 px; "
        "the shorter side must be at least 12 px)",
        ("t/sequence", 1): "image too small for face detection (1 x 1 px; "
        "the shorter side must be at least 12 px)",
    }
    assert result.frames.groupby("video_key").size().to_dict() == {"t/face": 1, "t/sequence": 1}


def test_the_detector_skips_frames_it_cannot_take() -> None:
    from src.data.faces import FaceDetector

    face = moving_face(1, 7)[0]
    found = FaceDetector().detect(
        [np.zeros((8, 4000, 3), np.uint8), np.zeros((1, 1, 3), np.uint8), face]
    )
    assert found[0] == [] and found[1] == [] and len(found[2]) == 1


def test_sequence_frames_of_different_sizes_get_their_own_boxes(tmp_path) -> None:
    """Each frame is scaled by its own factor: a face twice as large gets a box twice as large."""
    face = moving_face(1, 7)[0]
    sequence = tmp_path / "sequence"
    write_image(sequence / "000.png", face)
    write_image(sequence / "001.png", cv2.resize(face, (2 * SIZE, 2 * SIZE)))
    result = preprocess(
        pd.DataFrame([image_row(sequence, "t/mixed")]), tmp_path / "cache", "mixed", progress=False
    )
    small, large = result.frames.sort_values("frame_idx").itertuples()
    for edge in ("face_x0", "face_y0", "face_x1", "face_y1"):
        assert getattr(large, edge) == pytest.approx(2 * getattr(small, edge), rel=0.08, abs=3)
    assert (large.crop_x1, large.crop_y1) == (2 * SIZE, 2 * SIZE)


class Poisoned:
    """MTCNN that fails on any batch holding a 200-pixel frame (the 'bad frame')."""

    def __init__(self, real) -> None:
        self.real = real

    def problem(self, frame):
        return self.real.problem(frame)

    def detect(self, frames):
        if any(frame.shape[0] == 200 for frame in frames):
            raise RuntimeError("torch.cat(): expected a non-empty list of Tensors")
        return self.real.detect(frames)


def test_a_frame_that_breaks_detection_costs_only_that_frame(tmp_path) -> None:
    from src.data.worker import VideoPreprocessor

    face = moving_face(1, 7)[0]
    sequence = tmp_path / "sequence"
    for name, size in (("000", SIZE), ("001", 200), ("002", SIZE)):
        write_image(sequence / f"{name}.png", cv2.resize(face, (size, size)))
    worker = VideoPreprocessor(tmp_path / "cache", PreprocessConfig())
    worker.detector = Poisoned(worker.detector)
    video = image_row(sequence, "t/poisoned") | {"compression": "", "mask_path": ""}
    video |= {"source_id": "", "target_id": ""}
    rows, failures = worker(video)
    assert rows["frame_idx"].tolist() == [0, 2]
    assert failures == [
        {
            "video_key": "t/poisoned",
            "frame_idx": 1,
            "path": str(sequence),
            "reason": "face detection failed (RuntimeError: torch.cat(): expected a non-empty "
            "list of Tensors)",
        }
    ]


def test_missing_short_or_mismatched_masks_are_failure_rows(tmp_path, toy_videos) -> None:
    fake = toy_videos[1]  # 12 frames with a mask video; frames 0 and 11 are sampled
    short = write_video(tmp_path / "short.mp4", fake_of(moving_face(4, 1))[1])
    small = write_video(
        tmp_path / "small.mp4", [m[::2, ::2] for m in fake_of(moving_face(12, 1))[1]]
    )
    rows = [
        fake | {"video_key": "toy/m/missing", "mask_path": str(tmp_path / "nowhere.mp4")},
        fake | {"video_key": "toy/m/short", "mask_path": str(short)},
        fake | {"video_key": "toy/m/small", "mask_path": str(small)},
    ]
    # Three rows on one source are refused (aliases); copies keep them apart.
    for row in rows:
        copy = tmp_path / (row["video_key"].replace("/", "_") + ".mp4")
        copy.write_bytes(Path(fake["path"]).read_bytes())
        row["path"] = str(copy)
    result = preprocess(
        pd.DataFrame(rows),
        tmp_path / "cache",
        "masks",
        PreprocessConfig(frames={"train": 2}),
        progress=False,
    )
    failures = {
        (r.video_key, r.frame_idx): (r.path, r.reason) for r in result.failures.itertuples()
    }
    kept = "face kept without a mask"
    assert failures == {
        ("toy/m/missing", 0): (rows[0]["mask_path"], f"mask video not found; {kept}"),
        ("toy/m/missing", 11): (rows[0]["mask_path"], f"mask video not found; {kept}"),
        ("toy/m/short", 11): (
            str(short),
            f"mask video has no frame 11 (shorter than the video?); {kept}",
        ),
        ("toy/m/small", 0): (
            str(small),
            f"mask frame is 96 x 96 px, the video frame 192 x 192 px; {kept}",
        ),
        ("toy/m/small", 11): (
            str(small),
            f"mask frame is 96 x 96 px, the video frame 192 x 192 px; {kept}",
        ),
    }
    has_mask = result.frames.set_index(["video_key", "frame_idx"])["crop_mask_path"] != ""
    assert has_mask.to_dict() == {
        ("toy/m/missing", 0): False,
        ("toy/m/missing", 11): False,
        ("toy/m/short", 0): True,
        ("toy/m/short", 11): False,
        ("toy/m/small", 0): False,
        ("toy/m/small", 11): False,
    }


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"frames": {"val": 0}}, "frames['val'] must be an integer >= 1, got 0"),
        ({"frames": {"test": -3}}, "frames['test'] must be an integer >= 1, got -3"),
        ({"frames": {"test": "abc"}}, "frames['test'] must be an integer >= 1, got 'abc'"),
        ({"frames": {"holdout": 3}}, "frames names the unknown split 'holdout'"),
        ({"crop_scale": 0}, "crop_scale must be a number > 0, got 0"),
        ({"crop_scale": float("nan")}, "crop_scale must be a number > 0, got nan"),
        ({"detect_size": 0}, "detect_size must be an integer >= 12, got 0"),
        ({"min_face_fraction": 1.5}, "min_face_fraction must be a number in (0, 1], got 1.5"),
        ({"threshold": -0.1}, "threshold must be a number in [0, 1], got -0.1"),
        ({"mask_threshold": 0}, "mask_threshold must be an integer in [1, 255], got 0"),
        ({"png_compression": 10}, "png_compression must be an integer in [0, 9], got 10"),
        ({"keep_all_faces": "yes"}, "keep_all_faces must be true or false, got 'yes'"),
    ],
)
def test_settings_are_checked_with_one_line_messages(settings: dict, message: str) -> None:
    with pytest.raises(ValueError) as error:
        PreprocessConfig(**settings)
    assert str(error.value).startswith(f"preprocess setting {message}")
    assert "\n" not in str(error.value)


def test_table_names_and_keys_cannot_leave_the_cache(tmp_path, toy_videos) -> None:
    from src.data.paths import UnsafePathError

    cache = tmp_path / "deep" / "cache"
    videos = pd.DataFrame(toy_videos[:1])
    for name in ("../../x", "/tmp/x", "a/b", ".hidden"):
        with pytest.raises(UnsafePathError, match="frame table name"):
            preprocess(videos, cache, name, progress=False)
    escaping = videos.assign(video_key="../../outside")
    with pytest.raises(UnsafePathError, match=r"row 1: video key '\.\./\.\./outside' has an empty"):
        preprocess(escaping, cache, "x", progress=False)
    assert not (tmp_path / "outside").exists() and not cache.exists()
