"""The synthetic people (src/synthetic/faces.py, frames.py, swaps.py) and the on-disk
dataset copies (src/synthetic/layouts.py, writer.py)."""

from __future__ import annotations

import csv
import json
import re
import tarfile
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from src.synthetic import layouts
from src.synthetic.faces import (
    FULL_CANVAS,
    Canvas,
    build_person,
    head_canvas,
    random_identity,
)
from src.synthetic.frames import compose, random_motion, random_scene
from src.synthetic.layouts import ALL, FFPP_MASKED, FFPP_METHODS, ffpp_pairs, synthesize
from src.synthetic.swaps import SwapStyle, swap_frame, tone_gain
from src.synthetic.writer import SIZE_PRESETS

TINY = SIZE_PRESETS["tiny"]


def read_video(path: Path) -> np.ndarray:
    """All frames of ``path`` as (N, H, W, 3) uint8 BGR."""
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    assert frames, f"{path} does not decode"
    return np.stack(frames)


def files_under(root: Path) -> dict[str, Path]:
    return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    out = tmp_path_factory.mktemp("synth")
    return out, synthesize(out, size="tiny")


def test_roots_and_every_named_path_exist(tiny):
    out, roots = tiny
    assert set(roots) == set(ALL)
    assert roots["ffpp"] == roots["dfd"] == out / "FaceForensics++"
    ff = roots["ffpp"]
    expected = [
        ff / "original_sequences/youtube/c23/videos",
        ff / "original_sequences/actors/c23/videos",
        ff / "manipulated_sequences/DeepFakeDetection/c23/videos",
        ff / "manipulated_sequences/DeepFakeDetection/masks/videos",
        *(ff / f"manipulated_sequences/{m}/c23/videos" for m in FFPP_METHODS),
        *(ff / f"manipulated_sequences/{m}/masks/videos" for m in FFPP_MASKED),
        roots["cdf2"] / "Celeb-real",
        roots["cdf2"] / "Celeb-synthesis",
        roots["cdf2"] / "YouTube-real",
        roots["dfdc"] / "test",
        roots["dfdc"] / "dfdc_train_part_0",
        roots["dfdcp"] / "original_videos",
        roots["dfdcp"] / "method_A",
        roots["dfdcp"] / "method_B",
        *(
            roots["dfw"] / folder
            for folder in ("real_train", "fake_train", "real_test", "fake_test")
        ),
        roots["df1"] / "source_videos",
        roots["df1"] / "manipulated_videos/end_to_end",
    ]
    for folder in expected:
        assert folder.is_dir(), folder
        assert any(folder.rglob("*.mp4")) or any(folder.glob("*.tar.gz")), folder
    for file in [
        *(ff / f"{split}.json" for split in ("train", "val", "test")),
        roots["cdf2"] / "List_of_testing_videos.txt",
        roots["dfdc"] / "test/labels.csv",
        roots["dfdc"] / "dfdc_train_part_0/metadata.json",
        roots["dfdcp"] / "dataset.json",
        *(roots["df1"] / f"lists/splits/{split}.txt" for split in ("train", "val", "test")),
    ]:
        assert file.is_file(), file
    # FaceShifter has no masks in FF++.
    assert not (ff / "manipulated_sequences/FaceShifter/masks").exists()
    # No temporary files are left behind.
    assert not [p for p in out.rglob("*.tmp")]


def test_ffpp_split_files_match_the_videos(tiny):
    ff = tiny[1]["ffpp"]
    splits = {s: json.loads((ff / f"{s}.json").read_text()) for s in ("train", "val", "test")}
    assert [len(splits[s]) for s in ("train", "val", "test")] == list(TINY.ffpp_pairs)
    assert splits == ffpp_pairs(0, "tiny")
    ids = [vid for pairs in splits.values() for pair in pairs for vid in pair]
    assert len(ids) == len(set(ids)), "an id sits in two pairs or splits"
    assert all(re.fullmatch(r"\d{3}", vid) for vid in ids)
    reals = {p.stem for p in (ff / "original_sequences/youtube/c23/videos").glob("*.mp4")}
    assert reals == set(ids)
    names = {f"{a}_{b}" for pairs in splits.values() for a, b in pairs} | {
        f"{b}_{a}" for pairs in splits.values() for a, b in pairs
    }
    for method in FFPP_METHODS:
        videos = {p.stem for p in (ff / f"manipulated_sequences/{method}/c23/videos").glob("*.mp4")}
        assert videos == names, method
    for method in FFPP_MASKED:
        masks = {
            p.stem for p in (ff / f"manipulated_sequences/{method}/masks/videos").glob("*.mp4")
        }
        assert masks == names, method


