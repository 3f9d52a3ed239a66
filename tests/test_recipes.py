"""Training recipes: determinism, sizes, mask alignment, paired transforms, no 1.x arguments."""

from __future__ import annotations

import warnings

import albumentations as A
import cv2
import numpy as np
import pytest
from skimage.data import astronaut

from src.augment.photometric import paired_photometric
from src.augment.recipes import (
    RECIPE_NAMES,
    RECIPES,
    Recipe,
    RecipeSteps,
    build_pair_transform,
    build_recipe,
    recipe_names,
    register_recipe,
)

GEOMETRIC_ONLY = [name for name in RECIPE_NAMES if name != "laa_net"]
PAIRED = ["sbi", "laa_net_sbi"]
SIZES = [None, 96, (80, 112)]
SEEDS = range(16)


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    return cv2.resize(astronaut(), (128, 128), interpolation=cv2.INTER_AREA)


def run(recipe: Recipe, image: np.ndarray, mask: np.ndarray | None, seed: int):
    return recipe(image, mask, np.random.default_rng(seed))


def test_names() -> None:
    shipped = ["laa_net", "laa_net_sbi", "none", "panet", "prle", "recce", "sbi", "ynet"]
    assert list(RECIPE_NAMES) == shipped
    with pytest.raises(ValueError, match="'LAA-Net'; valid names: laa_net, laa_net_sbi, none"):
        build_recipe("LAA-Net")
    with pytest.raises(ValueError, match="valid names"):
        build_pair_transform("nope")
    with pytest.raises(ValueError, match="cannot import module 'no_such_module'"):
        build_recipe("no_such_module:flip")


def test_the_configs_recipe_names_are_registered() -> None:
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    texts = [
        p.read_text()
        for folder in ("configs", "benchmarks")
        for p in (root / folder).rglob("*.yaml")
    ]
    used = set()
    for text in texts:
        for line in text.splitlines():
            if "recipes.Recipe" in line or "recipes.PairTransform" in line:
                used |= set(re.findall(r"name: (\w+)", line))
    prle = (root / "configs/augment/prle.yaml").read_text()
    used |= set(re.findall(r"init_args: \{name: (\w+)\}", prle))
    assert used >= {"laa_net", "laa_net_sbi", "recce", "prle"}
    assert used <= set(RECIPE_NAMES)


def test_a_recipe_registered_by_one_function_is_built_by_name(face: np.ndarray) -> None:
    @register_recipe("test_vflip", pair=paired_photometric)
    def vertical_flip(size: tuple[int, int]) -> RecipeSteps:
        return RecipeSteps(geometric=[A.VerticalFlip(p=1.0)], photometric=[A.InvertImg(p=1.0)])

    try:
        assert "test_vflip" in recipe_names() and "test_vflip" not in RECIPE_NAMES
        mask = face[..., 0].copy()
        image, out_mask = build_recipe("test_vflip", 64)(face, mask, np.random.default_rng(0))
        flipped = cv2.resize(face[::-1], (64, 64), interpolation=cv2.INTER_LINEAR)
        np.testing.assert_array_equal(image, 255 - flipped)
        np.testing.assert_array_equal(out_mask, flipped[..., 0])
        assert build_pair_transform("test_vflip").function is paired_photometric
        # The module:name form imports the module that registers the recipe.
        assert Recipe(f"{__name__}:test_vflip").steps is vertical_flip
    finally:
        RECIPES.unregister("test_vflip")


@pytest.mark.parametrize("name", RECIPE_NAMES)
def test_same_rng_same_output(face: np.ndarray, name: str) -> None:
    recipe = build_recipe(name)
    mask = face[..., 1].copy()
    outputs = []
    for seed in SEEDS:
        image_a, mask_a = run(recipe, face, mask, seed)
        image_b, mask_b = run(recipe, face, mask, seed)
        np.testing.assert_array_equal(image_a, image_b)
        np.testing.assert_array_equal(mask_a, mask_b)
        outputs.append(image_a.tobytes())
    # Different seeds differ: a flip-only recipe has exactly two outcomes.
    expected = {"none": 1, "sbi": 2, "recce": 2, "panet": 2, "ynet": 2, "prle": 2}
    distinct = len(set(outputs))
    assert distinct == expected[name] if name in expected else distinct > 2


@pytest.mark.parametrize("name", RECIPE_NAMES)
@pytest.mark.parametrize("size", SIZES)
def test_output_size(face: np.ndarray, name: str, size) -> None:
    recipe = build_recipe(name, size)
    expected = face.shape[:2] if size is None else (size, size) if isinstance(size, int) else size
    for seed in SEEDS:
        image, mask = run(recipe, face, face[..., 0].copy(), seed)
        assert image.shape == (*expected, 3) and image.dtype == np.uint8
        assert mask.shape == tuple(expected) and mask.dtype == np.uint8


