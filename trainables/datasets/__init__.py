"""Dataset registry: each name maps to how to prepare its decoded data and audit."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from trainables.datasets.audit import DataAudit
from trainables.datasets.base import ClassificationData
from trainables.datasets.bccd import BCCDOptions, prepare_bccd
from trainables.datasets.chestmnist import prepare_chestmnist
from trainables.datasets.detection import prepare_bccd_detection, prepare_lymphoblast
from trainables.datasets.detection.bccd_boxes import BCCDDetectionOptions
from trainables.datasets.detection.coco_format import CocoOptions, prepare_coco
from trainables.datasets.detection.lymphoblast import LymphoblastOptions
from trainables.datasets.image_folder import ImageFolderOptions, prepare_image_folder
from trainables.datasets.mask_folder import MaskFolderOptions, prepare_mask_folder
from trainables.datasets.options import DatasetOptions, LeakageOptions
from trainables.datasets.taleqani_classification import TaleqaniOptions, prepare_taleqani_classification
from trainables.datasets.taleqani_segmentation import TaleqaniSegmentationOptions, prepare_taleqani_segmentation
from trainables.registries import Registry

PrepareFn = Callable[..., tuple[ClassificationData, DataAudit]]


@dataclass(frozen=True)
class DatasetEntry:
    """``prepare(data_dir=, image_size=, **options.keywords())`` gives the decoded splits and
    the audit; ``options`` is the dataset's frozen options class (``trainables.datasets.options``),
    whose fields are exactly ``prepare``'s other keywords (``use_cache`` aside).
    ``variant_axis`` names an options field that a study sweeps as a grid axis (a different
    split of the same images, say); the sweep prepares one variant per value. ``fixed_splits``:
    the dataset's own files fix its splits, so the leakage policy ``group`` (which decides
    splits) cannot apply and is refused with the data settings, before any data is read."""

    prepare: PrepareFn
    options: type[DatasetOptions]
    variant_axis: str | None = None
    fixed_splits: bool = False

    def __post_init__(self) -> None:
        if self.variant_axis is not None and self.variant_axis not in self.options.keys():
            raise ValueError(f"variant axis {self.variant_axis!r} is not a field of {self.options.__name__} "
                             f"({', '.join(self.options.keys())}); declare it there")


DATASETS: Registry[DatasetEntry] = Registry("dataset", entries={
    "bccd": DatasetEntry(prepare_bccd, BCCDOptions, fixed_splits=True),
    "taleqani_segmentation": DatasetEntry(prepare_taleqani_segmentation, TaleqaniSegmentationOptions),
    "mask_folder": DatasetEntry(prepare_mask_folder, MaskFolderOptions),
    "taleqani": DatasetEntry(prepare_taleqani_classification, TaleqaniOptions, variant_axis="loading_option"),
    "image_folder": DatasetEntry(prepare_image_folder, ImageFolderOptions),
    "chestmnist": DatasetEntry(prepare_chestmnist, LeakageOptions, fixed_splits=True),
    "lymphoblast": DatasetEntry(prepare_lymphoblast, LymphoblastOptions, variant_axis="preprocessing"),
    "bccd_detection": DatasetEntry(prepare_bccd_detection, BCCDDetectionOptions, variant_axis="preprocessing",
                                   fixed_splits=True),
    "coco": DatasetEntry(prepare_coco, CocoOptions, variant_axis="preprocessing"),
})
# The datasets whose splits their own files fix (``DatasetEntry.fixed_splits``).
FIXED_SPLIT_DATASETS = tuple(name for name, entry in DATASETS.items() if entry.fixed_splits)


def get_dataset_entry(name: str) -> DatasetEntry:
    """The entry registered as ``name``; unknown names list the valid ones."""
    return DATASETS.get(name)

