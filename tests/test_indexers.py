"""Dataset indexers on tiny trees laid out as each dataset ships (empty files as videos)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from src.cli import main
from src.data.indexers import (
    DatasetLayoutError,
    DatasetLayoutWarning,
    build_video_table,
    list_indexers,
)
from src.data.tables import VIDEO_COLUMNS

CLASSIC = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures")
FFPP_SPLITS = {
    "train": [["000", "003"], ["001", "002"]],
    "val": [["004", "005"]],
    "test": [["006", "007"]],
}


def touch(path: Path, data: bytes = b"") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def put_videos(folder: Path, names: list[str], nested: bool) -> None:
    """Empty ``<name>.mp4`` files in ``folder`` or, for the variant, in ``folder/videos``."""
    for name in names:
        touch((folder / "videos" if nested else folder) / f"{name}.mp4")


def by_key(table: pd.DataFrame) -> dict[str, dict]:
    return {row["video_key"]: row for row in table.to_dict("records")}


def counts(table: pd.DataFrame) -> dict[str, tuple[int, int]]:
    """split -> (reals, fakes)."""
    grouped = table.groupby("split")["label"]
    return {split: (int((s == 0).sum()), int(s.sum())) for split, s in grouped}


def assert_absolute(table: pd.DataFrame) -> None:
    assert list(table.columns[: len(VIDEO_COLUMNS)]) == list(VIDEO_COLUMNS)
    for path in table["path"]:
        assert Path(path.split("::")[0]).is_absolute()


# ------------------------------------------------------------------ registry
def test_registry_lists_every_dataset() -> None:
    assert list_indexers() == sorted(["ffpp", "cdf2", "dfd", "dfdc", "dfdcp", "dfw", "df1"])
    with pytest.raises(KeyError, match="no dataset indexer named 'nope'"):
        build_video_table("nope", ".")


def test_unknown_option_and_missing_root(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="has no option colour.*val_fraction"):
        build_video_table("cdf2", tmp_path, colour="red")
    missing = tmp_path / "no_such_dataset"
    with pytest.raises(DatasetLayoutError, match=f"{missing}: not found; expected the cdf2"):
        build_video_table("cdf2", missing)


# ------------------------------------------------------------------ FF++
def make_ffpp(
    root: Path,
    nested: bool = True,
    levels: tuple[str, ...] = ("c23",),
    methods: tuple[str, ...] = CLASSIC,
    splits_dir: Path | None = None,
) -> Path:
    ids = sorted({i for pairs in FFPP_SPLITS.values() for pair in pairs for i in pair})
    fakes = [f"{a}_{b}" for p in FFPP_SPLITS.values() for x, y in p for a, b in ((x, y), (y, x))]
    for level in levels:
        put_videos(root / "original_sequences/youtube" / level, ids, nested)
        for method in methods:
            put_videos(root / "manipulated_sequences" / method / level, fakes, nested)
    for method in set(methods) - {"FaceShifter"}:
        put_videos(root / "manipulated_sequences" / method / "masks", fakes, nested)
    for split, pairs in FFPP_SPLITS.items():
        touch((splits_dir or root) / f"{split}.json", json.dumps(pairs).encode())
    return root


@pytest.mark.parametrize("nested", [True, False], ids=["videos-level", "flat"])
def test_ffpp_pairs_expand_to_reals_and_fakes(tmp_path: Path, nested: bool) -> None:
    root = make_ffpp(tmp_path / "FaceForensics++", nested)
    table = build_video_table("ffpp", root)
    assert len(table) == 40
    assert counts(table) == {"train": (4, 16), "val": (2, 8), "test": (2, 8)}
    assert set(table["compression"]) == {"c23"} and set(table["dataset"]) == {"ffpp"}
    for method in CLASSIC:
        train = table[(table["method"] == method) & (table["split"] == "train")]
        assert sorted(train["target_id"] + "_" + train["source_id"]) == sorted(
            ["000_003", "003_000", "001_002", "002_001"]
        )
    rows = by_key(table)
    videos = "videos" if nested else ""
    fake = rows["ffpp/Deepfakes/c23/000_003"]
    assert fake["label"] == 1 and fake["split"] == "train"
    assert (fake["target_id"], fake["source_id"]) == ("000", "003")
    base = root / "manipulated_sequences/Deepfakes"
    assert fake["path"] == str(base / "c23" / videos / "000_003.mp4")
    assert fake["mask_path"] == str(base / "masks" / videos / "000_003.mp4")
    real = rows["ffpp/youtube/c23/007"]
    assert (real["label"], real["split"], real["method"]) == (0, "test", "youtube")
    assert (real["target_id"], real["source_id"], real["mask_path"]) == ("007", "", "")
    assert_absolute(table)


def test_ffpp_keys_unique_across_methods_and_compressions(tmp_path: Path) -> None:
    methods = (*CLASSIC, "FaceShifter")
    root = make_ffpp(tmp_path, levels=("c23", "c40"), methods=methods)
    table = build_video_table("ffpp", root, compression=["c23", "c40"], methods=methods)
    assert len(table) == 2 * (8 + 5 * 8) and table["video_key"].is_unique
    same_name = table[table["video_key"].str.endswith("/000_003")]
    assert len(same_name) == 10
    assert {k.split("/")[1] for k in same_name["video_key"]} == set(methods)
    shifter = table[table["method"] == "FaceShifter"]
    assert (shifter["mask_path"] == "").all() and (shifter["label"] == 1).all()
    # Abbreviations and compression aliases name the same folders.
    short = build_video_table("ffpp", root, compression="HQ", methods=["DF", "FSh"])
    assert set(short["method"]) == {"youtube", "Deepfakes", "FaceShifter"}
    assert set(short["compression"]) == {"c23"}


def test_ffpp_split_files_elsewhere(tmp_path: Path) -> None:
    root = make_ffpp(tmp_path / "ffpp", splits_dir=tmp_path / "splits")
    with pytest.raises(DatasetLayoutError, match=f"{root / 'train.json'}: not found"):
        build_video_table("ffpp", root)
    table = build_video_table("ffpp", root, splits_dir=tmp_path / "splits")
    assert len(table) == 40
    test_only = build_video_table("ffpp", root, splits_dir=tmp_path / "splits", splits="test")
    assert set(test_only["split"]) == {"test"} and len(test_only) == 10


def test_ffpp_malformed_and_overlapping_splits(tmp_path: Path) -> None:
    root = make_ffpp(tmp_path)
    (root / "val.json").write_text('[["004", "005"], ["006"]]')
    with pytest.raises(DatasetLayoutError, match=r"val\.json: item 1 is \['006'\]; expected"):
        build_video_table("ffpp", root)
    (root / "val.json").write_text("[[")
    with pytest.raises(DatasetLayoutError, match=r"val\.json: not valid JSON"):
        build_video_table("ffpp", root)
    (root / "val.json").write_text('[["004", "006"]]')
    with pytest.raises(DatasetLayoutError, match="id '006' is also in"):
        build_video_table("ffpp", root)


def test_ffpp_missing_video_strict_or_skipped(tmp_path: Path) -> None:
    root = make_ffpp(tmp_path)
    gone = root / "manipulated_sequences/Face2Face/c23/videos/005_004.mp4"
    gone.unlink()
    with pytest.raises(DatasetLayoutError, match=f"{gone}: missing.*val.json"):
        build_video_table("ffpp", root)
    with pytest.warns(DatasetLayoutWarning, match=str(gone)):
        table = build_video_table("ffpp", root, strict=False)
    assert len(table) == 39 and "ffpp/Face2Face/c23/005_004" not in set(table["video_key"])
    # A whole folder missing: named when strict, skipped with a warning otherwise.
    put_videos(root / "original_sequences/youtube/c40", ["000", "001", "002", "003"], True)
    put_videos(root / "original_sequences/youtube/c40", ["004", "005", "006", "007"], True)
    folder = root / "manipulated_sequences/NeuralTextures/c40"
    options = dict(compression=["c23", "c40"], methods=["NT"])
    with pytest.raises(DatasetLayoutError, match=f"{folder}: not found"):
        build_video_table("ffpp", root, **options)
    with pytest.warns(DatasetLayoutWarning, match=f"skipped: {folder}: not found"):
        table = build_video_table("ffpp", root, strict=False, **options)
    assert len(table) == 8 + 8 + 8 and (table["compression"] == "c40").sum() == 8


# ------------------------------------------------------------------ Celeb-DF-v2
CDF2_VIDEOS = {
    "Celeb-real": ["id0_0000", "id0_0001", "id1_0000", "id1_0001", "id2_0000"],
    "Celeb-synthesis": [
        "id0_id1_0000",
        "id0_id1_0001",
        "id1_id0_0000",
        "id1_id2_0000",
        "id2_id0_0000",
    ],
    "YouTube-real": ["00000", "00001", "00002"],
}
CDF2_LIST = """1 YouTube-real/00000.mp4
1 Celeb-real/id0_0000.mp4
0 Celeb-synthesis/id0_id1_0000.mp4

