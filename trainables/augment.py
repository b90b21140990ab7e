"""Augmentation registry: one entry per study's pipeline, each defined twice side by side.

``cpu`` is an albumentations pipeline over one uint8 HxWx3 sample (the per-sample loader, and
detection); ``device`` is its kornia twin over a whole float NCHW batch in [0, 1] on the
trial's device, with per-sample random parameters (``trainables.device_data``). The twins use
the same transforms, probabilities and ranges (tests/test_device_augment.py checks them on
many draws). Pipelines never normalise: normalisation happens once per batch on the device.
Validation and test data are never augmented.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import albumentations as A
import kornia.augmentation as K

from trainables.registries import Registry


@dataclass(frozen=True)
class Augmentation:
    """A named pipeline: the albumentations factory and its kornia twin's (None: no twin, the
    trial trains through the per-sample loader)."""

    name: str
    cpu: Callable[[], A.Compose | None]
    device: Callable[[], K.AugmentationSequential | None] | None


AUGMENTATIONS: Registry[Augmentation] = Registry("augmentation")


def register_augmentation(name: str, *, device: Callable[[], K.AugmentationSequential | None] | None):
    """Register the decorated albumentations factory as ``name``, with its kornia twin."""
    def decorator(factory):
        AUGMENTATIONS.add(name, Augmentation(name, factory, device))
        return factory
    return decorator


def get_augmentation(name: str) -> Augmentation:
    """The entry registered as ``name``; unknown names list the valid ones."""
    return AUGMENTATIONS.get(name)


def build_augmentation(name: str, *, seed: int | None = None) -> A.Compose | None:
    """The albumentations pipeline registered as ``name`` (None for ``none``).

    ``seed`` seeds the pipeline's own random generator (albumentations draws from it, not from
    the global numpy or torch state that ``seed_everything`` sets), so a trial's augmented
    images repeat run after run.
    """
    pipeline = get_augmentation(name).cpu()
    if pipeline is not None and seed is not None:
        pipeline.set_random_seed(seed)
    return pipeline


def build_device_augmentation(name: str) -> K.AugmentationSequential | None:
    """The kornia twin of the pipeline registered as ``name`` (None for ``none``); a pipeline
    without a twin is an error (``trainables.device_data`` checks ``device`` first)."""
    entry = get_augmentation(name)
    if entry.device is None:
        raise ValueError(f"augmentation {name!r} has no device version; train with data_path=loader")
    return entry.device()


def no_device_augmentation() -> None:
    return None


@register_augmentation("none", device=no_device_augmentation)
def no_augmentation() -> None:
    return None


def bccd_light_device() -> K.AugmentationSequential:
    """``bccd_light`` on a batch: the same flips, rotation and torchvision-style colour jitter
    (brightness/contrast/saturation factors in 1 ± limit, applied in a random order)."""
    return K.AugmentationSequential(
        K.RandomHorizontalFlip(p=0.3),
        K.RandomVerticalFlip(p=0.3),
        K.RandomRotation(15.0, p=1.0),
        K.ColorJitter(brightness=0.1, contrast=0.1, saturation=0.05, hue=0.0, p=1.0),
    )


@register_augmentation("bccd_light", device=bccd_light_device)
def bccd_light() -> A.Compose:
    """Seed 000 §2.3: flips p=0.3, rotation ±15°, jitter brightness/contrast 0.1, saturation 0.05."""
    return A.Compose([
        A.HorizontalFlip(p=0.3),
        A.VerticalFlip(p=0.3),
        A.Rotate(limit=15, border_mode=0, p=1.0),
        A.ColorJitter(brightness=0.1, contrast=0.1, saturation=0.05, hue=0.0, p=1.0),
    ])


def segmentation_flips_device() -> K.AugmentationSequential:
    """``segmentation_flips`` on a batch of images and their masks. kornia rounds a uniform
    draw of quarter turns: (-1.5, 2.5) gives -1, 0, 1 and 2 turns, 1/4 each, the same rotations
    as albumentations' 0-3 (-1 turn is 3)."""
    return K.AugmentationSequential(K.RandomHorizontalFlip(p=0.5), K.RandomVerticalFlip(p=0.5),
                       K.RandomRotation90(times=(-1.5, 2.5), p=0.5))


