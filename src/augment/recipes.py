"""The papers' training augmentation recipes, as albumentations 2.x pipelines.

``build_recipe(name, size)`` (or ``Recipe(name, size)``, the form a YAML
``class_path`` names) returns a :class:`Recipe`, an
:class:`~src.contracts.Augment` called as
``recipe(image, mask, rng, side) -> (image, mask)`` on an RGB uint8 ``H x W x 3``
image and a uint8 ``H x W`` mask (0-255, e.g. a blend mask; ``None`` is
allowed). A recipe has two stages: a geometric one that moves image and mask
together, then a photometric one that sees the image only, so the mask is
never touched by a colour, noise, blur or JPEG step. Without ``size`` the
output has the input's size; with ``size`` (an int or ``(height, width)``) it
has exactly that size, the random crop/scale producing it directly.

``build_pair_transform(name)`` returns a :class:`PairTransform`, called as
``pair(real, fake, rng) -> (real, fake)``: the photometric step that SBI-style
training applies to a real face and its pseudo-fake with the same random
parameters, so that the pair differs only by the blend.

Recipes are registered components (:data:`RECIPES`, a :class:`src.registry.Registry`):
a function decorated with :func:`register_recipe` takes the output size and
returns its :class:`RecipeSteps`, and its name works wherever a recipe name
does. A recipe in a user's own module is named ``"package.module:name"`` in a
config (the module is imported, which registers it)::

    @register_recipe("flip_and_jpeg")
    def flip_and_jpeg(size: tuple[int, int]) -> RecipeSteps:
        return RecipeSteps(
            geometric=[A.HorizontalFlip(p=0.5)],
            photometric=[A.ImageCompression(quality_range=(60, 100), p=0.5)],
        )

The suite's recipes (values from the papers where they give them, else from
the authors' released code, else chosen here, as marked):

``none``
    nothing (a resize to ``size`` if one is given).
``laa_net``
    LAA-Net (Nguyen et al., CVPR 2024), Sec. 4.1 lists "horizontal flipping,
    random cropping, random scaling, random erasing, color jittering, Gaussian
    noise, blurring, and JPEG compression" without values. Values and structure
    follow the authors' released configuration (``TRANSFORM`` in
    ``configs/efn4_fpn_*.yaml`` of github.com/10Ring/LAA-Net and the defaults of
    its ``GeometryTransform``/``ColorJitterTransform``):

    - geometric: horizontal flip (p 0.5); then with p 0.5 one of, equally
      likely: a random crop keeping 86-100 % of each side (code: 0-14 % cut,
      drawn per side), a random scale by 0.85-1.15, random erasing (one
      rectangle, 2-33 % of the area, aspect 0.3-3.3, filled with 0, as Zhong et
      al.); the result is resized to the output size, as the authors' final
      affine warp does. So the crop zooms in and the scale amounts to a
      resampling jitter, exactly as in their pipeline. Here the crop is
      ``RandomResizedCrop`` with area 0.74-1 and aspect 0.86-1.16, the same
      range as their two independent side cuts (choice: one interpolation
      instead of crop-then-warp). The erased rectangle is also cleared in the
      mask (their ``RandomErasing`` is a dual transform and zeroes the mask too).
    - photometric, in the authors' order: colour jitter (brightness, contrast,
      saturation 0.8-1.2, hue +-0.2; p 0.3), JPEG quality 40-100 (p 0.5), RGB
      shift +-20 (p 0.3), gamma 80-120 (p 0.5); then with p 0.5 either a
      Gaussian blur (kernel 3-7) or Gaussian noise (variance 10-50, i.e. std
      3.2-7.1 grey levels); then with p 0.5 either brightness/contrast +-0.1 or
      hue/saturation/value shifts +-20.
      Two adaptations to albumentations 2.x: the blur's sigma is drawn from
      0.8-1.4 (2.x cannot derive it from the kernel; these are OpenCV's values
      for kernels 3-7), and the noise std is drawn uniformly instead of its
      variance.
``laa_net_sbi``
    what the authors' code runs when LAA-Net is trained on SBI pseudo-fakes
    (their headline setting): the ``laa_net`` geometric stage only, applied
    with the same draw to the real and its fake (:meth:`Recipe.apply` with
    one seed); the photometric part is SBI's paired transform,
    ``build_pair_transform("laa_net_sbi")``.
``sbi``
    SBI (Shiohara & Yamasaki, CVPR 2022): horizontal flip (p 0.5) is the only
    geometric step (the authors flip the real with its landmarks before
    blending); the photometric part is the paired transform.
``recce``, ``panet``
    horizontal flip (p 0.5) only. PANet Sec. IV: "Data augmentation is
    exclusively achieved through random horizontal flipping"; for RECCE the
    suite uses the same (no RECCE paper text is at hand here to say more).
``ynet``
    the Y-net / learnable local similarity paper states no augmentation;
    horizontal flip (p 0.5) is chosen here as the minimal common one.
``prle``
    PRLE's augmentation is its own primary-region masking (elsewhere in
    :mod:`src.augment`); the paper states nothing else for its backbones, so
    horizontal flip (p 0.5) is chosen here.

Pair transforms: ``sbi`` and ``laa_net_sbi`` give SBI's, as in the authors'
code (``get_transforms`` in SBI's and LAA-Net's repositories), written with
lookup tables to albumentations 1.3.1's integer semantics in
:func:`src.augment.photometric.paired_photometric`: RGB shift +-20 (p 0.3),
hue/saturation/value shift +-0.3 (p 0.3; small but not a no-op, see that
module), brightness and contrast +-0.3 (p 0.3), JPEG quality 40-100 (p 0.5).
``SBI(variant="sbi")`` applies it itself at the blend's scale, as SBI does,
so pair it with no ``pair_transform``; LAA-Net applies it at the input size,
which is ``PairTransform("laa_net_sbi")`` in the DataModule. Every other
recipe name, ``laa_net`` included (its own photometric stage already holds
the paper's colour steps), gives the identity.

Randomness: each call draws one seed from ``rng`` and seeds the pipeline's
own generators from it, so a generator in the same state gives the same
output. All transforms of a stage share one generator, so their random
draws are independent (albumentations' ``set_random_seed`` would give every
transform the same seed and correlate them). Masks are resampled with
bilinear interpolation because they are soft blend masks.
"""

