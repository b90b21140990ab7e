"""Augmentation registry: named albumentations pipelines, one per study.

Pipelines work on uint8 HxWx3 arrays and never normalise: normalisation happens once per
batch on the device. Validation and test data are never augmented.
"""

from __future__ import annotations

from collections.abc import Callable

import albumentations as A
from trainables.errors import UnknownNameError

AUGMENTATIONS: dict[str, Callable[[], A.Compose | None]] = {}


def register_augmentation(name: str):
    def decorator(factory):
        AUGMENTATIONS[name] = factory
        return factory
    return decorator


def build_augmentation(name: str, *, seed: int | None = None) -> A.Compose | None:
    """The pipeline registered as ``name`` (None for ``none``); unknown names list valid ones.

    ``seed`` seeds the pipeline's own random generator (albumentations draws from it, not from
    the global numpy or torch state that ``seed_everything`` sets), so a trial's augmented
    images repeat run after run.
    """
    if name not in AUGMENTATIONS:
        raise UnknownNameError(f"unknown augmentation {name!r}; valid augmentations: "
                               f"{', '.join(sorted(AUGMENTATIONS))}")
    pipeline = AUGMENTATIONS[name]()
    if pipeline is not None and seed is not None:
        pipeline.set_random_seed(seed)
    return pipeline


@register_augmentation("none")
def no_augmentation() -> None:
    return None


@register_augmentation("bccd_light")
def bccd_light() -> A.Compose:
    """Seed 000 §2.3: flips p=0.3, rotation ±15°, jitter brightness/contrast 0.1, saturation 0.05."""
    return A.Compose([
        A.HorizontalFlip(p=0.3),
        A.VerticalFlip(p=0.3),
        A.Rotate(limit=15, border_mode=0, p=1.0),
        A.ColorJitter(brightness=0.1, contrast=0.1, saturation=0.05, hue=0.0, p=1.0),
    ])


@register_augmentation("segmentation_flips")
def segmentation_flips() -> A.Compose:
    """Flips and right-angle rotations, applied to an image and its mask together (medsweep's
    choice: seed 004 names no segmentation augmentation; these keep cell shapes exact)."""
    return A.Compose([A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5), A.RandomRotate90(p=0.5)])


@register_augmentation("all_transfer")
def all_transfer() -> A.Compose:
    """Seed 001 (STUDIES §2 Augmentation): horizontal flip, rotation ±20°, zoom ±20%, contrast ±20%."""
    return A.Compose([
        A.HorizontalFlip(p=0.5),
        A.Affine(rotate=(-20, 20), scale=(0.8, 1.2), border_mode=0, p=1.0),
        A.RandomBrightnessContrast(brightness_limit=0.0, contrast_limit=0.2, p=1.0),
    ])


@register_augmentation("all_inception_nasnet")
def all_inception_nasnet() -> A.Compose:
    """Seed 004 (STUDIES §5 Augmentation): brightness and contrast ±10%, rotation ±20°, JPEG
    quality 50-100, horizontal and vertical flips."""
    return A.Compose([
        A.RandomBrightnessContrast(brightness_limit=0.1, contrast_limit=0.1, p=1.0),
        A.Rotate(limit=20, border_mode=0, p=1.0),
        A.ImageCompression(quality_range=(50, 100), p=1.0),
        A.HorizontalFlip(p=0.5),
        A.VerticalFlip(p=0.5),
    ])


def _chestmnist(*, erasing: bool) -> A.Compose:
    """Seed 002 (STUDIES §3 Augmentation): rotation 15°, translation 10%, horizontal flip 0.5,
    brightness/contrast 0.2, Gaussian blur (kernel 3, sigma 0.1-0.5), optionally random erasing."""
    steps = [
        A.Affine(rotate=(-15, 15), translate_percent=(-0.1, 0.1), border_mode=0, p=1.0),
        A.HorizontalFlip(p=0.5),
        A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=1.0),
        A.GaussianBlur(blur_limit=(3, 3), sigma_limit=(0.1, 0.5), p=1.0),
    ]
    if erasing:
        steps.append(A.Erasing(p=0.5))
    return A.Compose(steps)


@register_augmentation("chestmnist")
def chestmnist() -> A.Compose:
    return _chestmnist(erasing=False)


@register_augmentation("chestmnist_erasing")
def chestmnist_erasing() -> A.Compose:
    return _chestmnist(erasing=True)