@pytest.mark.parametrize("name", GEOMETRIC_ONLY)
@pytest.mark.parametrize("size", SIZES)
def test_mask_follows_image_exactly(face: np.ndarray, name: str, size) -> None:
    # The mask *is* the red channel: after any geometric step it must still be.
    recipe = build_recipe(name, size)
    flipped = 0
    for seed in SEEDS:
        image, mask = run(recipe, face, face[..., 0].copy(), seed)
        np.testing.assert_array_equal(mask, image[..., 0])
        if size is None:
            flipped += np.array_equal(image, face[:, ::-1])
    if size is None and name != "none":
        assert flipped > 0, "no flip in 16 draws: the alignment check saw no geometry"


def test_mask_follows_image_with_photometric_steps() -> None:
    # A white square on black, left of centre: the mask marks it. Colour, noise, blur and
    # JPEG keep it the brightest region, so wherever it moved, the mask must have moved too.
    image = np.zeros((128, 128, 3), np.uint8)
    image[24:72, 8:56] = 255
    mask = np.zeros((128, 128), np.uint8)
    mask[24:72, 8:56] = 255
    recipe = build_recipe("laa_net", 112)
    checked = moved = 0
    for seed in range(40):
        out, out_mask = run(recipe, image, mask, seed)
        if out_mask.std() == 0:  # the erasing step wiped the whole square: nothing to align
            continue
        luma = out.astype(np.float64).mean(axis=2)
        aligned = np.corrcoef(luma.ravel(), out_mask.ravel())[0, 1]
        mirrored = np.corrcoef(luma[:, ::-1].ravel(), out_mask.ravel())[0, 1]
        assert aligned > 0.8 and aligned > mirrored + 0.5, (seed, aligned, mirrored)
        checked += 1
        moved += out_mask[:, 64:].mean() > out_mask[:, :64].mean()
    assert checked > 30 and moved > 0


def test_photometric_steps_leave_the_mask_alone(face: np.ndarray) -> None:
    recipe = build_recipe("laa_net")
    mask = face[..., 2].copy()
    photometric_changed = 0
    for seed in SEEDS:
        image, out_mask = recipe.apply(face, mask, seed)
        geometric_image, geometric_mask = recipe.apply(face, mask, seed, photometric=False)
        np.testing.assert_array_equal(out_mask, geometric_mask)
        np.testing.assert_array_equal(geometric_mask, geometric_image[..., 2])
        photometric_changed += not np.array_equal(image, geometric_image)
    assert photometric_changed > SEEDS.stop // 2


def test_one_seed_one_geometry_for_a_real_and_its_fake(face: np.ndarray) -> None:
    recipe = build_recipe("laa_net_sbi", 96)
    other = 255 - face
    mask = face[..., 0].copy()
    for seed in SEEDS:
        _, mask_real = recipe.apply(face, mask, seed)
        _, mask_fake = recipe.apply(other, mask, seed)
        np.testing.assert_array_equal(mask_real, mask_fake)


def test_mask_is_optional(face: np.ndarray) -> None:
    image, mask = run(build_recipe("laa_net", 64), face, None, 0)
    assert mask is None and image.shape == (64, 64, 3)


@pytest.mark.parametrize("name", PAIRED)
def test_pair_transform_identical_parameters(face: np.ndarray, name: str) -> None:
    pair = build_pair_transform(name)
    # A fake that differs from the real only inside a block (a stand-in for the blend).
    fake = face.copy()
    fake[48:80, 48:80] = 255 - fake[48:80, 48:80]
    # JPEG works on 16 px macro-blocks and its chroma upsampling reaches one block further.
    outside = np.ones(face.shape[:2], bool)
    outside[32:96, 32:96] = False
    changed = 0
    for seed in SEEDS:
        real_a, real_b = pair(face, face.copy(), np.random.default_rng(seed))
        np.testing.assert_array_equal(real_a, real_b)
        out_real, out_fake = pair(face, fake, np.random.default_rng(seed))
        np.testing.assert_array_equal(out_real, real_a)
        np.testing.assert_array_equal(out_real[outside], out_fake[outside])
        changed += not np.array_equal(out_real, face)
    assert changed > SEEDS.stop // 2


@pytest.mark.parametrize("name", sorted(set(RECIPE_NAMES) - set(PAIRED)))
def test_pair_transform_identity_for_methods_without_one(face: np.ndarray, name: str) -> None:
    real, fake = build_pair_transform(name)(face, face[::-1], np.random.default_rng(0))
    assert real is face and np.array_equal(fake, face[::-1])


def test_no_warnings_about_arguments(face: np.ndarray) -> None:
    mask = face[..., 0].copy()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for name in RECIPE_NAMES:
            for size in SIZES:
                recipe = build_recipe(name, size)
                for seed in range(8):
                    run(recipe, face, mask, seed)
            pair = build_pair_transform(name)
            for seed in range(8):
                pair(face, face, np.random.default_rng(seed))
    messages = [f"{w.category.__name__}: {w.message}" for w in caught]
    assert not [w for w in caught if issubclass(w.category, UserWarning)], messages