@register_augmentation("segmentation_flips", device=segmentation_flips_device)
def segmentation_flips() -> A.Compose:
    """Flips and right-angle rotations, applied to an image and its mask together (medsweep's
    choice: seed 004 names no segmentation augmentation; these keep cell shapes exact)."""
    return A.Compose([A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5), A.RandomRotate90(p=0.5)])


def all_transfer_device() -> K.AugmentationSequential:
    """``all_transfer`` on a batch; albumentations' contrast is a plain multiplication by
    1 + limit, as kornia's ``RandomContrast``."""
    return K.AugmentationSequential(
        K.RandomHorizontalFlip(p=0.5),
        K.RandomAffine(degrees=20.0, scale=(0.8, 1.2), p=1.0),
        K.RandomContrast(contrast=(0.8, 1.2), p=1.0),
    )


@register_augmentation("all_transfer", device=all_transfer_device)
def all_transfer() -> A.Compose:
    """Seed 001 (STUDIES §2 Augmentation): horizontal flip, rotation ±20°, zoom ±20%, contrast ±20%."""
    return A.Compose([
        A.HorizontalFlip(p=0.5),
        A.Affine(rotate=(-20, 20), scale=(0.8, 1.2), border_mode=0, p=1.0),
        A.RandomBrightnessContrast(brightness_limit=0.0, contrast_limit=0.2, p=1.0),
    ])


def all_inception_nasnet_device() -> K.AugmentationSequential:
    """``all_inception_nasnet`` on a batch: contrast (a multiplication) then brightness (an
    addition of limit x 255, albumentations' ``brightness_by_max``), kornia's differentiable
    JPEG codec for the re-compression."""
    return K.AugmentationSequential(
        K.RandomContrast(contrast=(0.9, 1.1), p=1.0),
        K.RandomBrightness(brightness=(0.9, 1.1), p=1.0),
        K.RandomRotation(20.0, p=1.0),
        K.RandomJPEG(jpeg_quality=(50.0, 100.0), p=1.0),
        K.RandomHorizontalFlip(p=0.5),
        K.RandomVerticalFlip(p=0.5),
    )


@register_augmentation("all_inception_nasnet", device=all_inception_nasnet_device)
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


def _chestmnist_device(*, erasing: bool) -> K.AugmentationSequential:
    """``_chestmnist`` on a batch; erasing with albumentations' defaults (area 2-33%, aspect
    ratio 0.3-3.3, filled with 0, p=0.5)."""
    steps = [
        K.RandomAffine(degrees=15.0, translate=(0.1, 0.1), p=1.0),
        K.RandomHorizontalFlip(p=0.5),
        K.RandomContrast(contrast=(0.8, 1.2), p=1.0),
        K.RandomBrightness(brightness=(0.8, 1.2), p=1.0),
        K.RandomGaussianBlur(kernel_size=(3, 3), sigma=(0.1, 0.5), p=1.0),
    ]
    if erasing:
        steps.append(K.RandomErasing(scale=(0.02, 0.33), ratio=(0.3, 3.3), value=0.0, p=0.5))
    return K.AugmentationSequential(*steps)


@register_augmentation("chestmnist", device=lambda: _chestmnist_device(erasing=False))
def chestmnist() -> A.Compose:
    return _chestmnist(erasing=False)


@register_augmentation("chestmnist_erasing", device=lambda: _chestmnist_device(erasing=True))
def chestmnist_erasing() -> A.Compose:
    return _chestmnist(erasing=True)
