"""The synthetic face data and the DataModule base: the batch contract, determinism, normalisation."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from src.contracts import BATCH_KEYS, InputContract
from src.synthetic import FAKE_STYLES, SyntheticFaceDataModule, SyntheticFaceDataset
from src.synthetic.frames import compose


def make_dm(**kwargs) -> SyntheticFaceDataModule:
    args = dict(
        train_videos=6, val_videos=4, test_videos=4, frames_per_video=3, batch_size=4, input_size=48
    )
    dm = SyntheticFaceDataModule(**(args | kwargs))
    dm.setup()
    return dm


def test_batches_follow_the_contract() -> None:
    dm = make_dm()
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == set(BATCH_KEYS)
    assert batch["image"].shape == (4, 3, 48, 48) and batch["image"].dtype == torch.uint8
    assert batch["mask"].shape == (4, 1, 48, 48) and batch["mask"].dtype == torch.uint8
    for key in ("sample_idx", "video_idx", "frame_idx"):
        assert batch[key].dtype == torch.long
    assert batch["has_mask"].dtype == torch.bool
    batch = dm.on_after_batch_transfer(batch, 0)
    assert batch["image"].dtype == torch.float32 and batch["mask"].dtype == torch.float32
    assert batch["mask"].min() >= 0 and batch["mask"].max() <= 1


def test_items_are_consistent_with_their_video() -> None:
    ds = make_dm().sets["test"][0][1]
    assert len(ds) == 4 * 3
    for index in range(len(ds)):
        item = ds[index]
        assert item["sample_idx"] == index
        assert (item["video_idx"], item["frame_idx"]) == divmod(index, 3)
        fake = bool(item["label"])
        assert bool(item["has_mask"])
        assert (item["mask"].max() > 0) == fake
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_deterministic_from_the_seed_and_split() -> None:
    a = SyntheticFaceDataset("train", 4, 2, 32, FAKE_STYLES["blend"], seed=3)
    b = SyntheticFaceDataset("train", 4, 2, 32, FAKE_STYLES["blend"], seed=3)
    c = SyntheticFaceDataset("train", 4, 2, 32, FAKE_STYLES["blend"], seed=4)
    d = SyntheticFaceDataset("test_blend", 4, 2, 32, FAKE_STYLES["blend"], seed=3)
    assert all(torch.equal(a[i]["image"], b[i]["image"]) for i in range(len(a)))
    assert not torch.equal(a[0]["image"], c[0]["image"])
    assert a.identities != d.identities  # held-out people in the test set
    # Frames of one video differ (head motion), but not wildly.
    first, second = a[0]["image"].float(), a[1]["image"].float()
    assert 0 < (first - second).abs().mean() < 40


def test_fake_fraction_and_video_keys() -> None:
    ds = SyntheticFaceDataset("val", 10, 1, 32, FAKE_STYLES["blend"], fake_fraction=0.3)
    assert ds.labels.sum() == 3
    assert len(set(ds.video_keys)) == 10
    assert (ds.sources != ds.targets).all()


def test_fake_equals_the_real_target_frame_outside_the_mask() -> None:
    ds = SyntheticFaceDataset("val", 6, 2, 64, FAKE_STYLES["blend"], fake_fraction=1.0)
    fakes = [ds.render(index) for index in range(len(ds))]
    ds.labels[:] = 0  # the same items rendered as the real target videos
    for index, (fake, mask) in enumerate(fakes):
        real, real_mask = ds.render(index)
        assert not real_mask.any()
        outside = mask == 0
        assert 0.5 < outside.mean() < 0.95 and mask.max() > 0.99
        assert np.array_equal(fake[outside], real[outside])
        # Inside the mask the face is another person's: it differs clearly.
        inside = mask > 0.99
        assert np.abs(fake[inside].astype(int) - real[inside].astype(int)).mean() > 5


def test_a_frame_is_the_shared_person_model_rendered_at_the_input_size() -> None:
    ds = SyntheticFaceDataset("test", 2, 3, 48, FAKE_STYLES["blend"], fake_fraction=0.0)
    video, frame = 1, 2
    person = ds.person(int(ds.targets[video]))
    assert person.rgba.shape[0] < 200  # drawn around the head at about the output size
    scene = ds._clip(video, frame).scene
    expected, landmarks = compose(
        person, ds.motions[video], scene, frame, np.random.default_rng([*ds._seed, 2, video, frame])
    )
    image, _ = ds.render(video * 3 + frame)
    assert image.shape == (48, 48, 3) and np.array_equal(image, expected)
    # Framed as a face crop: the jaw spans about 0.5-0.75 of the image.
    jaw = np.linalg.norm(landmarks[16] - landmarks[0]) / 48
    assert 0.4 < jaw < 0.8


def test_blend_pairs_people_of_different_skin() -> None:
    ds = SyntheticFaceDataset("train", 40, 1, 32, FAKE_STYLES["blend"])
    skins = np.array([ds.identities[i].skin_gain for i in range(len(ds.identities))])
    gaps = np.linalg.norm(skins[ds.targets] - skins[ds.sources], axis=1)
    assert (gaps >= FAKE_STYLES["blend"].min_skin_gap).all()
    matched = SyntheticFaceDataset("train", 40, 1, 32, FAKE_STYLES["matched"])
    assert (matched.sources != matched.targets).all()


def test_contract_comes_from_the_attached_detector() -> None:
    dm = SyntheticFaceDataModule()
    dm.trainer = SimpleNamespace(
        lightning_module=SimpleNamespace(
            input_contract=InputContract((40, 40), (0.1, 0.2, 0.3), (0.5, 0.25, 0.125))
        )
    )
    assert dm.contract.input_size == (40, 40)
    image = torch.full((1, 3, 2, 2), 51, dtype=torch.uint8)  # 0.2 after /255
    out = dm.normalise({"image": image})["image"]
    expected = (torch.tensor([0.2, 0.2, 0.2]) - torch.tensor([0.1, 0.2, 0.3])) / torch.tensor(
        [0.5, 0.25, 0.125]
    )
    assert torch.allclose(out[0, :, 0, 0], expected, atol=1e-6)
    dm.setup("fit")
    assert dm.sets["fit"][0][1][0]["image"].shape == (3, 40, 40)
    # An explicit size overrides the detector's.
    assert SyntheticFaceDataModule(input_size=24).contract.input_size == (24, 24)


def test_several_named_test_sets() -> None:
    dm = make_dm(test_sets=["blend", "matched", "hard"])
    assert dm.test_set_names == ["blend", "matched", "hard"]
    assert len(dm.test_dataloader()) == 3
    assert dm.video_keys("test", 1)[0] == "synthetic/test_matched/00000"
    with pytest.raises(ValueError, match="unknown fake styles"):
        SyntheticFaceDataModule(test_sets=["nope"])


def test_resampled_training_items_are_fresh_but_seeded() -> None:
    ds = SyntheticFaceDataset("train", 6, 1, 32, FAKE_STYLES["blend"], resample=True)
    torch.manual_seed(0)
    first = [ds[i] for i in range(6)]
    again = [ds[i] for i in range(6)]
    assert not any(torch.equal(a["image"], b["image"]) for a, b in zip(first, again, strict=True))
    assert [a["label"] for a in first] == [b["label"] for b in again]
    torch.manual_seed(0)
    replay = [ds[i] for i in range(6)]
    assert all(torch.equal(a["image"], b["image"]) for a, b in zip(first, replay, strict=True))
    # Validation and test sets never resample.
    dm = make_dm(resample_train=True)
    assert dm.sets["fit"][0][1].resample and not dm.sets["validate"][0][1].resample


class _ThreadReport(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> dict:
        import cv2

        return {"torch": torch.get_num_threads(), "cv2": cv2.getNumThreads()}


def test_loader_workers_run_single_threaded() -> None:
    dm = SyntheticFaceDataModule(num_workers=1)
    (report,) = dm._loader(_ThreadReport(), batch_size=1, shuffle=False)
    assert int(report["torch"]) == 1 and int(report["cv2"]) <= 1


def test_flip_labels_swaps_every_label_and_keeps_every_picture() -> None:
    honest, lying = make_dm(), make_dm(flip_labels=True)
    for stage in ("fit", "validate", "test"):
        for (_, truth, _), (_, flipped, _) in zip(
            honest.sets[stage], lying.sets[stage], strict=True
        ):
            labels = [truth[i]["label"] for i in range(len(truth))]
            for i in range(len(truth)):
                item, swapped = truth[i], flipped[i]
                assert swapped["label"] == 1 - item["label"]
                if not truth.resample:
                    assert np.array_equal(swapped["image"], item["image"])
            assert 0 < sum(labels) < len(labels)  # both classes are there to swap
