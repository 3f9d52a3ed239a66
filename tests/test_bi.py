"""Blended Images: pool and neighbours, never the own video, masks, blending, DataModule pairs."""

from __future__ import annotations

import pickle
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from src.augment.bi import (
    BI,
    _grid_weights,
    colour_transfer,
    feather_weights,
    piecewise_deform,
)
from src.data import DeepfakeDataModule
from src.data.preprocess import load_frame_table

QUIET = {"post_prob": 0.0}  # no post-processing
#: No down-sampling before blending and no final crop: the fake keeps the real's pixels.
EXACT = {"post_prob": 0.0, "blend_size": (317, 317), "final_crop": None}


@pytest.fixture(scope="module")
def toy_frames(toy_cache) -> tuple[pd.DataFrame, Path]:
    result, cache, _ = toy_cache
    return load_frame_table(result.table_path), cache


@pytest.fixture(scope="module")
def pool(toy_frames, tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, Path]:
    """Six tinted "videos" of four frames each: a toy face at 256 px, posed differently per video.

    The face sits in the middle of the crop, so there is room around its hull.
    """
    table, cache = toy_frames
    row = table[table.label == 0].iloc[0]
    face = cv2.cvtColor(cv2.imread(str(cache / row.crop_path)), cv2.COLOR_BGR2RGB)
    points = row.landmarks.astype(np.float64)
    # The 51 px crop scaled to 150 px and centred in a 256 px canvas.
    place = np.array([[150 / face.shape[1], 0, 53], [0, 150 / face.shape[0], 53]])
    canvas = cv2.warpAffine(face, place, (256, 256), borderMode=cv2.BORDER_REFLECT)
    points = points @ place[:, :2].T + place[:, 2]

    root = tmp_path_factory.mktemp("bi_pool")
    rng = np.random.default_rng(0)
    rows = []
    for video in range(6):
        angle, scale = rng.uniform(-12, 12), rng.uniform(0.9, 1.1)
        tint = rng.uniform(-40, 40, 3)
        for frame in range(4):
            matrix = cv2.getRotationMatrix2D((128, 128), angle + rng.uniform(-2, 2), scale)
            matrix[:, 2] += rng.uniform(-4, 4, 2)
            image = cv2.warpAffine(canvas, matrix, (256, 256), borderMode=cv2.BORDER_REFLECT)
            image = np.clip(image + tint, 0, 255).astype(np.uint8)
            crop_path = f"syn/v{video}/{frame:06d}.png"
            (root / crop_path).parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / crop_path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            rows.append(
                {
                    "video_key": f"syn/v{video}",
                    "crop_path": crop_path,
                    "frame_idx": frame,
                    "label": 0,
                    "landmarks": (points @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32),
                }
            )
    return pd.DataFrame(rows), root


def blank(image: np.ndarray) -> np.ndarray:
    return np.zeros(image.shape[:2], np.uint8)


def load(root: Path, row: dict) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(root / row["crop_path"])), cv2.COLOR_BGR2RGB)


def prepared(pool, **options) -> BI:
    frames, root = pool
    bi = BI(**options)
    bi.prepare(frames, root)
    return bi


def test_calling_before_prepare_is_explained() -> None:
    image, points = np.zeros((64, 64, 3), np.uint8), np.zeros((68, 2), np.float32)
    with pytest.raises(RuntimeError, match=r"prepare\(frames, cache_dir\)"):
        BI()(image, blank(image), np.random.default_rng(0), {"landmarks": points})
    with pytest.raises(RuntimeError, match="prepare"):
        BI().pair(image, blank(image), np.random.default_rng(0), {"landmarks": points})


def test_a_pool_needs_two_videos(toy_frames) -> None:
    table, cache = toy_frames
    one_video = table[(table.split == "train") & (table.label == 0)]
    with pytest.raises(ValueError, match="at least two"):
        BI().prepare(one_video, cache)
    with pytest.raises(ValueError, match="no real faces"):
        BI().prepare(table[table.label == 1], cache)


