"""The frame cache never serves a stale video: source, mask, settings and index row are compared."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from media import fake_of, moving_face, write_video

import src.data.worker as worker_module
from src.data.cache import MARKER, read_marker
from src.data.preprocess import PreprocessConfig, preprocess

CONFIG = PreprocessConfig(frames={"train": 2, "val": 2, "test": 2})


def one_video(tmp_path: Path, toy_videos: list[dict], index: int = 0) -> dict:
    """A private copy of a toy video (so a test may change it) as a video-table row."""
    source = Path(toy_videos[index]["path"])
    copy = tmp_path / "videos" / source.name
    copy.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, copy)
    return dict(toy_videos[index], path=str(copy), video_key="toy/one/clip")


def run(row: dict, cache: Path, config: PreprocessConfig = CONFIG, **kwargs):
    return preprocess(pd.DataFrame([row]), cache, "one", config, progress=False, **kwargs)


def counts(result) -> tuple[int, int, int]:
    return result.processed, result.skipped, result.updated


def crops(cache: Path, result) -> list[np.ndarray]:
    return [cv2.imread(str(cache / p)) for p in result.frames["crop_path"]]


class NoDetector:
    """Stands in for MTCNN where a test proves that no face is detected again."""

    def __init__(self, *args, **kwargs) -> None:
        raise AssertionError("faces were detected again")


@pytest.fixture(scope="module")
def cached_one(tmp_path_factory: pytest.TempPathFactory, toy_videos) -> tuple[dict, Path, object]:
    """One toy video preprocessed once; tests copy its cache before changing anything."""
    tmp_path = tmp_path_factory.mktemp("cached_one")
    row = one_video(tmp_path, toy_videos)
    return row, tmp_path / "cache", run(row, tmp_path / "cache")


def test_an_unchanged_video_is_reused(tmp_path, cached_one) -> None:
    row, original, first = cached_one
    assert counts(first) == (1, 0, 0) and len(first.frames) == 2
    cache = Path(shutil.copytree(original, tmp_path / "cache"))
    again = run(row, cache)
    assert counts(again) == (0, 1, 0)
    pd.testing.assert_frame_equal(
        again.frames.drop(columns="landmarks"), first.frames.drop(columns="landmarks")
    )


@pytest.mark.parametrize(
    "change",
    [
        {"split": "val"},
        {"label": 1},
        {"method": "Renamed"},
        {"source_id": "007", "target_id": "003"},
        {"dataset": "other"},
    ],
    ids=["split", "label", "method", "ids", "dataset"],
)
def test_an_index_only_change_rewrites_rows_without_detecting_faces(
    tmp_path, cached_one, monkeypatch: pytest.MonkeyPatch, change: dict
) -> None:
    row, original, first = cached_one
    cache = Path(shutil.copytree(original, tmp_path / "cache"))
    stamps = [(cache / p).stat().st_mtime_ns for p in first.frames["crop_path"]]
    monkeypatch.setattr(worker_module, "FaceDetector", NoDetector)
    moved = run(row | change, cache)
    assert counts(moved) == (0, 0, 1)
    for column, value in change.items():
        assert (moved.frames[column] == value).all(), column
    # The crops were not rewritten, and the table and the marker both carry the new row.
    assert [(cache / p).stat().st_mtime_ns for p in moved.frames["crop_path"]] == stamps
    rows, record = read_marker(cache / row["video_key"] / MARKER)
    assert all((rows[column] == value).all() for column, value in change.items())
    assert all(record["index"][column] == value for column, value in change.items())
    table = pd.read_parquet(moved.table_path)
    assert all((table[column] == value).all() for column, value in change.items())
    # Asked again with the new row, the video is simply fresh; with the old one, re-indexed back.
    assert counts(run(row | change, cache)) == (0, 1, 0)
    assert counts(run(row, cache)) == (0, 0, 1)


def test_a_split_whose_frame_count_differs_redoes_the_video(tmp_path, toy_videos) -> None:
    row = one_video(tmp_path, toy_videos)
    config = PreprocessConfig(frames={"train": 2, "val": 3})
    run(row, tmp_path / "cache", config)
    moved = run(row | {"split": "val"}, tmp_path / "cache", config)
    assert counts(moved) == (1, 0, 0) and len(moved.frames) == 3


def test_changed_source_content_redoes_the_video(tmp_path, toy_videos) -> None:
    row = one_video(tmp_path, toy_videos)
    cache = tmp_path / "cache"
    before = crops(cache, run(row, cache))
    shutil.copy(toy_videos[2]["path"], row["path"])  # another video under the same path
    after = run(row, cache)
    assert counts(after) == (1, 0, 0)
    assert any(
        a.shape != b.shape or not np.array_equal(a, b)
        for a, b in zip(before, crops(cache, after), strict=True)
    )


def test_a_touched_source_is_redone_by_time_but_not_by_content(tmp_path, toy_videos) -> None:
    row = one_video(tmp_path, toy_videos)
    cache = tmp_path / "cache"
    run(row, cache, content_hash=True)
    info = os.stat(row["path"])
    os.utime(row["path"], ns=(info.st_atime_ns, info.st_mtime_ns + 10**9))
    assert counts(run(row, cache, content_hash=True)) == (0, 1, 0)
    assert counts(run(row, cache)) == (1, 0, 0)  # size + mtime: the new time is a change


def test_same_size_and_time_but_new_content_is_caught_by_the_content_hash(tmp_path) -> None:
    """Two BMPs of one size: only the content hash tells them apart."""
    image = tmp_path / "face.bmp"
    frame = moving_face(1, 3)[0]
    cv2.imwrite(str(image), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    row = {
        "video_key": "files/face.bmp",
        "path": str(image),
        "label": -1,
        "split": "test",
        "dataset": "files",
        "method": "image",
    }
    by_time, by_content = tmp_path / "by_time", tmp_path / "by_content"
    first = run(row, by_time)
    run(row, by_content, content_hash=True)
    info = os.stat(image)
    cv2.imwrite(str(image), cv2.cvtColor(np.fliplr(frame).copy(), cv2.COLOR_RGB2BGR))
    os.utime(image, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert os.stat(image).st_size == info.st_size
    assert counts(run(row, by_time)) == (0, 1, 0)  # size + mtime cannot see it
    second = run(row, by_content, content_hash=True)
    assert counts(second) == (1, 0, 0)
    assert first.frames["crop_x0"].iloc[0] != second.frames["crop_x0"].iloc[0]


def test_changed_settings_redo_the_video(tmp_path, toy_videos) -> None:
    row = one_video(tmp_path, toy_videos)
    cache = tmp_path / "cache"
    first = run(row, cache)
    wider = run(row, cache, PreprocessConfig(frames={"train": 2}, crop_scale=1.6))
    assert counts(wider) == (1, 0, 0)
    assert (wider.frames["crop_x1"] - wider.frames["crop_x0"]).mean() > (
        first.frames["crop_x1"] - first.frames["crop_x0"]
    ).mean()
    # PNG compression changes no pixel: nothing to redo.
    same = run(row, cache, PreprocessConfig(frames={"train": 2}, crop_scale=1.6, png_compression=6))
    assert counts(same) == (0, 1, 0)


def test_an_added_or_changed_mask_redoes_the_video(tmp_path, toy_videos) -> None:
    fake = one_video(tmp_path, toy_videos, index=1)
    mask = fake.pop("mask_path")
    cache = tmp_path / "cache"
    first = run(fake | {"mask_path": ""}, cache)
    assert (first.frames["crop_mask_path"] == "").all()
    with_mask = run(fake | {"mask_path": mask}, cache)
    assert counts(with_mask) == (1, 0, 0) and (with_mask.frames["crop_mask_path"] != "").all()
    copy = tmp_path / "videos" / "mask.mp4"
    _, masks = fake_of(moving_face(12, 5))
    write_video(copy, masks)
    assert counts(run(fake | {"mask_path": str(copy)}, cache)) == (1, 0, 0)


def test_a_vanished_source_is_a_failure_and_keeps_the_cache(tmp_path, toy_videos) -> None:
    row = one_video(tmp_path, toy_videos)
    cache = tmp_path / "cache"
    run(row, cache)
    hidden = Path(row["path"]).rename(tmp_path / "hidden.mp4")
    gone = run(row, cache)
    assert counts(gone) == (1, 0, 0) and gone.frames.empty
    assert gone.failures["reason"].tolist() == ["file not found"]
    hidden.rename(row["path"])
    # The marker was left alone: with the file back, nothing is redone.
    assert counts(run(row, cache)) == (0, 1, 0)


def test_a_marker_without_a_record_is_redone(tmp_path, toy_videos) -> None:
    row = one_video(tmp_path, toy_videos)
    cache = tmp_path / "cache"
    first = run(row, cache)
    marker = cache / row["video_key"] / MARKER
    first.frames.to_parquet(marker, index=False)  # what an older dfbench wrote
    assert read_marker(marker) is None
    assert counts(run(row, cache)) == (1, 0, 0)


def test_crops_reach_the_disk_before_the_marker(
    tmp_path, toy_videos, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, object]] = []
    sync_files, sync_dir, marker = (
        worker_module.fsync_files,
        worker_module.fsync_directory,
        worker_module.write_marker,
    )

    def fsync_files(paths):
        paths = list(paths)
        calls.append(("files", sorted(p.name for p in paths)))
        sync_files(paths)

    def fsync_directory(path):
        calls.append(("dir", Path(path).name))
        sync_dir(path)

    def write_marker(path, rows, record):
        calls.append(("marker", Path(path).name))
        return marker(path, rows, record)

    monkeypatch.setattr(worker_module, "fsync_files", fsync_files)
    monkeypatch.setattr(worker_module, "fsync_directory", fsync_directory)
    monkeypatch.setattr(worker_module, "write_marker", write_marker)
    row = one_video(tmp_path, toy_videos)
    result = run(row, tmp_path / "cache")
    assert calls == [
        ("files", sorted(Path(p).name for p in result.frames["crop_path"])),
        ("dir", "clip"),
        ("marker", MARKER),
    ]


def test_stale_crops_of_an_earlier_run_are_removed(tmp_path, toy_videos) -> None:
    row = one_video(tmp_path, toy_videos)
    cache = tmp_path / "cache"
    run(row, cache, PreprocessConfig(frames={"train": 4}))
    folder = cache / row["video_key"]
    (folder / ".000000.png.abc.tmp").write_bytes(b"half")  # an interrupted write
    fewer = run(row, cache)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [MARKER, *(Path(p).name for p in fewer.frames["crop_path"])]
    )