from __future__ import annotations

import importlib
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import albumentations as A
import cv2
import numpy as np

from src.augment.photometric import paired_photometric
from src.contracts import NO_SIDE_DATA, SideData, as_size
from src.errors import DFBenchError
from src.registry import Entry, Registry

Size = tuple[int, int]

# Seeds drawn from the caller's generator; numpy Generators take any non-negative int.
_SEED_HIGH = 2**63 - 1


def _flip_only(target: Size) -> list[Any]:
    return [A.HorizontalFlip(p=0.5)]


def _laa_net_geometric(target: Size) -> list[Any]:
    height, width = target
    # Authors: crop_h = (1 - c_h) H, crop_w = (1 - c_w) W with c in {0, 0.01, ..., 0.14}.
    keep = 0.86
    return [
        A.HorizontalFlip(p=0.5),
        A.OneOf(
            [
                A.RandomResizedCrop(
                    size=(height, width), scale=(keep * keep, 1.0), ratio=(keep, 1 / keep), p=0.5
                ),
                A.Sequential(
                    [A.RandomScale(scale_limit=0.15, p=1.0), A.Resize(height, width, p=1.0)],
                    p=0.5,
                ),
                A.Erasing(scale=(0.02, 1 / 3), ratio=(0.3, 1 / 0.3), fill=0, fill_mask=0, p=0.5),
            ],
            p=0.5,
        ),
    ]


def _laa_net_photometric() -> list[Any]:
    # Albumentations 1.x GaussNoise(var_limit=(10, 50)) in 2.x terms: std as a fraction of 255.
    noise_std = (math.sqrt(10) / 255, math.sqrt(50) / 255)
    return [
        A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.2, p=0.3),
        A.ImageCompression(quality_range=(40, 100), p=0.5),
        A.RGBShift(r_shift_limit=20, g_shift_limit=20, b_shift_limit=20, p=0.3),
        A.RandomGamma(gamma_limit=(80, 120), p=0.5),
        A.OneOf(
            [
                A.GaussianBlur(blur_limit=(3, 7), sigma_limit=(0.8, 1.4), p=0.3),
                A.GaussNoise(std_range=noise_std, mean_range=(0.0, 0.0), per_channel=True, p=0.3),
            ],
            p=0.5,
        ),
        A.OneOf(
            [
                A.RandomBrightnessContrast(brightness_limit=0.1, contrast_limit=0.1, p=1.0),
                A.HueSaturationValue(
                    hue_shift_limit=20, sat_shift_limit=20, val_shift_limit=20, p=1.0
                ),
            ],
            p=0.5,
        ),
    ]