def test_dfd_names_and_masks(tiny):
    ff = tiny[1]["dfd"]
    reals = [p.name for p in (ff / "original_sequences/actors/c23/videos").glob("*.mp4")]
    assert len(reals) == TINY.dfd_actors
    assert all(re.fullmatch(r"\d\d__[a-z_]+\.mp4", name) for name in reals)
    fakes = sorted((ff / "manipulated_sequences/DeepFakeDetection/c23/videos").glob("*.mp4"))
    assert len(fakes) == TINY.dfd_fakes
    for fake in fakes:
        match = re.fullmatch(r"(\d\d)_(\d\d)__([a-z_]+)__[A-Z0-9]{8}\.mp4", fake.name)
        assert match, fake.name
        target, source, scene = match.groups()
        assert target != source
        assert f"{target}__{scene}.mp4" in reals, "a DFD fake's target video must exist"
        assert (ff / "manipulated_sequences/DeepFakeDetection/masks/videos" / fake.name).is_file()


def test_cdf2_list_uses_the_inverted_label_convention(tiny):
    root = tiny[1]["cdf2"]
    lines = (root / "List_of_testing_videos.txt").read_text().splitlines()
    labels = set()
    for line in lines:
        label, path = line.split(" ")
        assert (root / path).is_file(), path
        is_real = path.startswith(("Celeb-real/", "YouTube-real/"))
        assert label == ("1" if is_real else "0"), line  # 1 = REAL in Celeb-DF
        labels.add(label)
    assert labels == {"0", "1"}
    for fake in (root / "Celeb-synthesis").glob("*.mp4"):
        target, source, clip = re.fullmatch(r"(id\d+)_(id\d+)_(\d{4})", fake.stem).groups()
        assert target != source
        assert (root / f"Celeb-real/{target}_{clip}.mp4").is_file()
    assert all(re.fullmatch(r"\d{5}", p.stem) for p in (root / "YouTube-real").glob("*.mp4"))


