"""``DatasetSurvey``: what a generic format's reader finds in a researcher's folder without
decoding every image, from which ``python -m sweeps.new`` writes a starter study file.

Each generic format (``image_folder``, ``mask_folder``, ``coco``) has a ``survey_<format>(root,
**options)`` function returning one; it lists files, reads image headers (sizes, modes) and
annotation files, and raises the reader's own ``DatasetError`` for a layout it cannot read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TASKS = ("classification", "segmentation", "detection")


@dataclass(frozen=True)
class DatasetSurvey:
    """A folder as a generic format sees it.

    ``counts`` maps a split (``all`` where medsweep will make the split) to items per class:
    images per class for classification, images holding each class for segmentation, instances
    per class for detection. ``image_sizes`` are the (width, height) of every listed image, or
    of a sample of them on a large folder. ``options`` are the data-section keys (beside
    ``dataset`` and ``image_size``) a study needs to read the folder again, such as ``root`` or
    a segmentation ``classes`` map. ``problems`` name each file the reader will drop and why.
    """

    format: str
    task: str
    root: Path
    layout: str
    class_names: tuple[str, ...]
    counts: dict[str, dict[str, int]]
    image_sizes: tuple[tuple[int, int], ...]
    channels: int
    fixed_splits: bool
    options: dict[str, Any] = field(default_factory=dict)
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, got {self.task!r}")

    @property
    def total_items(self) -> int:
        """Images listed (classification, segmentation) or instances (detection), all splits."""
        return sum(sum(per_class.values()) for per_class in self.counts.values())
