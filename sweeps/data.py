"""The data a sweep's trials see, prepared once in the driver the same way for the sweep and
for the analysis reruns."""

from __future__ import annotations

from sweeps.space import ResolvedSweep
from trainables.datasets import get_dataset
from trainables.datasets.audit import DataAudit
from trainables.datasets.base import ClassificationData

TRAINING_SPLITS = ("train", "val")


def prepare_sweep_data(resolved: ResolvedSweep, *, data_dir: str | None,
                       splits: tuple[str, ...] = TRAINING_SPLITS) -> tuple[ClassificationData, DataAudit]:
    """Decoded data of ``splits`` (a smoke subset when the sweep asks for one) and the audit of
    the whole dataset. Sweeps take the training splits; only the analysis asks for ``test``."""
    data, audit = get_dataset(resolved.data.dataset)(
        data_dir=data_dir, image_size=resolved.data.image_size, padding=resolved.data.padding)
    if resolved.data.images_per_split:
        data = data.subset_sources(resolved.data.images_per_split, seed=int(resolved.fixed.get("seed", 0)))
    return data.only(*splits), audit
