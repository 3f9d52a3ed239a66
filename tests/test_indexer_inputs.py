"""Hostile and careless dataset files: every path stays inside its root, every bad value is named."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from test_indexers import (
    DFDCP_JSON,
    make_cdf2,
    make_dfdc,
    make_dfw,
    make_ffpp,
    make_tar,
    touch,
)

from src.data.indexers import (
    SKIPPED_COLUMNS,
    DatasetLayoutError,
    DatasetLayoutWarning,
    UnsafePathError,
    build_video_table,
    index_dataset,
)
from src.data.paths import check_key, check_name, inside
from src.data.tables import TableError, load_video_table


# ------------------------------------------------------------------ the helpers
def test_inside_resolves_against_the_root_and_refuses_to_leave_it(tmp_path: Path) -> None:
    root = tmp_path / "root"
    assert inside(root, "a/../b/x.mp4", "w") == root / "b/x.mp4"
    assert inside(root, str(root / "x.mp4"), "w") == root / "x.mp4"
    assert inside(root, "a\\x.mp4", "w") == root / "a/x.mp4"
    for bad in ("../x.mp4", "a/../../x.mp4", "/etc/passwd", str(tmp_path / "rootx/y")):
        with pytest.raises(UnsafePathError, match=r"^list: line 3: .* leads outside"):
            inside(root, bad, "list: line 3")
    with pytest.raises(UnsafePathError, match="NUL"):
        inside(root, "a\x00b", "w")
    with pytest.raises(UnsafePathError, match="empty path"):
        inside(root, " ", "w")


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("ffpp/../x", "has an empty, '.' or '..' part"),
        ("ffpp//x", "has an empty, '.' or '..' part"),
        ("ffpp/./x", "has an empty, '.' or '..' part"),
        ("/abs/x", "is absolute"),
        ("a\\b", "contains a backslash"),
        ("a\x00b", "contains a control character"),
        ("tables/x", "starts with 'tables'"),
        ("", "is empty"),
    ],
)
def test_unsafe_keys_are_named(key: str, problem: str) -> None:
    with pytest.raises(UnsafePathError, match=f"^where: video key .* {problem}"):
        check_key(key, "where")
    assert check_key("ffpp/Deepfakes/c23/000_003", "where") == "ffpp/Deepfakes/c23/000_003"


@pytest.mark.parametrize("name", ["../../x", "a/b", "a\\b", ".hidden", "", "x\x00"])
def test_table_names_are_plain(name: str) -> None:
    with pytest.raises(UnsafePathError, match="table name"):
        check_name(name)
    assert check_name("ffpp_c23") == "ffpp_c23"


# ------------------------------------------------------------------ containment per format
def test_cdf2_list_line_outside_the_root(tmp_path: Path) -> None:
    touch(tmp_path / "outside.mp4")
    root = make_cdf2(
        tmp_path / "Celeb-DF-v2", listing="1 Celeb-real/id0_0000.mp4\n1 ../outside.mp4\n"
    )
    listing = root / "List_of_testing_videos.txt"
    with pytest.raises(
        UnsafePathError, match=f"^{listing}: line 2: '../outside.mp4' leads outside {root}$"
    ):
        build_video_table("cdf2", root)
    listing.write_text("1 /etc/passwd.mp4\n")
    with pytest.raises(UnsafePathError, match="line 1: '/etc/passwd.mp4' is absolute"):
        build_video_table("cdf2", root)
    # A detour that stays inside is an error too, not quietly read as another name.
    listing.write_text("1 Celeb-real/../Celeb-real/id0_0000.mp4\n")
    with pytest.raises(
        UnsafePathError, match="line 1: 'Celeb-real/../Celeb-real/id0_0000.mp4' has"
    ):
        build_video_table("cdf2", root)


def test_dfdc_names_must_be_plain_file_names(tmp_path: Path) -> None:
    root = make_dfdc(tmp_path / "dfdc")
    touch(tmp_path / "x.mp4")
    labels = root / "test/labels.csv"
    labels.write_text("filename,label\naaa.mp4,1\n../x.mp4,0\n")
    with pytest.raises(UnsafePathError, match=f"{labels}: line 3: '../x.mp4' is not a plain"):
        build_video_table("dfdc", root)
    labels.write_text("filename,label\naaa.mp4,1\n")
    metadata = root / "dfdc_train_part_0/metadata.json"
    metadata.write_text(json.dumps({"../../x.mp4": {"label": "REAL"}}))
    with pytest.raises(UnsafePathError, match=r"entry '\.\./\.\./x\.mp4': .* not a plain"):
        build_video_table("dfdc", root)


def test_dfdc_conflicting_and_repeated_labels(tmp_path: Path) -> None:
    root = make_dfdc(tmp_path / "dfdc")
    labels = root / "test/labels.csv"
    labels.write_text("filename,label\naaa.mp4,0\nbbb.mp4,0\naaa.mp4,1\n")
    with pytest.raises(
        DatasetLayoutError, match=r"lines 2 and 4 label aaa\.mp4 0 and 1; expected one label"
    ):
        build_video_table("dfdc", root)
    labels.write_text("filename,label\naaa.mp4,1\nbbb.mp4,0\naaa.mp4,1\n")
    with pytest.warns(DatasetLayoutWarning, match=r"aaa\.mp4 \(lines 2 and 4\)"):
        table = build_video_table("dfdc", root)
    assert (table["video_key"] == "dfdc/test/aaa").sum() == 1


def test_dfdc_original_given_as_a_list(tmp_path: Path) -> None:
    root = make_dfdc(tmp_path / "dfdc")
    metadata = root / "dfdc_train_part_0/metadata.json"
    entries = json.loads(metadata.read_text())
    entries["fake0.mp4"]["original"] = ["real0.mp4"]
    metadata.write_text(json.dumps(entries))
    table = build_video_table("dfdc", root).set_index("video_key")
    assert table.loc["dfdc/dfdc_train_part_0/fake0", "target_id"] == "real0"
    entries["fake0.mp4"]["original"] = ["real0.mp4", "other.mp4"]
    metadata.write_text(json.dumps(entries))
    with pytest.raises(DatasetLayoutError, match=r"entry 'fake0.mp4' has original \['real0.mp4'"):
        build_video_table("dfdc", root)


def make_dfdcp(root: Path, entries: dict) -> Path:
    for relative in DFDCP_JSON:
        touch(root / relative)
    touch(root / "dataset.json", json.dumps(entries).encode())
    return root


@pytest.mark.parametrize("entry", ["../x.mp4", "/abs/x.mp4", "method_A/../../x.mp4"])
def test_dfdcp_entries_outside_the_root(tmp_path: Path, entry: str) -> None:
    touch(tmp_path / "x.mp4")
    root = make_dfdcp(tmp_path / "dfdcp", DFDCP_JSON | {entry: {"label": "fake", "set": "test"}})
    with pytest.raises(UnsafePathError, match=f"dataset.json: entry '{entry}'"):
        build_video_table("dfdcp", root)


def test_dfdcp_alias_of_a_real_is_an_error_naming_it(tmp_path: Path) -> None:
    alias = "method_A/../original_videos/643049/643049_A/1955231.mp4"
    root = make_dfdcp(tmp_path, DFDCP_JSON | {alias: {"label": "fake", "set": "train"}})
    with pytest.raises(UnsafePathError, match=f"entry '{alias}': '{alias}' has a '..' part"):
        build_video_table("dfdcp", root)


def test_dfw_members_outside_the_archive(tmp_path: Path) -> None:
    root = make_dfw(tmp_path / "dfw")
    bad = make_tar(root / "fake_test/7.tar.gz", ["7/fake/0/000.png", "../../evil/000.png"])
    with pytest.raises(DatasetLayoutError, match=f"{bad}: member '../../evil/000.png' climbs out"):
        build_video_table("dfw", root)
    with pytest.warns(DatasetLayoutWarning, match="skipped those members"):
        result = index_dataset("dfw", root, strict=False)
    assert "dfw/fake_test/7/fake/0" in set(result.videos["video_key"])
    assert not result.videos["video_key"].str.contains("evil").any()
    assert result.skipped.to_dict("records") == [
        {
            "path": f"{bad}::../../evil/000.png",
            "listed_in": str(bad),
            "reason": "member climbs out with '..'",
        }
    ]


def test_ffpp_split_ids_cannot_be_paths(tmp_path: Path) -> None:
    root = make_ffpp(tmp_path)
    (root / "val.json").write_text('[["004", "../../005"]]')
    with pytest.raises(
        DatasetLayoutError, match=r"val\.json: item 0 is \['004', '\.\./\.\./005'\]"
    ):
        build_video_table("ffpp", root)


# ------------------------------------------------------------------ options
@pytest.mark.parametrize(
    ("dataset", "options", "message"),
    [
        (
            "cdf2",
            {"val_fraction": "abc"},
            "cdf2: option val_fraction must be a number in [0, 1), got 'abc'",
        ),
        (
            "cdf2",
            {"val_fraction": 1.5},
            "cdf2: option val_fraction must be a number in [0, 1), got 1.5",
        ),
        (
            "cdf2",
            {"val_fraction": True},
            "cdf2: option val_fraction must be a number in [0, 1), got True",
        ),
        ("cdf2", {"strict": "yes"}, "cdf2: option strict must be true or false, got 'yes'"),
        (
            "cdf2",
            {"test_list": 3},
            "cdf2: option test_list must be a string, a path or null, got 3",
        ),
        (
            "dfw",
            {"mode": "zip"},
            "dfw: option mode must be one of 'auto', 'archives', 'extracted', got 'zip'",
        ),
        (
            "ffpp",
            {"compression": 23},
            "ffpp: option compression must be a string or a list of strings, got 23",
        ),
        (
            "dfdc",
            {"val_parts": [1.5]},
            "dfdc: option val_parts must be an integer, a string or a list of integers or strings, got [1.5]",
        ),
        (
            "cdf2",
            {"colour": "red"},
            "dataset 'cdf2' has no option colour; its options: test_list, val_fraction, strict",
        ),
    ],
)
def test_indexer_options_are_typed_and_ranged(
    tmp_path: Path, dataset: str, options: dict, message: str
) -> None:
    with pytest.raises(ValueError) as error:
        build_video_table(dataset, tmp_path, **options)
    assert str(error.value) == message


def test_no_strict_skips_are_a_table(tmp_path: Path) -> None:
    root = make_ffpp(tmp_path)
    gone = root / "manipulated_sequences/Face2Face/c23/videos/005_004.mp4"
    gone.unlink()
    with pytest.warns(DatasetLayoutWarning):
        result = index_dataset("ffpp", root, strict=False)
    assert list(result.skipped.columns) == list(SKIPPED_COLUMNS)
    assert result.skipped.to_dict("records") == [
        {
            "path": str(gone),
            "listed_in": str(root / "val.json"),
            "reason": "named in the list but missing",
        }
    ]
    assert len(result.videos) == 39
    assert index_dataset("ffpp", make_ffpp(tmp_path / "whole")).skipped.empty


# ------------------------------------------------------------------ a user's index CSV
HEADER = "video_key,path,label,split,dataset,method\n"


@pytest.mark.parametrize(
    ("rows", "error", "message"),
    [
        (
            "k/a,/v/a.mp4,0,train,x,m\nk/b,/v/b.mp4,fake,train,x,m\n",
            TableError,
            "line 3: label 'fake' is not 0 (real), 1 (fake) or -1 (unknown)",
        ),
        (
            "k/a,/v/a.mp4,0,train,x,m\nk/b,/v/b.mp4,2,train,x,m\n",
            TableError,
            "line 3: label '2' is not",
        ),
        (
            "k/a,/v/a.mp4,0,train,x,m\nk/b,/v/b.mp4,1,holdout,x,m\n",
            TableError,
            "line 3: split 'holdout' is not one of train, val, test",
        ),
        (
            "k/a,/v/a.mp4,0,train,x,m\nk/a,/v/b.mp4,1,train,x,m\n",
            TableError,
            ": line 2 and line 3 share the video key 'k/a'",
        ),
        (
            "k/a,/v/a.mp4,0,train,x,m\nk/../../b,/v/b.mp4,1,train,x,m\n",
            UnsafePathError,
            "line 3: video key 'k/../../b' has an empty, '.' or '..' part",
        ),
        (
            "k/a,/v/a.mp4,0,train,x,m\n/abs,/v/b.mp4,1,train,x,m\n",
            UnsafePathError,
            "line 3: video key '/abs' is absolute",
        ),
        (
            "k/a,/v/a.mp4,0,train,x,m\nk/b,/v/./a.mp4,1,train,x,m\n",
            TableError,
            ": line 2 (k/a) and line 3 (k/b) name the same source /v/a.mp4",
        ),
        ("k/a,,0,train,x,m\n", TableError, "line 2 (k/a): empty path"),
        ("k/a,../b.mp4,0,train,x,m\n", UnsafePathError, "line 2 (path): '../b.mp4' leads outside"),
    ],
    ids=[
        "label-word",
        "label-2",
        "split",
        "duplicate-key",
        "key-dotdot",
        "key-absolute",
        "same-source",
        "empty-path",
        "path-outside",
    ],
)
def test_index_csv_schema_errors_name_the_line(
    tmp_path: Path, rows: str, error: type, message: str
) -> None:
    csv = tmp_path / "tables" / "mine.csv"
    csv.parent.mkdir()
    csv.write_text(HEADER + rows)
    with pytest.raises(error) as caught:
        load_video_table(csv)
    assert str(caught.value).startswith(str(csv)) and message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_index_csv_missing_column_file_and_relative_paths(tmp_path: Path) -> None:
    csv = tmp_path / "mine.csv"
    csv.write_text("video_key,path,label,split,dataset\nk/a,/v/a.mp4,0,train,x\n")
    with pytest.raises(
        TableError, match=f"^{csv}: missing column\\(s\\) method; a video table has"
    ):
        load_video_table(csv)
    with pytest.raises(FileNotFoundError, match="video table not found: .*nope.csv"):
        load_video_table(tmp_path / "nope.csv")
    csv.write_text(HEADER + "k/000,videos/a.mp4,1,test,x,m\n")
    table = load_video_table(csv)
    assert table.loc[0, "path"] == str(tmp_path / "videos/a.mp4")
    assert table.loc[0, "video_key"] == "k/000" and table.loc[0, "label"] == 1  # text kept as text
    # What `dfbench index` writes reads back unchanged.
    written = build_video_table("cdf2", make_cdf2(tmp_path / "cdf2"))
    written.to_csv(tmp_path / "cdf2.csv", index=False)
    pd.testing.assert_frame_equal(
        load_video_table(tmp_path / "cdf2.csv"), written, check_dtype=False
    )


def test_save_index_writes_the_skips_beside_the_table(tmp_path: Path) -> None:
    from src.data.indexers.command import save_index

    root = make_ffpp(tmp_path / "ffpp")
    (root / "manipulated_sequences/Face2Face/c23/videos/005_004.mp4").unlink()
    with pytest.warns(DatasetLayoutWarning):
        result = index_dataset("ffpp", root, strict=False)
    out = tmp_path / "tables" / "ffpp.csv"
    table, skips = save_index(result, out)
    assert (table, skips) == (out, tmp_path / "tables" / "ffpp_skipped.csv")
    assert pd.read_csv(skips)["reason"].tolist() == ["named in the list but missing"]
    assert save_index(index_dataset("ffpp", make_ffpp(tmp_path / "whole")), out) == [out]
    assert not skips.exists()
    with pytest.raises(IsADirectoryError, match="is a folder; expected the path of the CSV"):
        save_index(result, tmp_path)
