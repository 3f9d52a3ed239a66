"""Probe cases on the data side: each failure names its cause and how to repair it.

A corrupt cached crop, a full disk, a too long video key, unusual files in a
folder to score, unsafe names in dataset files, and options or tables that
cannot work: each ends in one line that says what to do (and, for the cache,
the command that repairs it does). Cases that already worked stay covered:
unusual file names, and memory that does not grow with a video's length.
"""

from __future__ import annotations

import errno
import json
import os
import shlex
import shutil
import tracemalloc
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from media import moving_face, write_video
from test_indexers import make_cdf2, make_dfdc, make_tar

from src.augment.sbi import SBI
from src.cli import main
from src.data.datamodule import DeepfakeDataModule
from src.data.deepfakebench import read_deepfakebench_json
from src.data.folder import FolderDataModule, folder_files
from src.data.indexers import DatasetLayoutError, UnsafePathError, build_video_table
from src.data.preprocess import PreprocessConfig, load_frame_table, preprocess
from src.data.tables import load_video_table
from src.data.video_io import read_frames
from src.errors import DFBenchError

TWO_FRAMES = PreprocessConfig(frames={"train": 2, "val": 2, "test": 2})


def one_error_line(capsys: pytest.CaptureFixture[str], verb: str) -> str:
    """The only line on stderr, without its ``dfbench VERB: `` prefix."""
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"dfbench {verb}: "), line
    return line.removeprefix(f"dfbench {verb}: ")


def preprocess_argv(index: Path, cache: Path) -> list[str]:
    return [
        "preprocess",
        "--index",
        str(index),
        "--cache-dir",
        str(cache),
        "--table",
        "toy",
        "--train-frames",
        "2",
        "--eval-frames",
        "2",
        "--no-progress",
    ]


@pytest.fixture
def test_index(tmp_path: Path, toy_videos: list[dict]) -> Path:
    """An index CSV of the two toy test videos (a real and a fake with its mask)."""
    index = tmp_path / "toy.csv"
    pd.DataFrame([v for v in toy_videos if v["split"] == "test"]).to_csv(index, index=False)
    return index


