"""Dataset registry: each name maps to a function that prepares decoded data and its audit."""

from __future__ import annotations

from collections.abc import Callable

from trainables.datasets.audit import DataAudit
from trainables.datasets.base import ClassificationData
from trainables.datasets.bccd import prepare_bccd
from trainables.datasets.taleqani import prepare_taleqani_segmentation

PrepareFn = Callable[..., tuple[ClassificationData, DataAudit]]

DATASETS: dict[str, PrepareFn] = {
    "bccd": prepare_bccd,
    "taleqani_segmentation": prepare_taleqani_segmentation,
}


def get_dataset(name: str) -> PrepareFn:
    """The prepare function registered as ``name``; unknown names list the valid ones."""
    try:
        return DATASETS[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; valid datasets: {', '.join(sorted(DATASETS))}") from None
