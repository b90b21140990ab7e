"""What a trial's R-CNN is built from besides its config: the weights it starts from (read
ahead in the driver) and the image side it keeps."""

from __future__ import annotations

from trainables.config import from_config
from trainables.datasets.detection import DetectionData
from trainables.detection.config import DetectionConfig
from trainables.models.rcnn import default_weights, read_weights, starts_pretrained


def fetch_detector_weights(config: dict, *, data: DetectionData) -> None:
    """Read (downloading once) the weights a trial of ``config`` starts from, so a missing
    download fails in the driver before any trial starts."""
    cfg = from_config(DetectionConfig, config)
    if starts_pretrained(cfg):
        read_weights(cfg, default_weights(cfg, masks=data.has_masks))


def longest_side(data: DetectionData) -> int:
    """The longest image side over every split: the scale ``build_detector`` keeps (the data
    scales every image's longer side to its ``image_size``, so this is that size)."""
    return max(max(image.shape[:2]) for split in data.splits.values() for image in split.images)
