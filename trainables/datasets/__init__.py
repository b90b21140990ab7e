"""Dataset registry: each name maps to how to prepare its decoded data and audit."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from trainables.datasets.audit import DataAudit
from trainables.datasets.base import ClassificationData
from trainables.datasets.bccd import prepare_bccd
from trainables.datasets.chestmnist import prepare_chestmnist
from trainables.datasets.detection import prepare_bccd_detection, prepare_lymphoblast
from trainables.datasets.taleqani_classification import prepare_taleqani_classification
from trainables.datasets.taleqani_segmentation import prepare_taleqani_segmentation
from trainables.registries import Registry

PrepareFn = Callable[..., tuple[ClassificationData, DataAudit]]


@dataclass(frozen=True)
class DatasetEntry:
    """``prepare(data_dir=, image_size=, padding=)`` gives the decoded splits and the audit.
    ``variant_axis`` names a keyword of ``prepare`` that a study sweeps as a grid axis (a
    different split of the same images, say); the sweep prepares one variant per value."""

    prepare: PrepareFn
    variant_axis: str | None = None


DATASETS: Registry[DatasetEntry] = Registry("dataset", entries={
    "bccd": DatasetEntry(prepare_bccd),
    "taleqani_segmentation": DatasetEntry(prepare_taleqani_segmentation),
    "taleqani": DatasetEntry(prepare_taleqani_classification, variant_axis="loading_option"),
    "chestmnist": DatasetEntry(prepare_chestmnist),
    "lymphoblast": DatasetEntry(prepare_lymphoblast, variant_axis="preprocessing"),
    "bccd_detection": DatasetEntry(prepare_bccd_detection, variant_axis="preprocessing"),
})


def get_dataset_entry(name: str) -> DatasetEntry:
    """The entry registered as ``name``; unknown names list the valid ones."""
    return DATASETS.get(name)