0 Celeb-synthesis/id1_id0_0000.mp4
"""


def make_cdf2(root: Path, nested: bool = False, listing: str = CDF2_LIST) -> Path:
    for folder, names in CDF2_VIDEOS.items():
        put_videos(root / folder, names, nested)
    touch(root / "List_of_testing_videos.txt", listing.encode())
    return root


@pytest.mark.parametrize("nested", [False, True], ids=["flat", "videos-level"])
def test_cdf2_listed_videos_are_test_with_inverted_labels(tmp_path: Path, nested: bool) -> None:
    root = make_cdf2(tmp_path / "Celeb-DF-v2", nested)
    table = build_video_table("cdf2", root)
    assert len(table) == 13
    assert counts(table) == {"test": (2, 2), "train": (6, 3)}
    test = table[table["split"] == "test"].set_index("video_key")["label"].to_dict()
    assert test == {
        "cdf2/YouTube-real/00000": 0,
        "cdf2/Celeb-real/id0_0000": 0,
        "cdf2/Celeb-synthesis/id0_id1_0000": 1,
        "cdf2/Celeb-synthesis/id1_id0_0000": 1,
    }
    fake = by_key(table)["cdf2/Celeb-synthesis/id1_id2_0000"]
    assert (fake["split"], fake["method"], fake["label"]) == ("train", "Celeb-synthesis", 1)
    assert (fake["target_id"], fake["source_id"]) == ("id1_0000", "id2")
    videos = "videos" if nested else ""
    assert fake["path"] == str(root / "Celeb-synthesis" / videos / "id1_id2_0000.mp4")
    assert_absolute(table)


def test_cdf2_val_share_is_deterministic_and_keeps_identities_together(tmp_path: Path) -> None:
    root = make_cdf2(tmp_path)
    table = build_video_table("cdf2", root, val_fraction=0.5)
    assert table.equals(build_video_table("cdf2", root, val_fraction=0.5))
    assert (table["split"] == "test").sum() == 4
    assert set(table["split"]) == {"train", "val", "test"}
    rest = table[table["split"] != "test"]
    person = rest["video_key"].str.extract(r"/(id\d+)_")[0].fillna(rest["video_key"])
    assert (rest.groupby(person)["split"].nunique() == 1).all()
    # 5 groups (id0, id1, id2 and two YouTube videos): round(0.5 * 5) = 2 go to val.
    assert person[rest["split"] == "val"].nunique() == 2


def test_cdf2_bad_lists(tmp_path: Path) -> None:
    root = make_cdf2(tmp_path, listing="1 YouTube-real/00000.mp4\n2 Celeb-real/id0_0000.mp4\n")
    list_file = root / "List_of_testing_videos.txt"
    with pytest.raises(DatasetLayoutError, match=f"{list_file}: line 2 is"):
        build_video_table("cdf2", root)
    list_file.write_text("Celeb-real/id0_0000.mp4\n")
    with pytest.raises(DatasetLayoutError, match="line 1 is"):
        build_video_table("cdf2", root)
    # A list already flipped to 1 = fake would silently swap every label: refused.
    list_file.write_text("1 Celeb-synthesis/id0_id1_0000.mp4\n")
    with pytest.raises(DatasetLayoutError, match="line 1 labels a Celeb-synthesis video real"):
        build_video_table("cdf2", root)
    list_file.unlink()
    with pytest.raises(DatasetLayoutError, match=f"{list_file}: not found"):
        build_video_table("cdf2", root)


def test_cdf2_missing_listed_videos(tmp_path: Path) -> None:
    extra = "1 YouTube-real/00299.mp4\n0 Celeb-synthesis/id9_id8_0001.mp4\n"
    root = make_cdf2(tmp_path, listing=CDF2_LIST + extra)
    with pytest.raises(DatasetLayoutError, match=r"00299.mp4: missing, as are 1 more .*id9_id8"):
        build_video_table("cdf2", root)
    with pytest.warns(DatasetLayoutWarning, match="skipped 2 videos.*00299.mp4.*id9_id8_0001"):
        table = build_video_table("cdf2", root, strict=False)
    assert (table["split"] == "test").sum() == 4


# ------------------------------------------------------------------ DFD
DFD_REALS = ["01__exit_phone_room", "02__talking_against_wall"]
DFD_FAKES = ["01_02__meeting_serious__YVGY8LOK", "02_01__talking_against_wall__ABCD1234"]


@pytest.mark.parametrize("nested", [True, False], ids=["videos-level", "flat"])
def test_dfd_from_inside_the_ffpp_tree(tmp_path: Path, nested: bool) -> None:
    root = make_ffpp(tmp_path / "FaceForensics++", nested)
    put_videos(root / "original_sequences/actors/c23", DFD_REALS, nested)
    put_videos(root / "manipulated_sequences/DeepFakeDetection/c23", DFD_FAKES, nested)
    put_videos(root / "manipulated_sequences/DeepFakeDetection/masks", DFD_FAKES[:1], nested)
    table = build_video_table("dfd", root)
    assert len(table) == 4 and counts(table) == {"test": (2, 2)}
    assert set(table["method"]) == {"actors", "DeepFakeDetection"}
    rows = by_key(table)
    fake = rows["dfd/DeepFakeDetection/c23/01_02__meeting_serious__YVGY8LOK"]
    assert (fake["target_id"], fake["source_id"]) == ("01__meeting_serious", "02")
    videos = "videos" if nested else ""
    masks = root / "manipulated_sequences/DeepFakeDetection/masks" / videos
    assert fake["mask_path"] == str(masks / f"{DFD_FAKES[0]}.mp4")
    assert (
        rows["dfd/DeepFakeDetection/c23/02_01__talking_against_wall__ABCD1234"]["mask_path"] == ""
    )
    real = rows["dfd/actors/c23/01__exit_phone_room"]
    assert (real["label"], real["target_id"], real["compression"]) == (
        0,
        "01__exit_phone_room",
        "c23",
    )
    with pytest.raises(DatasetLayoutError, match="actors/c40: not found"):
        build_video_table("dfd", root, compression="c40")


# ------------------------------------------------------------------ DFDC
def make_dfdc(root: Path, nested: bool = False) -> Path:
    put_videos(root / "test", ["aaa", "bbb", "ccc", "unlisted"], nested)
    touch(root / "test/labels.csv", b"filename,label\naaa.mp4,1\nbbb.mp4,0\nccc.mp4,1\n")
    for part in (0, 1):
        folder = root / f"dfdc_train_part_{part}"
        put_videos(folder, [f"fake{part}", f"real{part}"], nested)
        metadata = {
            f"fake{part}.mp4": {"label": "FAKE", "split": "train", "original": f"real{part}.mp4"},
            f"real{part}.mp4": {"label": "REAL", "split": "train"},
        }
        touch(folder / "metadata.json", json.dumps(metadata).encode())
    return root


@pytest.mark.parametrize("nested", [False, True], ids=["flat", "videos-level"])
def test_dfdc_test_labels_and_training_parts(tmp_path: Path, nested: bool) -> None:
    root = make_dfdc(tmp_path / "dfdc", nested)
    table = build_video_table("dfdc", root)
    assert counts(table) == {"test": (1, 2), "train": (2, 2)}
    rows = by_key(table)
    assert rows["dfdc/test/aaa"]["label"] == 1 and rows["dfdc/test/bbb"]["label"] == 0
    assert "dfdc/test/unlisted" not in rows
    fake = rows["dfdc/dfdc_train_part_1/fake1"]
    assert (fake["label"], fake["method"], fake["target_id"]) == (1, "fake", "real1")
    assert rows["dfdc/dfdc_train_part_1/real1"]["target_id"] == "real1"
    held_out = build_video_table("dfdc", root, val_parts=[1])
    assert counts(held_out) == {"test": (1, 2), "train": (1, 1), "val": (1, 1)}
    assert build_video_table("dfdc", root, val_parts="dfdc_train_part_1").equals(held_out)
    assert_absolute(table)


def test_dfdc_errors(tmp_path: Path) -> None:
    root = make_dfdc(tmp_path)
    labels = root / "test/labels.csv"
    labels.write_text("filename,label\naaa.mp4,1\nbbb.mp4,maybe\n")
    with pytest.raises(DatasetLayoutError, match=f"{labels}: line 3 is 'bbb.mp4,maybe'"):
        build_video_table("dfdc", root)
    labels.write_text("filename,label\naaa.mp4,1\nzzz.mp4,0\n")
    with pytest.raises(DatasetLayoutError, match="zzz.mp4: missing"):
        build_video_table("dfdc", root)
    with pytest.warns(DatasetLayoutWarning, match="zzz.mp4"):
        assert len(build_video_table("dfdc", root, strict=False)) == 5
    with pytest.raises(DatasetLayoutError, match="dfdc_train_part_7: not found"):
        build_video_table("dfdc", root, val_parts=[7])
    (root / "dfdc_train_part_0/metadata.json").write_text('{"fake0.mp4": {"label": "?"}}')
    with pytest.raises(DatasetLayoutError, match=r"metadata\.json: entry 'fake0.mp4'"):
        build_video_table("dfdc", root)
    with pytest.raises(DatasetLayoutError, match="test/ \\(with labels.csv\\)"):
        build_video_table("dfdc", tmp_path / "dfdc_train_part_0")


# ------------------------------------------------------------------ DFDC-Preview
DFDCP_JSON = {
    "original_videos/643049/643049_A/1955231.mp4": {"label": "real", "set": "train"},
    "method_A/643049/643049_A/1955300.mp4": {"label": "fake", "set": "test"},
    "method_B/1224068/1224068_C/2000001.mp4": {"label": "fake", "set": "train"},
}


@pytest.mark.parametrize("nested", [False, True], ids=["flat", "videos-level"])
def test_dfdcp_dataset_json(tmp_path: Path, nested: bool) -> None:
    for relative in DFDCP_JSON:
        head, _, tail = relative.partition("/")
        touch(tmp_path / head / ("videos" if nested else "") / tail)
    touch(tmp_path / "dataset.json", json.dumps(DFDCP_JSON).encode())
    table = build_video_table("dfdcp", tmp_path)
    assert counts(table) == {"test": (0, 1), "train": (1, 1)}
    fake = by_key(table)["dfdcp/method_A/643049/643049_A/1955300"]
    assert (fake["method"], fake["label"], fake["split"]) == ("method_A", 1, "test")
    assert Path(fake["path"]).is_file()
    bad = DFDCP_JSON | {"method_A/x.mp4": {"label": "fake", "set": "holdout"}}
    (tmp_path / "dataset.json").write_text(json.dumps(bad))
    with pytest.raises(DatasetLayoutError, match="dataset.json: entry 'method_A/x.mp4'"):
        build_video_table("dfdcp", tmp_path)


# ------------------------------------------------------------------ WildDeepfake
def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (120, 80, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


def make_tar(path: Path, members: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = png()
    with tarfile.open(path, "w:gz") as tar:
        for name in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


DFW_ARCHIVES = {
    "real_test/1.tar.gz": ["1/real/0/000.png", "1/real/0/001.png", "1/real/1/000.png"],
    "fake_test/2.tar.gz": ["2/fake/0/000.png", "2/fake/0/001.png"],
    # Members not rooted at the archive's id: the id is put in front of the key.
    "fake_test/3.tar.gz": ["fake/5/000.png", "fake/5/001.png"],
    "real_train/4.tar.gz": ["4/real/9/000.png", "4/real/9/001.png"],
}
DFW_KEYS = {
    "dfw/real_test/1/real/0",
    "dfw/real_test/1/real/1",
    "dfw/fake_test/2/fake/0",
    "dfw/fake_test/3/fake/5",
    "dfw/real_train/4/real/9",
}


def make_dfw(root: Path, nested: bool = False) -> Path:
    for relative, members in DFW_ARCHIVES.items():
        top, name = relative.split("/")
        make_tar(root / top / ("videos" if nested else "") / name, members)
    return root


@pytest.mark.parametrize("nested", [False, True], ids=["flat", "videos-level"])
def test_dfw_face_sequences_from_archives(tmp_path: Path, nested: bool) -> None:
    root = make_dfw(tmp_path / "deepfake_in_the_wild", nested)
    table = build_video_table("dfw", root)
    assert set(table["video_key"]) == DFW_KEYS
    assert counts(table) == {"test": (2, 2), "train": (1, 0)}
    archive = root / "real_test" / ("videos" if nested else "") / "1.tar.gz"
    assert by_key(table)["dfw/real_test/1/real/1"]["path"] == f"{archive}::1/real/1"
    assert set(table["mask_path"]) == {""} and set(table["method"]) == {"real", "fake"}


def test_dfw_extracted_tree_gives_the_same_keys(tmp_path: Path) -> None:
    root = make_dfw(tmp_path)
    from_archives = build_video_table("dfw", root)
    for relative in DFW_ARCHIVES:
        archive = root / relative
        # Unpacked where it lies, or into a folder named by its id when not rooted at it.
        target = archive.parent if relative != "fake_test/3.tar.gz" else archive.parent / "3"
        with tarfile.open(archive) as tar:
            tar.extractall(target, filter="data")
    extracted = build_video_table("dfw", root)
    assert set(extracted["video_key"]) == set(from_archives["video_key"])
    row = by_key(extracted)["dfw/fake_test/3/fake/5"]
    assert row["path"] == str(root / "fake_test/3/fake/5") and row["label"] == 1
    forced = build_video_table("dfw", root, mode="archives")
    assert forced["path"].str.contains("::").all()
    for relative in DFW_ARCHIVES:
        (root / relative).unlink()
    assert set(build_video_table("dfw", root)["video_key"]) == DFW_KEYS


def test_dfw_errors(tmp_path: Path) -> None:
    root = make_dfw(tmp_path / "dfw")
    broken = touch(root / "fake_test/9.tar.gz", b"not a tar archive")
    with pytest.raises(DatasetLayoutError, match=f"{broken}: unreadable"):
        build_video_table("dfw", root)
    with pytest.warns(DatasetLayoutWarning, match="9.tar.gz"):
        assert len(build_video_table("dfw", root, strict=False)) == 5
    with pytest.raises(DatasetLayoutError, match="expected WildDeepfake's folders"):
        build_video_table("dfw", tmp_path)


# ------------------------------------------------------------------ DeeperForensics-1.0
DF1_LISTS = {
    "train": ["000_M101.mp4", "001_W102.mp4"],
    "val": ["002_M101"],
    "test": ["003_W103.mp4"],
}
DF1_FAKES = ["000_M101", "001_W102", "002_M101", "003_W103"]


def make_df1(root: Path, ffpp: Path, nested: bool = False) -> Path:
    for split, lines in DF1_LISTS.items():
        touch(root / "lists/splits" / f"{split}.txt", "\n".join(lines).encode())
    for perturbation in ("end_to_end", "end_to_end_mix_2_distortions"):
        put_videos(root / "manipulated_videos" / perturbation, DF1_FAKES, nested)
    for actor in ("M101", "W102", "W103"):
        touch(root / "source_videos" / actor / "BlendShape/camera_front" / f"{actor}_a.mp4")
        touch(root / "source_videos" / actor / "light_uniform/angry/camera_down" / f"{actor}_b.mp4")
    put_videos(ffpp / "original_sequences/youtube/c23", ["000", "001", "002", "003"], nested)
    return root


@pytest.mark.parametrize("nested", [False, True], ids=["flat", "videos-level"])
def test_df1_fakes_with_ffpp_reals(tmp_path: Path, nested: bool) -> None:
    ffpp = tmp_path / "FaceForensics++"
    root = make_df1(tmp_path / "DeeperForensics-1.0", ffpp, nested)
    with pytest.raises(ValueError, match="pass ffpp_root"):
        build_video_table("df1", root)
    table = build_video_table("df1", root, ffpp_root=ffpp)
    assert counts(table) == {"train": (2, 2), "val": (1, 1), "test": (1, 1)}
    rows = by_key(table)
    fake = rows["df1/end_to_end/000_M101"]
    assert (fake["method"], fake["target_id"], fake["source_id"]) == ("end_to_end", "000", "M101")
    real = rows["df1/youtube/c23/000"]
    assert (real["label"], real["split"], real["target_id"]) == (0, "train", "000")
    videos = "videos" if nested else ""
    assert real["path"] == str(ffpp / "original_sequences/youtube/c23" / videos / "000.mp4")
    both = build_video_table(
        "df1", root, ffpp_root=ffpp, perturbation=["end_to_end", "end_to_end_mix_2_distortions"]
    )
    assert len(both) == 12 and both["video_key"].is_unique


def test_df1_source_reals_and_errors(tmp_path: Path) -> None:
    root = make_df1(tmp_path / "df1", tmp_path / "ffpp")
    table = build_video_table("df1", root, reals="source")
    reals = table[table["label"] == 0]
    assert len(reals) == 6 and set(reals["method"]) == {"source"}
    # M101 has fakes in train and val: its recordings go to the held-out val split.
    assert reals.groupby(reals["video_key"].str.split("/").str[2])["split"].first().to_dict() == {
        "M101": "val",
        "W102": "train",
        "W103": "test",
    }
    assert "df1/source/M101/BlendShape/camera_front/M101_a" in set(reals["video_key"])
    assert len(build_video_table("df1", root, reals="none")) == 4
    (root / "manipulated_videos/end_to_end/003_W103.mp4").unlink()
    with pytest.raises(DatasetLayoutError, match=r"003_W103.mp4: missing.*test\.txt"):
        build_video_table("df1", root, reals="none")
    (root / "lists/splits/val.txt").write_text("002 M101\n")
    with pytest.raises(DatasetLayoutError, match=r"val\.txt: line 1 is '002 M101'"):
        build_video_table("df1", root, reals="none")


# ------------------------------------------------------------------ command
def test_run_index_writes_the_table_and_summarises(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_ffpp(tmp_path / "FaceForensics++")
    out = tmp_path / "tables/ffpp.csv"
    assert main(["index", "--dataset", "ffpp", "--root", str(root), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "ffpp train: 20 videos, 4 reals, 16 fakes" in printed
    assert "ffpp test: 10 videos, 2 reals, 8 fakes" in printed
    written = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert len(written) == 40 and list(written.columns) == list(VIDEO_COLUMNS)
    args = ["--dataset", "ffpp", "--root", str(root), "--out", str(out), "--methods", "NT"]
    assert main(["index", *args, "--compression", "c23"]) == 0
    assert len(pd.read_csv(out)) == 8 + 8

    cdf2 = make_cdf2(tmp_path / "cdf2")
    args = ["--dataset", "cdf2", "--root", str(cdf2), "--out", str(tmp_path / "cdf2.csv")]
    assert main(["index", *args, "-o", "val_fraction=0.5"]) == 0
    assert "cdf2 val:" in capsys.readouterr().out
    assert main(["index", *args, "--compression", "c23"]) == 2
    assert "has no option compression" in capsys.readouterr().err
    (cdf2 / "Celeb-real/id2_0000.mp4").unlink()
    (cdf2 / "List_of_testing_videos.txt").write_text("1 Celeb-real/id2_0000.mp4\n")
    assert main(["index", *args]) == 2
    assert "id2_0000.mp4: missing" in capsys.readouterr().err
    assert main(["index", *args, "--no-strict"]) == 0
    assert "warning: cdf2: skipped 1 videos" in capsys.readouterr().err
