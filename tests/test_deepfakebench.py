"""DeepfakeBench JSON index <-> frame table, on a tiny preprocessed tree."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from src.data.deepfakebench import (
    frame_numbers,
    read_deepfakebench_json,
    to_deepfakebench,
    write_deepfakebench_json,
)
from src.data.indexers import DatasetLayoutError, DatasetLayoutWarning
from src.data.tables import FRAME_COLUMNS, VIDEO_COLUMNS

FF = "FaceForensics++"
REAL_DIR = f"{FF}/original_sequences/youtube/c23"
DF_DIR = f"{FF}/manipulated_sequences/Deepfakes/c23"
F2F_DIR = f"{FF}/manipulated_sequences/Face2Face/c23"


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    return path


def entry(label: str, frames: list[str], masks: list[str] | None = None) -> dict:
    data = {"label": label, "frames": frames}
    if masks is not None:
        data["masks"] = masks
    return data


@pytest.fixture
def rgb(tmp_path: Path) -> Path:
    """A DeepfakeBench-style ``rgb`` folder: frames, masks and some 81-point landmark files."""
    root = tmp_path / "rgb"
    for n in ("000", "010", "020"):
        touch(root / REAL_DIR / "frames/000" / f"{n}.png")
    for folder in (DF_DIR, F2F_DIR):
        for n in ("000", "010"):
            touch(root / folder / "frames/000_003" / f"{n}.png")
            touch(root / folder / "masks/000_003" / f"{n}.png")
    for n in ("000", "010"):  # 020 has no landmark file
        landmarks = np.arange(162, dtype=np.float64).reshape(81, 2) + int(n)
        path = root / REAL_DIR / "landmarks/000" / f"{n}.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, landmarks)
    return root


def ff_index() -> dict:
    def frames(folder: str, video: str, kind: str = "frames", n: int = 2) -> list[str]:
        # Written out of order: the reader sorts by frame number.
        return [f"{folder}/{kind}/{video}/{i:03d}.png" for i in (10, 0, 20)[:n]]

    return {
        FF: {
            "FF-real": {
                "train": {"c23": {"000": entry("FF-real", frames(REAL_DIR, "000", n=3))}},
                "val": {},
                "test": {},
            },
            "FF-DF": {
                "train": {
                    "c23": {
                        "000_003": entry(
                            "FF-DF",
                            frames(DF_DIR, "000_003"),
                            frames(DF_DIR, "000_003", "masks"),
                        )
                    }
                }
            },
            "FF-F2F": {"train": {"c23": {"000_003": entry("FF-F2F", frames(F2F_DIR, "000_003"))}}},
        }
    }


def write(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_read_ffpp_index(tmp_path: Path, rgb: Path) -> None:
    table = read_deepfakebench_json(write(tmp_path / "FF.json", ff_index()), data_root=rgb)
    assert list(table.columns) == list(FRAME_COLUMNS) and len(table) == 3 + 2 + 2
    keys = table.groupby("video_key", sort=False).size().to_dict()
    assert keys == {
        f"dfb/{FF}/FF-real/c23/000": 3,
        f"dfb/{FF}/FF-DF/c23/000_003": 2,
        f"dfb/{FF}/FF-F2F/c23/000_003": 2,
    }
    assert table.groupby("video_key")["label"].first().to_dict() == {
        f"dfb/{FF}/FF-real/c23/000": 0,
        f"dfb/{FF}/FF-DF/c23/000_003": 1,
        f"dfb/{FF}/FF-F2F/c23/000_003": 1,
    }
    assert set(table["dataset"]) == {"ffpp"} and set(table["compression"]) == {"c23"}
    assert set(table["split"]) == {"train"}
    real = table[table["method"] == "FF-real"]
    assert real["frame_idx"].tolist() == [0, 10, 20]
    assert real["crop_path"].tolist() == [
        str(rgb / REAL_DIR / "frames/000" / f"{n}.png") for n in ("000", "010", "020")
    ]
    assert set(real["path"]) == {str(rgb / REAL_DIR / "frames/000")}
    assert (real["crop_mask_path"] == "").all()
    fake = table[table["method"] == "FF-DF"]
    assert fake["crop_mask_path"].tolist() == [
        str(rgb / DF_DIR / "masks/000_003" / f"{n}.png") for n in ("000", "010")
    ]
    first, second, third = real["landmarks"]
    assert first.dtype == np.float32 and first.shape == (136,)
    np.testing.assert_array_equal(first, np.arange(136, dtype=np.float32))
    np.testing.assert_array_equal(second, np.arange(136, dtype=np.float32) + 10)
    assert third is None
    assert table[["crop_x0", "crop_y1", "face_x0", "face_y1", "score"]].isna().all().all()
    without = read_deepfakebench_json(tmp_path / "FF.json", data_root=rgb, landmarks=False)
    assert without["landmarks"].isna().all()


def test_labels_splits_and_frame_numbers(tmp_path: Path) -> None:
    frames = [str(tmp_path / "f" / n) for n in ("frame_b.png", "frame_a.png")]
    index = {
        "Celeb-DF-v2": {
            "CelebDFv2_real": {
                "train": {"id0_0000": entry("CelebDFv2_real", frames[:1])},
                # DeepfakeBench repeats its test videos under val: kept once, in test.
                "val": {"id1_0000": entry("CelebDFv2_real", frames)},
                "test": {"id1_0000": entry("CelebDFv2_real", frames)},
            },
            "CelebDFv2_fake": {"test": {"id1_id0_0000": entry("CelebDFv2_fake", frames)}},
            "OddOnes": {"test": {"x": entry("OddOnes", frames)}},
        }
    }
    path = write(tmp_path / "cdf.json", index)
    with pytest.warns(DatasetLayoutWarning, match="1 videos are listed under several splits"):
        table = read_deepfakebench_json(path, label_map={"OddOnes": 0})
    videos = table.drop_duplicates("video_key").set_index("video_key")
    assert videos["split"].to_dict() == {
        "dfb/Celeb-DF-v2/CelebDFv2_real/id0_0000": "train",
        "dfb/Celeb-DF-v2/CelebDFv2_real/id1_0000": "test",
        "dfb/Celeb-DF-v2/CelebDFv2_fake/id1_id0_0000": "test",
        "dfb/Celeb-DF-v2/OddOnes/x": "test",
    }
    assert videos["label"].to_dict() == {
        "dfb/Celeb-DF-v2/CelebDFv2_fake/id1_id0_0000": 1,
        "dfb/Celeb-DF-v2/CelebDFv2_real/id0_0000": 0,
        "dfb/Celeb-DF-v2/CelebDFv2_real/id1_0000": 0,
        "dfb/Celeb-DF-v2/OddOnes/x": 0,
    }
    assert set(videos["dataset"]) == {"cdf2"}
    assert set(videos["compression"]) == {""}
    # Names that are not numbers: the frames keep their listed order.
    assert table.loc[table["method"] == "CelebDFv2_fake", "frame_idx"].tolist() == [0, 1]
    assert frame_numbers(["7.png", "x.png"]) == [0, 1]
    assert frame_numbers(["0.png", "00.png"]) == [0, 1]
    only = read_deepfakebench_json(path, splits=["train"])
    assert set(only["split"]) == {"train"} and only["video_key"].nunique() == 1


def test_round_trip(tmp_path: Path, rgb: Path) -> None:
    first = read_deepfakebench_json(write(tmp_path / "FF.json", ff_index()), data_root=rgb)
    out = write_deepfakebench_json(first, tmp_path / "out/FF.json", data_root=rgb)
    written = json.loads(out.read_text())
    df = written[FF]["FF-DF"]["train"]["c23"]["000_003"]
    assert df["frames"] == [f"{DF_DIR}/frames/000_003/{n}.png" for n in ("000", "010")]
    assert len(df["masks"]) == 2 and "masks" not in written[FF]["FF-F2F"]["train"]["c23"]["000_003"]
    again = read_deepfakebench_json(out, data_root=rgb)
    pd.testing.assert_frame_equal(again.drop(columns="landmarks"), first.drop(columns="landmarks"))
    for a, b in zip(again["landmarks"], first["landmarks"], strict=True):
        assert (a is None and b is None) or np.array_equal(a, b)


def test_write_a_dfbench_frame_table(tmp_path: Path) -> None:
    videos = [
        ("ffpp/Deepfakes/c23/000_003", 1, "Deepfakes", "c23", "ffpp"),
        ("ffpp/youtube/c23/000", 0, "youtube", "c23", "ffpp"),
        ("cdf2/Celeb-real/id0_0000", 0, "Celeb-real", "", "cdf2"),
        ("dfw/real_test/1/real/0", 0, "real", "", "dfw"),
        ("dfw/real_test/2/real/0", 0, "real", "", "dfw"),
    ]
    rows = []
    for key, label, method, comp, dataset in videos:
        for idx in (0, 5):
            row = dict.fromkeys(FRAME_COLUMNS, np.nan)
            row |= dict(
                zip(
                    VIDEO_COLUMNS[:6],
                    [key, f"/v/{key}", label, "test", dataset, method],
                    strict=True,
                )
            )
            row |= {"compression": comp, "mask_path": "", "source_id": "", "target_id": ""}
            row |= {"frame_idx": idx, "crop_path": f"/cache/{key}/{idx}.png", "crop_mask_path": ""}
            rows.append(row)
    index = to_deepfakebench(pd.DataFrame(rows), data_root="/cache")
    assert set(index) == {FF, "Celeb-DF-v2", "WDF"}
    assert index[FF]["FF-DF"]["test"]["c23"]["000_003"]["frames"] == [
        "ffpp/Deepfakes/c23/000_003/0.png",
        "ffpp/Deepfakes/c23/000_003/5.png",
    ]
    assert list(index[FF]["FF-real"]["test"]["c23"]) == ["000"]
    assert list(index["Celeb-DF-v2"]["CelebDFv2_real"]["test"]) == ["id0_0000"]
    # Two sequences named "0": the longer name keeps them apart.
    assert sorted(index["WDF"]["WDF_real"]["test"]) == ["real_test/1/real/0", "real_test/2/real/0"]
    path = write(tmp_path / "all.json", index)
    back = read_deepfakebench_json(path, data_root="/cache", landmarks=False)
    assert back.groupby("video_key")["label"].first().sum() == 1 and len(back) == 10


def test_errors_name_the_file(tmp_path: Path, rgb: Path) -> None:
    path = write(tmp_path / "FF.json", ff_index())
    with pytest.raises(DatasetLayoutError, match=f"{path}: frame path .* is relative"):
        read_deepfakebench_json(path)
    bad = ff_index()
    bad[FF]["FF-DF"]["holdout"] = bad[FF]["FF-DF"].pop("train")
    with pytest.raises(DatasetLayoutError, match="FF-DF/holdout: unknown split"):
        read_deepfakebench_json(write(path, bad), data_root=rgb)
    bad = ff_index()
    bad[FF]["FF-DF"]["train"]["c23"]["000_003"]["masks"].pop()
    with pytest.raises(DatasetLayoutError, match="1 masks, 2 frames"):
        read_deepfakebench_json(write(path, bad), data_root=rgb)
    missing = tmp_path / "none.json"
    with pytest.raises(DatasetLayoutError, match=f"{missing}: not found; expected a DeepfakeBench"):
        read_deepfakebench_json(missing)


def test_a_dfbench_cache_round_trips(toy_cache, tmp_path: Path) -> None:
    """export -> read back with the cache as data_root: the same frames, labels and splits."""
    from src.data.deepfakebench import export_deepfakebench

    result, cache, _ = toy_cache
    out = export_deepfakebench(cache, "toy", tmp_path / "toy.json")
    written = json.loads(out.read_text())
    assert not any(
        frame.startswith("/")
        for labels in written.values()
        for splits in labels.values()
        for videos in splits.values()
        for entry in videos.values()
        for frame in entry["frames"]
    )
    back = read_deepfakebench_json(out, data_root=cache, landmarks=False)
    original = pd.read_parquet(result.table_path)
    original["crop_path"] = [str(cache / p) for p in original["crop_path"]]
    columns = ["crop_path", "frame_idx", "label", "split"]
    pd.testing.assert_frame_equal(
        back[columns].sort_values("crop_path").reset_index(drop=True),
        original[columns].sort_values("crop_path").reset_index(drop=True),
        check_dtype=False,
    )
    # One video back per video out, with the same frames.
    mapping = dict(zip(back["crop_path"], back["video_key"], strict=True))
    grouped = original.groupby("video_key")["crop_path"].apply(lambda p: {mapping[x] for x in p})
    assert all(len(keys) == 1 for keys in grouped) and len(set().union(*grouped)) == len(grouped)
    with pytest.raises(FileNotFoundError, match="nope.parquet"):
        export_deepfakebench(cache, "nope", tmp_path / "x.json")


def test_frame_paths_stay_inside_data_root(tmp_path: Path, rgb: Path) -> None:
    from src.data.paths import UnsafePathError

    touch(tmp_path / "secret.png")
    for frame in ("../secret.png", str(tmp_path / "secret.png")):
        index = {"Toy": {"Toy_real": {"test": {"v": entry("Toy_real", [frame])}}}}
        path = write(tmp_path / "toy.json", index)
        with pytest.raises(UnsafePathError, match=f"{path}: dfb/Toy/Toy_real/v: .* leads outside"):
            read_deepfakebench_json(path, data_root=rgb)
    index = {
        "Toy": {
            "Toy_real": {"test": {"../../v": entry("Toy_real", [f"{REAL_DIR}/frames/000/000.png"])}}
        }
    }
    with pytest.raises(UnsafePathError, match=r"video key 'dfb/Toy/Toy_real/\.\./\.\./v'"):
        read_deepfakebench_json(write(tmp_path / "toy.json", index), data_root=rgb)


@pytest.mark.parametrize(
    ("video", "problem"),
    [
        ({"label": "Toy_real", "frames": "000.png"}, "frames is str, not a list"),
        ({"label": "Toy_real", "frames": [7]}, "frame path 7 is not a path"),
        (
            {"label": "Toy_real", "frames": ["a.png"], "masks": {"a": 1}},
            "masks is dict, not a list",
        ),
        ({"label": 3, "frames": ["a.png"]}, "label 3 is not a label key"),
    ],
)
def test_bad_entries_are_named(tmp_path: Path, video: dict, problem: str) -> None:
    path = write(tmp_path / "toy.json", {"Toy": {"Toy_real": {"test": {"v": video}}}})
    with pytest.raises(DatasetLayoutError, match=f"dfb/Toy/Toy_real/v: {problem}"):
        read_deepfakebench_json(path, data_root=tmp_path)


def test_unknown_labels_cannot_be_exported() -> None:
    row = dict.fromkeys(FRAME_COLUMNS, np.nan) | {
        "video_key": "files/a.mp4",
        "path": "/a.mp4",
        "label": -1,
        "split": "test",
        "dataset": "files",
        "method": "video",
        "compression": "",
        "mask_path": "",
        "source_id": "",
        "target_id": "",
        "frame_idx": 0,
        "crop_path": "files/a.mp4/000000.png",
        "crop_mask_path": "",
    }
    with pytest.raises(ValueError, match="files/a.mp4 has an unknown label"):
        to_deepfakebench(pd.DataFrame([row]))


def test_export_verb_round_trips_through_the_json(
    toy_cache, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """dfbench export-deepfakebench -> JSON -> table: the cache's frames, labels and splits."""
    from src.cli import main

    result, cache, _ = toy_cache
    out = tmp_path / "json" / "toy.json"
    args = ["--cache-dir", str(cache), "--table", "toy", "--out", str(out)]
    renamed = ["--dataset-name", "Toy", "--label-key", "Swap=Toy_Swap"]
    assert main(["export-deepfakebench", *args, *renamed]) == 0
    original = pd.read_parquet(result.table_path)
    per_split = original.groupby("split").agg(v=("video_key", "nunique"), f=("crop_path", "size"))
    expected = ", ".join(f"{s} {r.v} videos / {r.f} frames" for s, r in per_split.iterrows())
    assert capsys.readouterr().out.splitlines()[0] == f"{out}: {expected}"

    written = json.loads(out.read_text())
    assert set(written) == {"Toy"} and set(written["Toy"]) == {"toy_real", "Toy_Swap"}
    back = read_deepfakebench_json(out, data_root=cache, landmarks=False)
    assert set(back["method"]) == {"toy_real", "Toy_Swap"}
    assert (back["label"] == (back["method"] == "Toy_Swap")).all()
    original["crop_path"] = [str(cache / p) for p in original["crop_path"]]
    columns = ["crop_path", "crop_mask_path", "frame_idx", "label", "split"]
    original["crop_mask_path"] = [str(cache / p) if p else "" for p in original["crop_mask_path"]]
    pd.testing.assert_frame_equal(
        back[columns].sort_values("crop_path").reset_index(drop=True),
        original[columns].sort_values("crop_path").reset_index(drop=True),
        check_dtype=False,
    )