def test_neighbours_never_share_the_video(pool) -> None:
    frames, _ = pool
    for k, expected in ((5, 5), (20, 20)):  # 20 faces of other videos in all
        bi = prepared(pool, k=k, shortlist=20)
        for row in frames.itertuples():
            found = bi.neighbours(row.crop_path)
            assert len(found) == expected
            assert all(not path.startswith(f"{row.video_key}/") for path in found)


def test_neighbours_are_the_exact_nearest_by_summed_distances(pool) -> None:
    """Against brute force: every other-video face, ranked by the sum of point distances."""
    frames, _ = pool
    # Crops of different sizes: the comparison happens in the crop scaled to 317 px.
    sizes = np.where(np.arange(len(frames)) % 2 == 0, 256.0, 512.0)
    frames = frames.assign(crop_x0=0.0, crop_y0=0.0, crop_x1=sizes, crop_y1=sizes)
    frames["landmarks"] = [v * (s / 256) for v, s in zip(frames["landmarks"], sizes, strict=True)]
    bi = BI(k=6, components=4)  # a crude short list (4 components), ranked exactly
    bi.prepare(frames, pool[1])
    reference = np.stack([v * (317 / s) for v, s in zip(frames.landmarks, sizes, strict=True)])
    for i, row in enumerate(frames.itertuples()):
        distances = []
        for j, other in enumerate(frames.itertuples()):
            if other.video_key != row.video_key:
                total = sum(np.hypot(*(reference[i][p] - reference[j][p])) for p in range(68))
                distances.append((total, other.crop_path))
        expected = [path for _, path in sorted(distances)[:6]]
        assert bi.neighbours(row.crop_path) == expected


def test_sampled_pairs_never_share_the_video(pool, monkeypatch: pytest.MonkeyPatch) -> None:
    frames, root = pool
    bi = prepared(pool, k=8, **QUIET)
    read = []
    original = bi._read
    monkeypatch.setattr(bi, "_read", lambda path: read.append(path) or original(path))
    for i, row in enumerate(frames.to_dict("records")):
        image = load(root, row)
        for seed in range(5):
            bi(image, blank(image), np.random.default_rng(100 * i + seed), row)
            assert not read[-1].startswith(row["video_key"] + "/")
    assert len(set(read)) > 12  # the draws spread over the neighbours

    # Not in the pool: looked up by landmarks, its own video (when given) left out.
    row = frames.iloc[0].to_dict()
    stranger = {
        "crop_path": "elsewhere.png",
        "video_key": row["video_key"],
        "landmarks": row["landmarks"],
    }
    for seed in range(30):
        chosen = bi.pick_foreground(stranger, np.random.default_rng(seed))
        assert chosen["video_key"] != row["video_key"]
    anyone = {
        bi.pick_foreground({"landmarks": row["landmarks"]}, np.random.default_rng(s))["video_key"]
        for s in range(60)
    }
    assert len(anyone) > 1


def test_toy_pool_with_few_videos(toy_frames) -> None:
    table, cache = toy_frames
    reals = table[table.label == 0]  # three videos of six frames
    bi = BI(k=100, shortlist=100)
    bi.prepare(table, cache)  # fakes are left out of the pool
    for row in reals.itertuples():
        found = bi.neighbours(row.crop_path)
        assert len(found) == 12 and all(not p.startswith(row.video_key + "/") for p in found)
    with pytest.raises(KeyError):
        bi.neighbours(table[table.label == 1].crop_path.iloc[0])