PairFunction = Callable[
    [np.ndarray, np.ndarray, np.random.Generator], tuple[np.ndarray, np.ndarray]
]


@dataclass
class RecipeSteps:
    """What a recipe function returns for one output size.

    Attributes:
        geometric: albumentations transforms applied to image and mask together
            (a final resize to the output size is added when needed).
        photometric: albumentations transforms applied to the image only.
    """

    geometric: list[Any] = field(default_factory=list)
    photometric: list[Any] = field(default_factory=list)


RecipeFunction = Callable[[Size], RecipeSteps]

#: Recipe name -> function of the output size; the entry's ``pair`` default is
#: its paired photometric transform (None: the identity).
RECIPES: Registry[RecipeFunction] = Registry("augmentation recipe")


def register_recipe(
    name: str, pair: PairFunction | None = None
) -> Callable[[RecipeFunction], RecipeFunction]:
    """Decorator: register a recipe function as ``name``.

    Args:
        name: what configs call it (``Recipe(name)``); one function may carry several.
        pair: the photometric transform applied with one draw to a real and its
            pseudo-fake (``PairTransform(name)``); None gives the identity.
    """
    return RECIPES.register(name, pair=pair)


@register_recipe("none")
def _nothing(size: Size) -> RecipeSteps:
    return RecipeSteps()


@register_recipe("laa_net")
def _laa_net(size: Size) -> RecipeSteps:
    return RecipeSteps(_laa_net_geometric(size), _laa_net_photometric())


@register_recipe("laa_net_sbi", pair=paired_photometric)
def _laa_net_sbi(size: Size) -> RecipeSteps:
    return RecipeSteps(_laa_net_geometric(size))


@register_recipe("sbi", pair=paired_photometric)
@register_recipe("recce")
@register_recipe("panet")
@register_recipe("ynet")
@register_recipe("prle")
def _flip_only(size: Size) -> RecipeSteps:
    return RecipeSteps([A.HorizontalFlip(p=0.5)])


#: The recipes the suite ships (:func:`recipe_names` also lists those registered since).
RECIPE_NAMES: tuple[str, ...] = tuple(RECIPES.names())


def recipe_names() -> list[str]:
    """Every registered recipe name, sorted."""
    return RECIPES.names()


def recipe_entry(name: str) -> Entry[RecipeFunction]:
    """The registered recipe ``name``; ``"package.module:name"`` imports the module first.

    Raises:
        ValueError: unknown name, or a module that cannot be imported.
    """
    if name not in RECIPES and ":" in name:
        module, _, short = name.partition(":")
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise DFBenchError(
                f"augmentation recipe {name!r}: cannot import module {module!r} ({error})"
            ) from None
        name = short
    if name not in RECIPES:
        raise DFBenchError(
            f"unknown augmentation recipe {name!r}; valid names: {', '.join(recipe_names())}"
        )
    return RECIPES.entry(name)


def _seeded(compose: A.Compose, seed: int) -> A.Compose:
    """Give every transform of ``compose`` one shared generator pair derived from ``seed``."""
    numpy_seed, python_seed = np.random.SeedSequence(seed).generate_state(2)
    compose.set_random_state(np.random.default_rng(numpy_seed), random.Random(int(python_seed)))
    return compose


def _draw_seed(rng: np.random.Generator) -> int:
    return int(rng.integers(0, _SEED_HIGH))


