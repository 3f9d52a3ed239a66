"""Every indexer on the synthetic copies of the layouts: exact counts, labels, splits, keys."""

from __future__ import annotations

import pandas as pd
import pytest

from src.data.indexers import build_video_table
from src.synthetic.layouts import ROOTS, synthesize

# (split, label) -> videos in the tiny synthetic set, per dataset.
EXPECTED = {
    "ffpp": {
        ("train", 0): 2,
        ("train", 1): 8,
        ("val", 0): 2,
        ("val", 1): 8,
        ("test", 0): 2,
        ("test", 1): 8,
    },
    "cdf2": {("test", 0): 3, ("test", 1): 2},
    "dfd": {("test", 0): 2, ("test", 1): 2},
    "dfdc": {("train", 0): 1, ("train", 1): 1, ("test", 0): 1, ("test", 1): 1},
    "dfdcp": {("train", 0): 1, ("train", 1): 1, ("test", 0): 1, ("test", 1): 1},
    "dfw": {("train", 0): 1, ("train", 1): 1, ("test", 0): 1, ("test", 1): 1},
    "df1": {
        ("train", 0): 1,
        ("train", 1): 1,
        ("val", 0): 1,
        ("val", 1): 1,
        ("test", 0): 1,
        ("test", 1): 1,
    },
}


@pytest.fixture(scope="module")
def tiny_tree(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("synthetic")
    return out, synthesize(out, size="tiny")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_indexer_reads_the_synthetic_layout(tiny_tree, name: str) -> None:
    out, roots = tiny_tree
    options = {"ffpp_root": out / ROOTS["ffpp"]} if name == "df1" else {}
    table = build_video_table(name, roots[name], **options)
    counts = table.groupby(["split", "label"]).size().to_dict()
    assert counts == EXPECTED[name]
    assert table.video_key.is_unique and table.video_key.str.startswith(f"{name}/").all()
    if name == "ffpp":
        fakes = table[table.label == 1]
        assert set(fakes.method) == {"Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"}
        assert (fakes.mask_path != "").all()
        # Each pair [a, b] gives fakes a_b and b_a with target a / source b.
        for row in fakes.itertuples():
            target, source = row.video_key.rsplit("/", 1)[1].split("_")
            assert (row.target_id, row.source_id) == (target, source)


def test_all_keys_are_unique_across_datasets(tiny_tree) -> None:
    out, roots = tiny_tree
    tables = [
        build_video_table(
            name, roots[name], **({"ffpp_root": out / ROOTS["ffpp"]} if name == "df1" else {})
        )
        for name in EXPECTED
    ]
    keys = pd.concat(tables).video_key
    assert keys.is_unique


@pytest.mark.slow
def test_prepare_synthetic_makes_frame_tables(tmp_path) -> None:
    from src.synthetic.prepare import prepare_synthetic

    results = prepare_synthetic(tmp_path, size="tiny", frames=3, progress=False)
    for name, result in results.items():
        assert len(result.frames) >= 0.95 * 3 * result.frames.video_key.nunique(), name
        assert result.frames.video_key.nunique() == sum(EXPECTED[name].values())
