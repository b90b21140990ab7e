"""The data a detection dataset hands to trials (``DetectionSplit``, ``DetectionData``), the
split names, and the errors an annotation file can raise: what every other module of the
package builds or reports, so it imports none of them."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from trainables.datasets.base import DatasetError, SplitSelection
from trainables.errors import MedsweepError

SPLITS = ("train", "val", "test")
LISTING = "listing"     # the audit's split for drops that belong to no image (a duplicate entry)


class MalformedAnnotationFileError(MedsweepError, ValueError):
    """An annotation file that is not valid JSON, or not in the VIA or COCO shape."""


class AnnotationFileChoiceError(DatasetError):
    """A data folder whose annotation file is ambiguous (several VIA or COCO files and none
    chosen), or a chosen annotation file that does not exist."""

@dataclass(frozen=True)
class DetectionSplit:
    """One split: per image an RGB uint8 H x W x 3 array (sizes may differ), its boxes
    (float32 n x 4, ``x1, y1, x2, y2`` pixel edges of the scaled image), class indices
    (int64 n, 0..C-1: the trainable adds the background class itself), and instance masks
    (uint8 n x H x W of 0/1; ``masks`` is None for box-only data). ``sources`` names each
    image's file, one image per source."""

    images: tuple[np.ndarray, ...]
    boxes: tuple[np.ndarray, ...]
    labels: tuple[np.ndarray, ...]
    masks: tuple[np.ndarray, ...] | None
    sources: np.ndarray

    def __len__(self) -> int:
        return len(self.images)

    def take(self, indices) -> DetectionSplit:
        """The images at ``indices`` (integer positions, a boolean mask or a slice)."""
        rows = np.arange(len(self))[indices]
        return DetectionSplit(images=_rows(self.images, rows), boxes=_rows(self.boxes, rows),
                              labels=_rows(self.labels, rows),
                              masks=None if self.masks is None else _rows(self.masks, rows),
                              sources=self.sources[rows])


def _rows(items: tuple, rows: np.ndarray) -> tuple:
    return tuple(items[row] for row in rows)


@dataclass(frozen=True)
class DetectionData(SplitSelection):
    """Decoded, scaled images and targets of every split of a detection dataset; the same
    selection API as ``ClassificationData`` (``only``, ``subset_sources``, ``class_counts``)."""

    name: str
    class_names: tuple[str, ...]
    splits: dict[str, DetectionSplit]
    fingerprint: str = field(default="")

    @property
    def has_masks(self) -> bool:
        return all(split.masks is not None for split in self.splits.values())

    def class_counts(self, split: str) -> np.ndarray:
        """Instances per class in ``split``."""
        labels = self.splits[split].labels
        flat = np.concatenate(labels) if labels else np.zeros(0, np.int64)
        return np.bincount(flat, minlength=self.num_classes)