def test_blend_keeps_the_background_outside_the_mask(pool) -> None:
    frames, root = pool
    bi = prepared(pool, k=10, **EXACT)
    for i, row in enumerate(frames.iloc[::5].to_dict("records")):
        image = load(root, row)
        before = image.copy()
        for seed in range(6):
            real, fake, mask = bi.pair(
                image, blank(image), np.random.default_rng(10 * i + seed), row
            )
            assert np.array_equal(image, before) and np.array_equal(real, image)
            assert mask.dtype == np.float32 and mask.shape == image.shape[:2]
            assert mask.min() >= 0 and mask.max() <= 1 and mask.max() > 0.5
            assert fake.dtype == np.uint8 and fake.shape == image.shape
            assert np.abs(fake.astype(int) - real)[mask == 0].max() <= 1  # resampling rounding
            assert np.abs(fake.astype(int) - real)[mask > 0.9].mean() > 2


def test_final_crop_and_post_processing(pool) -> None:
    frames, root = pool
    row = frames.iloc[2].to_dict()
    image = load(root, row)
    real, fake, mask = prepared(pool, k=10).pair(image, blank(image), np.random.default_rng(0), row)
    # Rows 60/317 .. 1, columns 30/317 .. 287/317 of the 256 px crop.
    assert real.shape[:2] == fake.shape[:2] == mask.shape == (256 - 48, 256 - 2 * 24)
    loud = prepared(pool, k=10, post_prob=1.0, final_crop=None)
    quiet = prepared(pool, k=10, post_prob=0.0, final_crop=None)
    softened = []
    for seed in range(6):
        real, fake, mask = loud.pair(image, blank(image), np.random.default_rng(seed), row)
        _, clean, _ = quiet.pair(image, blank(image), np.random.default_rng(seed), row)
        softened.append(np.abs(real.astype(int) - image).mean())
        assert np.abs(fake.astype(int) - clean).mean() < 15  # degraded, not replaced
    assert min(softened) > 0  # the real gets the same kind of step, its own draw


def test_mask_stays_near_the_face(pool) -> None:
    frames, root = pool
    # A mild deformation bounds how far the mask can stray from the hull.
    bi = prepared(pool, k=10, deform_scale=(0.01, 0.02), forehead=False, **EXACT)
    for i, row in enumerate(frames.iloc[::3].to_dict("records")):
        image = load(root, row)
        hull = np.zeros(image.shape[:2], np.uint8)
        cv2.fillConvexPoly(hull, cv2.convexHull(row["landmarks"].astype(np.int32)), 1)
        # 3 sigma of the deformation (0.02 x 256 px) and the largest dilation.
        near = cv2.dilate(hull, np.ones((2 * 20 + 1, 2 * 20 + 1), np.uint8)) > 0
        assert (~near).mean() > 0.2
        for seed in range(6):
            _, _, mask = bi.pair(image, blank(image), np.random.default_rng(10 * i + seed), row)
            assert mask[~near].max() == 0
            assert mask[hull > 0].mean() > 0.1


def test_feather_is_the_polygon_distance_ramp() -> None:
    """Against a per-pixel transcription of FaceSwap's blendImages weights."""
    mask = np.zeros((90, 120), np.uint8)
    cv2.fillPoly(mask, [np.array([[20, 15], [95, 10], [110, 70], [60, 80], [45, 45], [15, 60]])], 1)
    weights = feather_weights(mask, 0.2)
    ys, xs = np.nonzero(mask)
    points = np.stack([xs, ys], 1)
    hull = cv2.convexHull(points.astype(np.int32))
    feather = 0.2 * max(points.max(0) - points.min(0))
    expected = np.zeros_like(weights)
    for x, y in points:
        distance = cv2.pointPolygonTest(hull, (float(x), float(y)), True)
        expected[y, x] = np.clip(distance / feather, 0, 1)
    assert np.abs(weights - expected).max() <= 1.0 / feather + 1e-6
    assert weights[mask == 0].max() == 0 and weights.max() == 1