class Recipe:
    """A paper's training augmentation: geometric (image + mask), then photometric (image).

    A recipe re-seeds its pipelines on every call, so one instance must not be shared
    between threads (DataLoader worker processes each get their own copy).

    Args:
        name: the recipe's name (see the module docstring).
        size: output ``(height, width)`` or an int; ``None`` keeps the input size.
    """

    def __init__(self, name: str, size: int | tuple[int, int] | None = None) -> None:
        self.steps = recipe_entry(name).obj
        self.name = name
        self.size: Size | None = None if size is None else as_size(size)
        # The geometric stage depends on the input and output sizes: built once per pair of them.
        self._geometric: dict[tuple[Size, Size], A.Compose | None] = {}
        # Building one now makes a bad argument fail at construction, not in a worker.
        first = self.size or (256, 256)
        photometric = self.steps(first).photometric
        self.photometric: A.Compose | None = (
            A.Compose(photometric, strict=True) if photometric else None
        )
        self.geometric_pipeline(first, first)

    def __repr__(self) -> str:
        return f"Recipe({self.name!r}, size={self.size})"

    def geometric_pipeline(self, input_size: Size, output_size: Size) -> A.Compose | None:
        """The geometric stage for ``input_size`` images producing ``output_size`` ones."""
        key = (tuple(input_size), tuple(output_size))
        if key not in self._geometric:
            transforms = list(self.steps(output_size).geometric)
            if input_size != output_size:
                # Steps that kept the size (flip, erasing, nothing) still have to reach it.
                transforms.append(A.Resize(*output_size, p=1.0))
            self._geometric[key] = (
                A.Compose(transforms, strict=True, mask_interpolation=cv2.INTER_LINEAR)
                if transforms
                else None
            )
        return self._geometric[key]

    def __call__(
        self,
        image: np.ndarray,
        mask: np.ndarray,
        rng: np.random.Generator,
        side: SideData = NO_SIDE_DATA,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Augment ``image`` and ``mask`` (may be None) with one seed drawn from ``rng``.

        ``side`` is unused: the recipes need only the pixels.
        """
        return self.apply(image, mask, _draw_seed(rng))

    def apply(
        self,
        image: np.ndarray,
        mask: np.ndarray | None,
        seed: int,
        photometric: bool = True,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Augment with the random draws fixed by ``seed``.

        The same seed gives the same geometric draw whatever the image, which is how
        a real face and its pseudo-fake get one crop/flip together.

        Args:
            image: RGB uint8 ``H x W x 3``.
            mask: uint8 ``H x W`` or ``None``.
            seed: non-negative int.
            photometric: ``False`` skips the photometric stage.

        Returns:
            ``(image, mask)``; the mask is ``None`` if it was.
        """
        geometric_seed, photometric_seed = np.random.SeedSequence(seed).generate_state(2)
        input_size = (int(image.shape[0]), int(image.shape[1]))
        geometric = self.geometric_pipeline(input_size, self.size or input_size)
        if geometric is not None:
            data = {"image": image} if mask is None else {"image": image, "mask": mask}
            data = _seeded(geometric, int(geometric_seed))(**data)
            image, mask = data["image"], data.get("mask")
        if photometric and self.photometric is not None:
            image = _seeded(self.photometric, int(photometric_seed))(image=image)["image"]
        return image, mask


class PairTransform:
    """Photometric transforms applied with identical random parameters to a real and its fake.

    Args:
        name: a recipe name; those without a paired step give the identity.
    """

    def __init__(self, name: str) -> None:
        self.function: PairFunction | None = recipe_entry(name).defaults["pair"]
        self.name = name

    def __repr__(self) -> str:
        return f"PairTransform({self.name!r})"

    def __call__(
        self, real: np.ndarray, fake: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(real, fake)`` after one random draw from ``rng`` applied to both."""
        return self.apply(real, fake, _draw_seed(rng))

    def apply(self, real: np.ndarray, fake: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """``(real, fake)`` transformed with the random draws fixed by ``seed``."""
        if self.function is None:
            return real, fake
        return self.function(real, fake, np.random.default_rng(seed))


def build_recipe(name: str, size: int | tuple[int, int] | None = None) -> Recipe:
    """The training augmentation recipe ``name``.

    Args:
        name: a registered recipe (``none, laa_net, laa_net_sbi, sbi, recce, panet,
            ynet, prle`` ship with the suite) or ``"package.module:name"``.
        size: output size (int or ``(height, width)``); ``None`` keeps the input size.

    Raises:
        ValueError: unknown ``name``.
    """
    return Recipe(name, size)


def build_pair_transform(name: str) -> PairTransform:
    """The paired photometric transform of recipe ``name`` (identity if it has none).

    Raises:
        ValueError: unknown ``name``.
    """
    return PairTransform(name)
