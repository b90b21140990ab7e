"""In-memory classification data handed to trials through Ray's object store."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Self

import numpy as np

from trainables.errors import MedsweepError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class DatasetError(MedsweepError, ValueError):
    """A dataset on disk, or a dataset setting, that cannot be used as it stands; the message
    names the file, folder or value and how to fix it."""


@dataclass(frozen=True)
class SplitArrays:
    """One split as decoded uint8 images (N x H x W x 3), integer labels and source ids.

    ``sources`` names the image each sample came from, so subsets and leakage checks can work
    per image rather than per patch.
    """

    images: np.ndarray
    labels: np.ndarray
    sources: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, indices: np.ndarray) -> SplitArrays:
        return SplitArrays(self.images[indices], self.labels[indices], self.sources[indices])


class SplitSelection:
    """Choosing splits and source images, shared by the frozen dataclasses that hold a dataset's
    ``class_names`` and ``splits`` (name → a split with ``sources`` and ``take``)."""

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def only(self, *names: str) -> Self:
        """The same data restricted to the named splits (sweeps never see ``test``)."""
        unknown = sorted(set(names) - set(self.splits))
        if unknown:
            raise KeyError(f"unknown split(s) {unknown}; this dataset has {sorted(self.splits)}")
        return replace(self, splits={n: self.splits[n] for n in names})

    def subset_sources(self, per_split: int, *, seed: int) -> Self:
        """Keep the samples of ``per_split`` randomly chosen source images in each split."""
        rng = np.random.default_rng(seed)
        kept = {}
        for name, split in self.splits.items():
            sources = np.unique(split.sources)
            chosen = rng.choice(sources, size=min(per_split, len(sources)), replace=False)
            kept[name] = split.take(np.flatnonzero(np.isin(split.sources, chosen)))
        return replace(self, splits=kept)


@dataclass(frozen=True)
class ClassificationData(SplitSelection):
    """Decoded, resized samples of every split of a dataset: one class label per image, or
    (for segmentation) one class per pixel, ``labels`` then holding N x H x W masks."""

    name: str
    class_names: tuple[str, ...]
    splits: dict[str, SplitArrays]
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    fingerprint: str = field(default="")

    @property
    def channels(self) -> int:
        """Channels per pixel: 3 for colour images, 1 for grey ones (stored N x H x W x 1)."""
        return int(next(iter(self.splits.values())).images.shape[-1])

    @property
    def image_size(self) -> int:
        return int(next(iter(self.splits.values())).images.shape[1])

    def class_counts(self, split: str) -> np.ndarray:
        """Samples per class, or pixels per class when the labels are segmentation masks."""
        return np.bincount(self.splits[split].labels.ravel(), minlength=self.num_classes)