def test_piecewise_deformation_and_its_grid() -> None:
    weights = _grid_weights(9, 4)  # control points at rows 0, 3, 6 and 9 (one past the end)
    assert np.allclose(weights.sum(1), 1) and weights[0, 0] == 1
    assert np.allclose(weights[3], [0, 1, 0, 0]) and np.allclose(weights[8], [0, 0, 1 / 3, 2 / 3])
    mask = np.zeros((64, 64), np.float32)
    mask[16:48, 20:40] = 1
    assert np.array_equal(piecewise_deform(mask, np.random.default_rng(0), (0.0, 0.0)), mask)
    moved = [piecewise_deform(mask, np.random.default_rng(s), (0.05, 0.05)) for s in range(8)]
    assert all(m.dtype == np.uint8 and set(np.unique(m)) <= {0, 1} for m in moved)
    assert any(not np.array_equal(m, mask) for m in moved)


def test_colour_transfer_matches_the_background_mean() -> None:
    rng = np.random.default_rng(0)
    background = rng.integers(60, 200, (40, 40, 3)).astype(np.uint8)
    foreground = np.clip(background.astype(int) + (40, -30, 10), 0, 255).astype(np.uint8)
    mask = np.zeros((40, 40), np.uint8)
    mask[10:30, 10:30] = 1
    shifted = colour_transfer(background, foreground, mask)
    inside = mask > 0
    assert np.abs(shifted[inside].mean(0) - background[inside].mean(0)).max() < 1.0


def test_same_rng_same_sample(pool) -> None:
    frames, root = pool
    bi = prepared(pool, k=10)
    row = frames.iloc[7].to_dict()
    image = load(root, row)
    first = bi.pair(image, blank(image), np.random.default_rng(3), row)
    again = bi.pair(image, blank(image), np.random.default_rng(3), row)
    copied = pickle.loads(pickle.dumps(bi)).pair(image, blank(image), np.random.default_rng(3), row)
    for a, b, c in zip(first, again, copied, strict=True):
        assert np.array_equal(a, b) and np.array_equal(a, c)
    other = bi.pair(image, blank(image), np.random.default_rng(4), row)
    assert not np.array_equal(first[2], other[2])


def test_options_off_by_default_still_work(pool) -> None:
    frames, root = pool
    row = frames.iloc[1].to_dict()
    image = load(root, row)
    bi = prepared(pool, k=10, align=True, jpeg_prob=1.0, **EXACT)
    real, fake, mask = bi.pair(image, blank(image), np.random.default_rng(0), row)
    assert fake.shape == image.shape and np.abs(fake.astype(int) - real)[mask == 0].mean() > 0
    with pytest.raises(ValueError, match="final_crop"):
        BI(final_crop=(0.6, 0.5, 0, 0))


def test_datamodule_pairs_reals_with_their_blends(toy_frames, tmp_path) -> None:
    table, cache = toy_frames
    # The toy set has one real training video; BI needs two, so every real trains here.
    table = table.assign(split=np.where(table.label == 0, "train", table.split))
    table = table.assign(landmarks=[v.reshape(-1) for v in table.landmarks])
    path = tmp_path / "toy_bi.parquet"
    table.to_parquet(path)
    dm = DeepfakeDataModule(
        cache_dir=str(cache),
        train=[str(path)],
        test=[str(path)],
        batch_size=2,
        input_size=64,
        train_frames_per_video=2,
        pseudo_fake=BI(k=10),
        val_fakes="real",  # every real trains here: none is left to make validation pairs from
    )
    dm.setup()
    assert len(dm.sets["fit"][0][1]) == 3 * 2
    torch.manual_seed(0)
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (4, 3, 64, 64)
    assert batch["label"].tolist() == [0.0, 1.0, 0.0, 1.0]
    assert batch["mask"][0::2].max() == 0 and batch["has_mask"].all()
    for real, fake, mask in zip(
        batch["image"][0::2], batch["image"][1::2], batch["mask"][1::2], strict=True
    ):
        inside = mask[0] > 128
        assert inside.any()
        assert not torch.equal(real[:, inside], fake[:, inside])