# ------------------------------------------------------------------ 1. a corrupt cached crop
def test_a_truncated_crop_names_the_command_that_repairs_it(
    tmp_path: Path, test_index: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "cache"
    assert main(preprocess_argv(test_index, cache)) == 0
    before = pd.read_parquet(cache / "tables" / "toy.parquet")
    crop = cache / before["crop_path"].iloc[1]
    whole = crop.read_bytes()
    crop.write_bytes(whole[: len(whole) // 2])

    module = DeepfakeDataModule(cache_dir=str(cache), test=["toy"], batch_size=2)
    module.setup("test")
    ((_, dataset, _),) = module.sets["test"]
    with pytest.raises(DFBenchError) as caught:
        for index in range(len(dataset)):
            dataset[index]
    message = str(caught.value)
    assert str(crop) in message and "\n" not in message
    command = message.split("`")[1]
    argv = shlex.split(command)
    assert argv[:2] == ["dfbench", "preprocess"]
    assert argv[argv.index("--index") + 1] == str(test_index.resolve())
    assert argv[argv.index("--cache-dir") + 1] == str(cache.resolve())
    assert argv[argv.index("--table") + 1] == "toy"

    capsys.readouterr()
    assert main(argv[1:]) == 0
    out = capsys.readouterr().out
    video_key = before["video_key"].iloc[1]
    assert f"{video_key}: redone" in out and crop.name in out
    assert "1 processed" in out and "1 already done" in out
    assert crop.read_bytes() == whole
    after = pd.read_parquet(cache / "tables" / "toy.parquet")
    pd.testing.assert_frame_equal(after.drop(columns="landmarks"), before.drop(columns="landmarks"))
    np.testing.assert_allclose(np.stack(after.landmarks), np.stack(before.landmarks), atol=1e-3)


def test_a_crop_of_another_size_than_recorded_is_redone(tmp_path: Path, toy_videos) -> None:
    videos = pd.DataFrame([v for v in toy_videos if v["split"] == "test"])
    cache = tmp_path / "cache"
    first = preprocess(videos, cache, "toy", TWO_FRAMES, progress=False)
    mask = cache / first.frames.loc[first.frames.label == 1, "crop_mask_path"].iloc[0]
    mask.write_bytes(mask.read_bytes() + b"junk")  # still decodes: only its size tells
    again = preprocess(videos, cache, "toy", TWO_FRAMES, progress=False)
    assert (again.processed, again.skipped) == (1, 1)
    ((key, reason),) = again.redone
    assert key == first.frames.loc[first.frames.label == 1, "video_key"].iloc[0]
    assert mask.name in reason and "recorded" in reason
    assert cv2.imread(str(mask), cv2.IMREAD_GRAYSCALE) is not None
    assert preprocess(videos, cache, "toy", TWO_FRAMES, progress=False).skipped == 2


# ------------------------------------------------------------------ 2. a full disk
def test_a_full_disk_is_one_line_naming_the_file_and_the_space(
    tmp_path: Path, test_index: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    import src.data.worker as worker

    cache = tmp_path / "cache"
    real_write_marker = worker.write_marker

    def full_disk(path, rows, record):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(worker, "write_marker", full_disk)
    assert main(preprocess_argv(test_index, cache)) == 2
    line = one_error_line(capsys, "preprocess")
    assert line.startswith(f"cannot write {cache.resolve() / 'toy'}/") and "frames.parquet" in line
    assert "disk is full" in line and "free" in line and "needed" in line
    assert not list(cache.rglob("frames.parquet"))
    # Nothing half-written is trusted: the next run redoes the video.
    monkeypatch.setattr(worker, "write_marker", real_write_marker)
    assert main(preprocess_argv(test_index, cache)) == 0
    assert "2 processed" in capsys.readouterr().out


# ------------------------------------------------------------------ 3. a too long key
def test_a_300_character_key_gets_a_short_folder_and_keeps_its_key(
    tmp_path: Path, toy_videos
) -> None:
    real = next(v for v in toy_videos if v["split"] == "test" and v["label"] == 0)
    long_a, long_b = "toy/" + "k" * 296 + "a", "toy/" + "k" * 296 + "b"
    copy = tmp_path / "copy.mp4"
    shutil.copy(real["path"], copy)
    videos = pd.DataFrame(
        [real | {"video_key": long_a}, real | {"video_key": long_b, "path": str(copy)}]
    )
    result = preprocess(videos, tmp_path / "cache", "long", TWO_FRAMES, progress=False)
    assert result.failures.empty
    table = load_frame_table(result.table_path)
    assert set(table.video_key) == {long_a, long_b}
    folders = {Path(p).parent for p in table.crop_path}
    assert len(folders) == 2
    for folder in folders:
        assert all(len(part.encode()) <= 255 for part in folder.parts)
    for path in table.crop_path:
        assert cv2.imread(str(tmp_path / "cache" / path)) is not None
    assert preprocess(videos, tmp_path / "cache", "long", TWO_FRAMES, progress=False).skipped == 2


# ------------------------------------------------------------------ 4. unusual files in a folder
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_symlink_loop_and_a_fifo_get_a_skipped_row(tmp_path: Path, toy_videos) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    shutil.copy(toy_videos[0]["path"], folder / "clip.mp4")
    (folder / "loop.mp4").symlink_to(folder / "loop.mp4")
    (folder / "gone.mp4").symlink_to(folder / "nowhere.mp4")
    os.mkfifo(folder / "pipe.mp4")  # opening it would block: it must never be opened
    (folder / "notes.txt").write_text("not a video")
    videos, skipped = folder_files(folder)
    assert list(videos.video_key) == ["files/clip.mp4"]
    reasons = skipped.set_index("path")["reason"].to_dict()
    root = folder.resolve()
    assert set(reasons) == {str(root / n) for n in ("loop.mp4", "gone.mp4", "pipe.mp4")}
    assert "loop" in reasons[str(root / "loop.mp4")]
    assert "points to nothing" in reasons[str(root / "gone.mp4")]
    assert (
        "FIFO" in reasons[str(root / "pipe.mp4")]
        and "not opened" in reasons[str(root / "pipe.mp4")]
    )


# ------------------------------------------------------------------ 5. unsafe names in dataset files
def test_parent_parts_in_list_files_and_json_are_errors_not_rewritten(tmp_path: Path) -> None:
    root = make_cdf2(tmp_path / "Celeb-DF-v2")
    listing = root / "List_of_testing_videos.txt"
    listing.write_text("1 Celeb-real/../Celeb-real/id0_0000.mp4\n")
    with pytest.raises(
        UnsafePathError,
        match=f"^{listing}: line 1: 'Celeb-real/../Celeb-real/id0_0000.mp4' has a '..' part",
    ):
        build_video_table("cdf2", root)
    index = tmp_path / "dfb.json"
    frame = "faces/../faces/000.png"
    index.write_text(
        json.dumps({"ds": {"ds_real": {"test": {"v0": {"label": "ds_real", "frames": [frame]}}}}})
    )
    with pytest.raises(UnsafePathError, match=f"{frame!r} has a '..' part"):
        read_deepfakebench_json(index, data_root=tmp_path)


def test_an_absolute_tar_member_is_an_error_naming_archive_and_member(tmp_path: Path) -> None:
    root = tmp_path / "dfw"
    archive = make_tar(root / "real_test/7.tar.gz", ["7/real/0/000.png", "/7/real/1/000.png"])
    with pytest.raises(
        DatasetLayoutError, match=f"{archive}: member '/7/real/1/000.png' is absolute"
    ):
        build_video_table("dfw", root)


def test_tar_members_under_a_dot_folder_are_read_as_listed(tmp_path: Path) -> None:
    root = tmp_path / "dfw"
    make_tar(root / "real_test/7.tar.gz", ["./7/real/0/000.png", "./7/real/0/001.png"])
    (row,) = build_video_table("dfw", root).to_dict("records")
    assert row["video_key"] == "dfw/real_test/7/real/0"
    frames, wanted = read_frames(row["path"], 2)
    assert sorted(frames) == wanted.tolist() == [0, 1]


# ------------------------------------------------------------------ 6. messages that help
def test_sbi_on_a_table_without_landmarks_names_the_frame_and_the_fix(
    tmp_path: Path, toy_videos
) -> None:
    videos = pd.DataFrame([v for v in toy_videos if v["split"] == "train"])
    cache = tmp_path / "cache"
    result = preprocess(videos, cache, "nolm", TWO_FRAMES, progress=False)
    table = pd.read_parquet(result.table_path)
    table["landmarks"] = None
    table.to_parquet(result.table_path, index=False)
    module = DeepfakeDataModule(
        cache_dir=str(cache), train=["nolm"], batch_size=2, pseudo_fake=SBI(variant="laa")
    )
    with pytest.raises(DFBenchError) as caught:
        module.setup("fit")
    message = str(caught.value)
    first = sorted(table[table.label == 0].crop_path)[0]
    assert "SBI" in message and "landmarks" in message and first in message
    assert f"{len(table[table.label == 0])} of {len(table[table.label == 0])} frames" in message
    assert "dfbench preprocess" in message and "reshape" not in message


def test_a_non_integer_dfdc_part_names_the_option_and_the_type(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_dfdc(tmp_path / "dfdc")
    argv = ["index", "--dataset", "dfdc", "--root", str(root), "--out", str(tmp_path / "x.csv")]
    assert main([*argv, "-o", "val_parts=abc"]) == 2
    line = one_error_line(capsys, "index")
    assert "val_parts" in line and "'abc'" in line and "integer" in line
    assert "invalid literal" not in line


def test_no_test_tables_or_no_test_rows_name_the_setting(tmp_path: Path, toy_cache) -> None:
    result, cache, _ = toy_cache
    with pytest.raises(DFBenchError, match=r"data\.init_args\.test is empty.*give"):
        DeepfakeDataModule(cache_dir=str(cache), test=[]).setup("test")
    train_only = tmp_path / "cache"
    shutil.copytree(cache, train_only)
    table = pd.read_parquet(result.table_path)
    table[table.split == "train"].to_parquet(train_only / "tables" / "train_only.parquet")
    with pytest.raises(
        DFBenchError,
        match=r"data\.init_args\.test: tables \['train_only'\] hold no test frames \(splits found: train\)",
    ):
        DeepfakeDataModule(cache_dir=str(train_only), test=["train_only"]).setup("test")


# ------------------------------------------------------------------ 7. cases that already worked
def test_unicode_and_spaces_pass_through_index_preprocess_and_predict(
    tmp_path: Path, toy_videos
) -> None:
    real = next(v for v in toy_videos if v["split"] == "test" and v["label"] == 0)
    folder = tmp_path / "vidéos à noter"
    folder.mkdir()
    name = "clip ünï côde 视频.mp4"
    shutil.copy(real["path"], folder / name)
    index = folder / "index ü.csv"
    pd.DataFrame([real | {"video_key": f"mine/{name}", "path": name}]).to_csv(index, index=False)
    videos = load_video_table(index)
    assert videos.path.iloc[0] == str(folder.resolve() / name)
    result = preprocess(videos, tmp_path / "cache é", "ü table", TWO_FRAMES, progress=False)
    assert result.failures.empty and set(result.frames.video_key) == {f"mine/{name}"}

    module = FolderDataModule(
        path=str(folder), cache_dir=str(tmp_path / "folder cache"), frames_per_video=2
    )
    module.prepare_data()
    module.setup("predict")
    ((_, dataset, keys),) = module.sets["predict"]
    assert keys == [f"files/{name}"] and len(dataset) == 2
    assert dataset[0]["image"].shape[0] == 3 and module.skipped().empty


def test_a_long_video_needs_no_more_memory_per_sampled_frame_than_a_short_one(
    tmp_path: Path,
) -> None:
    frame = np.zeros((16, 16, 3), np.uint8)
    short = write_video(tmp_path / "short.mp4", [frame] * 40)
    long = write_video(tmp_path / "long.mp4", [frame] * 4000)
    peaks = {}
    for path in (short, long):
        tracemalloc.start()
        frames, wanted = read_frames(str(path), 8)
        peaks[path.name] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert len(frames) == len(wanted) == 8
    assert peaks["long.mp4"] <= 1.5 * peaks["short.mp4"] + 64 * 1024, peaks


def test_the_decoder_keeps_only_the_sampled_frames(tmp_path: Path, monkeypatch) -> None:
    long = write_video(tmp_path / "long.mp4", moving_face(300, 0)[:1] * 300)
    retrieved = []
    real_capture = cv2.VideoCapture

    class CountingCapture:
        def __init__(self, path):
            self.capture = real_capture(path)

        def retrieve(self):
            retrieved.append(1)
            return self.capture.retrieve()

        def __getattr__(self, name):
            return getattr(self.capture, name)

    monkeypatch.setattr(cv2, "VideoCapture", CountingCapture)
    frames, _ = read_frames(str(long), 5)
    assert len(frames) == 5 and len(retrieved) == 5


def test_a_full_disk_while_writing_a_crop_names_the_crop(
    tmp_path: Path, toy_videos, monkeypatch: pytest.MonkeyPatch
) -> None:
    import src.data.worker as worker

    real_write_png = worker.write_png
    calls = []

    def fills_up(path, image, compression):
        calls.append(path)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write_png(path, image, compression)

    monkeypatch.setattr(worker, "write_png", fills_up)
    videos = pd.DataFrame([v for v in toy_videos if v["split"] == "test" and v["label"] == 0])
    with pytest.raises(DFBenchError) as caught:
        preprocess(videos, tmp_path / "cache", "toy", TWO_FRAMES, progress=False)
    message = str(caught.value)
    assert message.startswith(f"cannot write {calls[1]}: the disk is full (")
    assert "needed for this video's crops" in message
    assert not list((tmp_path / "cache").rglob("frames.parquet"))


def test_a_marker_of_version_2_is_checked_once_by_its_png_ends(tmp_path: Path, toy_videos) -> None:
    from src.data.cache import MARKER_VERSION, read_marker, write_with_record

    videos = pd.DataFrame([v for v in toy_videos if v["split"] == "test"])
    cache = tmp_path / "cache"
    first = preprocess(videos, cache, "toy", TWO_FRAMES, progress=False)
    markers = sorted(cache.rglob("frames.parquet"))
    for marker in markers:  # as dfbench wrote them before crop sizes were recorded
        rows, record = read_marker(marker)
        del record["crop_bytes"]
        write_with_record(marker, rows, record | {"version": 2})
    cut = cache / first.frames.crop_path.iloc[0]
    cut.write_bytes(cut.read_bytes()[:-5])
    again = preprocess(videos, cache, "toy", TWO_FRAMES, progress=False)
    assert (again.processed, again.skipped) == (1, 1)
    ((key, why),) = again.redone
    assert key == first.frames.video_key.iloc[0] and "not a complete PNG" in why
    assert {read_marker(m)[1]["version"] for m in markers} == {MARKER_VERSION}
    assert all("crop_bytes" in read_marker(m)[1] for m in markers)


def test_a_damaged_face_of_a_scored_folder_is_redone_by_predicting_again(
    tmp_path: Path, toy_videos
) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    shutil.copy(toy_videos[0]["path"], folder / "clip.mp4")
    module = FolderDataModule(path=str(folder), cache_dir=str(tmp_path / "c"), frames_per_video=2)
    module.prepare_data()
    module.setup("predict")
    crop = tmp_path / "c" / module.sets["predict"][0][1].rows[0]["crop_path"]
    whole = crop.read_bytes()
    crop.write_bytes(whole[:40])
    with pytest.raises(DFBenchError, match="run the same `dfbench predict` again"):
        module.sets["predict"][0][1][0]
    module.prepare_data()
    assert crop.read_bytes() == whole