def test_dfdc_labels_and_metadata_match_the_files(tiny):
    root = tiny[1]["dfdc"]
    with open(root / "test/labels.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and list(rows[0]) == ["filename", "label"]
    assert {r["filename"] for r in rows} == {p.name for p in (root / "test").glob("*.mp4")}
    assert {r["label"] for r in rows} == {"0", "1"}
    assert all(re.fullmatch(r"[a-z]{10}\.mp4", r["filename"]) for r in rows)
    part = root / "dfdc_train_part_0"
    metadata = json.loads((part / "metadata.json").read_text())
    assert set(metadata) == {p.name for p in part.glob("*.mp4")}
    assert {entry["label"] for entry in metadata.values()} == {"REAL", "FAKE"}
    for entry in metadata.values():
        assert entry["split"] == "train"
        if entry["label"] == "FAKE":
            assert metadata[entry["original"]]["label"] == "REAL"


def test_dfdcp_index_matches_the_files(tiny):
    root = tiny[1]["dfdcp"]
    index = json.loads((root / "dataset.json").read_text())
    on_disk = {p.relative_to(root).as_posix() for p in root.rglob("*.mp4")}
    assert set(index) == on_disk
    for path, entry in index.items():
        assert entry["label"] == ("real" if path.startswith("original_videos/") else "fake")
        assert entry["set"] in {"train", "test"}
    assert {e["label"] for e in index.values()} == {"real", "fake"}
    assert {p.split("/")[0] for p in index} == {"original_videos", "method_A", "method_B"}


def test_dfw_archives_hold_png_face_sequences(tiny):
    root = tiny[1]["dfw"]
    for folder in ("real_train", "fake_train", "real_test", "fake_test"):
        kind = folder.split("_")[0]
        archives = sorted((root / folder).glob("*.tar.gz"))
        assert len(archives) == TINY.dfw_archives
        for archive in archives:
            with tarfile.open(archive) as tar:
                members = [m for m in tar.getmembers() if m.isfile()]
                assert len(members) == TINY.dfw_sequences * TINY.frames["dfw"]
                for member in members:
                    match = re.fullmatch(
                        rf"{archive.name[:-7]}/{kind}/(\d+)/(\d+)\.png", member.name
                    )
                    assert match, member.name
                    data = np.frombuffer(tar.extractfile(member).read(), np.uint8)
                    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
                    assert image is not None and image.ndim == 3 and image.shape[2] == 3
                    assert image.shape[0] == image.shape[1] >= 100


def test_df1_lists_match_the_files_and_the_ffpp_split(tiny):
    root = tiny[1]["df1"]
    videos = {p.name for p in (root / "manipulated_videos/end_to_end").glob("*.mp4")}
    listed = {}
    for split, count in zip(("train", "val", "test"), TINY.df1_split, strict=True):
        listed[split] = (root / f"lists/splits/{split}.txt").read_text().split()
        assert len(listed[split]) == count
    assert set().union(*map(set, listed.values())) == videos
    ffpp = ffpp_pairs(0, "tiny")
    actors = {p.name for p in (root / "source_videos").iterdir()}
    for split, names in listed.items():
        for name in names:
            target, actor = re.fullmatch(r"(\d{3})_([MW]\d{3})\.mp4", name).groups()
            assert actor in actors
            assert target in {vid for pair in ffpp[split] for vid in pair}
    for name in listed["test"]:
        assert (root / "manipulated_videos/end_to_end_random_level" / name).is_file()


def test_videos_decode_to_the_right_count_and_size(tiny):
    out = tiny[0]
    videos = sorted(out.rglob("*.mp4"))
    assert len(videos) > 60
    for path in videos:
        dataset = next(k for k, v in layouts.ROOTS.items() if path.is_relative_to(out / v))
        if "DeepFakeDetection" in path.parts or "actors" in path.parts:
            dataset = "dfd"
        frames = read_video(path)
        expected_size = (120, 160) if dataset == "dfdc" else (128, 128)
        assert frames.shape[0] == TINY.frames[dataset], path
        assert frames.shape[1:3] == expected_size, path


def test_ffpp_masks_are_the_blend_and_fakes_keep_the_target(tiny):
    ff = tiny[1]["ffpp"]
    target, source = ffpp_pairs(0, "tiny")["train"][0]
    real = read_video(ff / f"original_sequences/youtube/c23/videos/{target}.mp4").astype(float)
    for method in FFPP_MASKED:
        base = ff / "manipulated_sequences" / method
        fake = read_video(base / f"c23/videos/{target}_{source}.mp4").astype(float)
        mask = read_video(base / f"masks/videos/{target}_{source}.mp4")[..., 0]
        assert (mask > 128).any(axis=(1, 2)).all(), f"{method}: a frame has an empty mask"
        diff = np.abs(fake - real).mean(axis=-1)
        # Keep clear of the mask edge: the codec spreads changes over its 8-16 px blocks.
        grown = np.stack([cv2.dilate((m > 8).astype(np.uint8), np.ones((13, 13))) for m in mask])
        outside = diff[grown == 0].mean()
        inside = diff[mask > 128].mean()
        assert outside < 2.0, f"{method}: the fake differs from its target outside the mask"
        assert inside > 2 * outside + 1.0, f"{method}: the masked face did not change"


def test_swap_frame_changes_exactly_the_masked_pixels():
    rng = np.random.default_rng(3)
    target, source = build_person(random_identity(rng)), build_person(random_identity(rng))
    motion, scene = random_motion(rng), random_scene(rng, 128, 128)
    frame, landmarks = compose(target, motion, scene, 2, np.random.default_rng(0))
    for style in (SwapStyle(), SwapStyle(region="mouth", reenact=True, texture_noise=5.0)):
        fake, mask = swap_frame(
            frame, landmarks, target, source, motion, random_motion(rng), scene, 2, style, rng
        )
        assert fake.shape == frame.shape and fake.dtype == np.uint8
        assert np.array_equal(fake[mask == 0], frame[mask == 0])
        assert (mask > 0.5).any() and mask.max() <= 1.0
        changed = np.abs(fake.astype(int) - frame.astype(int)).max(axis=-1) > 0
        assert changed[mask > 0.5].mean() > 0.5


def test_tone_offsets_the_pasted_face_by_the_videos_gain():
    """SwapStyle.tone: the pasted face is brighter or darker by ~tone, the rest untouched."""
    rng = np.random.default_rng(5)
    target, source = build_person(random_identity(rng)), build_person(random_identity(rng))
    motion, source_motion, scene = (
        random_motion(rng),
        random_motion(rng),
        random_scene(rng, 256, 256),
    )
    frame, landmarks = compose(target, motion, scene, 1, np.random.default_rng(0))
    style = SwapStyle(tone=0.1)
    gains = np.array([tone_gain(style, np.random.default_rng(seed)) for seed in range(40)])
    brighter = gains.mean(axis=1) > 1
    assert 0 < brighter.sum() < len(gains)  # both signs occur
    assert np.allclose(np.abs(gains.mean(axis=1) - 1), 0.1, atol=0.06)
    assert np.array_equal(tone_gain(SwapStyle(), rng), np.ones(3))
    args = (frame, landmarks, target, source, motion, source_motion, scene, 1, style)
    plain, mask = swap_frame(*args, np.random.default_rng(1))
    gain = np.array([1.1, 1.05, 1.15], np.float32)
    toned, toned_mask = swap_frame(*args, np.random.default_rng(1), gain)
    assert np.array_equal(mask, toned_mask)
    assert np.array_equal(toned[mask == 0], plain[mask == 0])
    core = (mask > 0.99) & (plain < 200).all(axis=-1)  # pasted in full, not clipped by the gain
    assert core.sum() > 100
    ratio = toned[core].astype(float).mean(axis=0) / plain[core].astype(float).mean(axis=0)
    assert np.allclose(ratio, gain, atol=0.01)


def test_same_seed_gives_identical_files(tiny, tmp_path):
    out, _ = tiny
    names = ["ffpp", "dfw", "dfdc"]
    again = synthesize(tmp_path, names, size="tiny")
    for name in names:
        first, second = files_under(out / layouts.ROOTS[name]), files_under(again[name])
        if name == "ffpp":  # the first tree also holds DFD
            dfd = ("actors/", "DeepFakeDetection/", "synth-dfd")
            first = {k: v for k, v in first.items() if not any(part in k for part in dfd)}
        assert first.keys() == second.keys()
        for relative, path in first.items():
            a, b = path.read_bytes(), second[relative].read_bytes()
            if a != b:  # the codec may differ in bytes; the frames must not
                assert relative.endswith(".mp4"), relative
                assert np.array_equal(read_video(path), read_video(second[relative])), relative


def test_rerun_over_a_complete_tree_changes_nothing(tiny):
    out, _ = tiny
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    start = time.perf_counter()
    synthesize(out, size="tiny")
    assert time.perf_counter() - start < 0.5
    after = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    assert before == after


def test_incomplete_or_changed_trees_are_rebuilt(tmp_path):
    root = synthesize(tmp_path, ["dfdcp"], size="tiny")["dfdcp"]
    first = files_under(root)
    victim = next(p for p in first.values() if p.suffix == ".mp4")
    content = victim.read_bytes()
    victim.unlink()
    synthesize(tmp_path, ["dfdcp"], size="tiny")
    assert victim.read_bytes() == content
    # Another seed rewrites the tree and removes the old run's files (ids are seeded).
    synthesize(tmp_path, ["dfdcp"], seed=1, size="tiny")
    second = files_under(root)
    marker = json.loads(layouts.marker_path(root, "dfdcp").read_text())
    assert marker["seed"] == 1
    assert set(second) == set(marker["files"]) | {layouts.marker_path(root, "dfdcp").name}
    assert set(second) != set(first)


def test_bad_arguments_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset"):
        synthesize(tmp_path, ["ffpp", "celebdf"], size="tiny")
    with pytest.raises(ValueError, match="unknown size"):
        synthesize(tmp_path, ["ffpp"], size="huge")


@pytest.mark.parametrize("flip", [False, True])
def test_a_person_on_a_head_canvas_is_the_full_person_at_lower_resolution(flip):
    identity = replace(random_identity(np.random.default_rng(5)), beard=0.6, flip=flip)
    small = head_canvas(60.0)
    assert small.scale == pytest.approx(60.0 / 93.0, abs=0.01)
    x0, y0, x1, y1 = small.window
    if flip:  # a flipped canvas mirrors about its own centre
        x0, x1 = FULL_CANVAS.size - x1, FULL_CANVAS.size - x0
    full = build_person(identity)
    expected = cv2.resize(
        full.rgba[y0:y1, x0:x1], (small.size, small.size), interpolation=cv2.INTER_AREA
    )
    person = build_person(identity, small)
    assert person.rgba.shape == (small.size, small.size, 4) and person.scale == small.scale
    # Compared at the scale of a blur, so that resampling noise on sharp edges does not count:
    # a length left unscaled (hairline, hair, jaw, suit) moves whole edges and fails this.
    difference = np.abs(
        cv2.GaussianBlur(person.rgba, (0, 0), 1.5) - cv2.GaussianBlur(expected, (0, 0), 1.5)
    )
    assert np.percentile(difference[..., :3], 99) < 2.5 and difference[..., :3].max() < 8
    assert difference[..., 3].max() < 0.05
    # Landmarks: the full canvas's, mapped as the resize maps pixel centres.
    landmarks = (full.landmarks - (x0, y0) + 0.5) * small.scale - 0.5
    assert np.abs(person.landmarks - landmarks).max() < 0.15


def test_canvas_maps_positions_and_spans_as_a_resize_does():
    canvas = Canvas((100, 50, 300, 250), 50)
    assert canvas.scale == 0.25
    # Pixel (100, 50) covers canvas pixel 0's first quarter: its centre maps to -0.375.
    assert np.allclose(
        canvas.point(np.array([[100, 50], [103, 53], [300, 250]])),
        [[-0.375, -0.375], [0.375, 0.375], [49.625, 49.625]],
    )
    assert canvas.span(62, 90, axis=0) == slice(3, 10)  # rows 62..90 -> canvas rows 3..10
    assert canvas.span(0, 1000, axis=1) == slice(0, 50)
    with pytest.raises(ValueError, match="square"):
        Canvas((0, 0, 10, 20), 5)


@pytest.mark.slow
@pytest.mark.parametrize("size", ["default", "tiny"])
def test_mtcnn_finds_a_face_in_every_dataset(tmp_path, size):
    import torch
    from facenet_pytorch import MTCNN

    # One thread: on a shared 2-core machine, two contend and run ~20x slower.
    torch.set_num_threads(1)
    detector = MTCNN(keep_all=True, device="cpu")
    roots = synthesize(tmp_path, size=size)
    found: dict[str, list[bool]] = {name: [] for name in ALL}

    def faces(images_bgr: list[np.ndarray]) -> list[bool]:
        """Whether MTCNN finds a face in each image (one batched call; same-size images)."""
        boxes, probs = detector.detect([cv2.cvtColor(im, cv2.COLOR_BGR2RGB) for im in images_bgr])
        return [
            b is not None and float(np.max(np.asarray(p, dtype=float))) > 0.8
            for b, p in zip(boxes, probs, strict=True)
        ]

    videos = {
        "ffpp": [
            "original_sequences/youtube",
            *(f"manipulated_sequences/{m}/c23" for m in FFPP_METHODS),
        ],
        "dfd": ["original_sequences/actors", "manipulated_sequences/DeepFakeDetection/c23"],
    }
    for name in ALL:
        if name == "dfw":
            for archive in sorted(roots[name].rglob("*.tar.gz")):
                with tarfile.open(archive) as tar:
                    for member in [m for m in tar.getmembers() if m.isfile()][::3]:
                        data = np.frombuffer(tar.extractfile(member).read(), np.uint8)
                        found[name] += faces([cv2.imdecode(data, cv2.IMREAD_COLOR)])
            continue
        folders = [roots[name] / f for f in videos.get(name, ["."])]
        for path in sorted({p for folder in folders for p in folder.rglob("*.mp4")}):
            frames = read_video(path)
            found[name] += faces([frames[0], frames[len(frames) // 2], frames[-1]])
    for name, hits in found.items():
        assert hits, name
        assert np.mean(hits) >= 0.95, f"{name}: MTCNN found faces in {np.mean(hits):.0%} of frames"