def test_export_verb_errors_name_what_is_wrong(toy_cache, tmp_path: Path) -> None:
    from src.cli import UsageError
    from src.cli.export_deepfakebench import run
    from src.data.paths import UnsafePathError
    from src.data.tables import TableError

    _, cache, _ = toy_cache
    out = str(tmp_path / "x.json")
    with pytest.raises(FileNotFoundError, match=f"frame cache not found: {tmp_path / 'none'}"):
        run(["--cache-dir", str(tmp_path / "none"), "--table", "toy", "--out", out])
    with pytest.raises(FileNotFoundError, match="frame table not found: .*nope.parquet"):
        run(["--cache-dir", str(cache), "--table", "nope", "--out", out])
    with pytest.raises(UnsafePathError, match="table name '../toy' contains a path separator"):
        run(["--cache-dir", str(cache), "--table", "../toy", "--out", out])
    with pytest.raises(UsageError, match=f"--out: {tmp_path} is a folder"):
        run(["--cache-dir", str(cache), "--table", "toy", "--out", str(tmp_path)])
    broken = tmp_path / "broken"
    (broken / "tables").mkdir(parents=True)
    (broken / "tables" / "toy.parquet").write_bytes(b"not parquet")
    with pytest.raises(TableError, match="toy.parquet: not a readable frame table"):
        run(["--cache-dir", str(broken), "--table", "toy", "--out", out])
    assert not Path(out).exists()
