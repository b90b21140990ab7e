"""Augmentation registry: named albumentations pipelines, one per study.

Pipelines work on uint8 HxWx3 arrays and never normalise: normalisation happens once per
batch on the device. Validation and test data are never augmented.
"""

from __future__ import annotations

from collections.abc import Callable

import albumentations as A

AUGMENTATIONS: dict[str, Callable[[], A.Compose | None]] = {}


def register_augmentation(name: str):
    def decorator(factory):
        AUGMENTATIONS[name] = factory
        return factory
    return decorator


def build_augmentation(name: str) -> A.Compose | None:
    """The pipeline registered as ``name`` (None for ``none``); unknown names list valid ones."""
    if name not in AUGMENTATIONS:
        raise KeyError(f"unknown augmentation {name!r}; valid augmentations: "
                       f"{', '.join(sorted(AUGMENTATIONS))}")
    return AUGMENTATIONS[name]()


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
