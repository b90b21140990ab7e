"""Reading images and their targets: the ``ReadSettings`` every image is prepared with, the
per-split ``SplitBuilder``, the ``ReadState`` (audit, leakage prints, clipped regions) that
reading accumulates, and one annotated image read into its split with its regions rasterised."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from trainables.config import require_choice
from trainables.datasets.audit import DataAudit
from trainables.datasets.detection.geometry import mask_box, scale_image, scaled_size
from trainables.datasets.detection.preprocessing import PREPROCESSING_VARIANTS, check_preprocessing, preprocess
from trainables.datasets.detection.regions import AnnotatedImage, Region
from trainables.datasets.detection.types import DetectionSplit
from trainables.datasets.images import CorruptImageError, decode_rgb
from trainables.datasets.leakage import ImagePrint, check_leakage, image_print
from trainables.datasets.options import DatasetOptions

READER_VERSION = 2


@dataclass(frozen=True)
class DetectionOptions(DatasetOptions):
    """A detection dataset's options: ``preprocessing`` (the variant axis, set per trial under
    fixed: or grid:) and ``bilateral``, a bilateral filter before any preprocessing."""

    preprocessing: str = "raw"
    bilateral: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        require_choice("preprocessing", self.preprocessing, PREPROCESSING_VARIANTS)


@dataclass(frozen=True)
class ReadSettings:
    """How every image is prepared: scaled to ``image_size`` (longer side), then preprocessed."""

    image_size: int
    preprocessing: str = "raw"
    bilateral: bool = False

    def __post_init__(self) -> None:
        check_preprocessing(self.preprocessing)
        if isinstance(self.image_size, bool) or not isinstance(self.image_size, int) or self.image_size < 8:
            raise ValueError(f"image_size must be an integer of at least 8 pixels (the longer side), "
                             f"got {self.image_size!r}")

    def params(self) -> dict:
        return {"reader": READER_VERSION, "image_size": self.image_size,
                "preprocessing": self.preprocessing, "bilateral": self.bilateral}

    def note(self) -> str:
        filtered = "bilateral filter, then " if self.bilateral else ""
        return (f"Images scaled to a longer side of {self.image_size} px (aspect kept); preprocessing: "
                f"{filtered}{self.preprocessing}.")

    def prepare(self, image: np.ndarray) -> np.ndarray:
        height, width = image.shape[:2]
        return preprocess(scale_image(image, scaled_size(width, height, self.image_size)),
                          self.preprocessing, bilateral=self.bilateral)


@dataclass
class SplitBuilder:
    """Collects one split's images and targets, then builds its ``DetectionSplit``; the masks
    handed to ``add`` are kept only ``with_masks``."""

    with_masks: bool
    images: list = field(default_factory=list)
    boxes: list = field(default_factory=list)
    labels: list = field(default_factory=list)
    masks: list = field(default_factory=list)
    sources: list = field(default_factory=list)

    def add(self, source: str, image: np.ndarray, boxes: list, labels: list, masks: list) -> None:
        height, width = image.shape[:2]
        self.images.append(image)
        self.boxes.append(np.asarray(boxes, np.float32).reshape(-1, 4))
        self.labels.append(np.asarray(labels, np.int64))
        if self.with_masks:
            self.masks.append(np.stack(masks) if masks else np.zeros((0, height, width), np.uint8))
        self.sources.append(source)

    def build(self) -> DetectionSplit:
        return DetectionSplit(images=tuple(self.images), boxes=tuple(self.boxes), labels=tuple(self.labels),
                              masks=tuple(self.masks) if self.with_masks else None,
                              sources=np.asarray(self.sources, dtype=str))


def build_splits(listed: dict[str, list], read: Callable[[str, object, SplitBuilder], None], *, audit: DataAudit,
                 with_masks: bool) -> dict[str, DetectionSplit]:
    """Each split's listed images, read one at a time by ``read(split, item, builder)`` into a
    ``DetectionSplit``; the audit counts what each split listed."""
    splits = {}
    for split, items in listed.items():
        audit.images_listed[split] = len(items)
        builder = SplitBuilder(with_masks=with_masks)
        for item in items:
            read(split, item, builder)
        splits[split] = builder.build()
    return splits


@dataclass
class ReadState:
    """What reading accumulates across splits: the audit, the leakage prints, and how many
    regions were clipped to their image."""

    audit: DataAudit
    prints: list[ImagePrint] = field(default_factory=list)
    clipped: int = 0

    def decoded(self, split: str, source: str, path: Path | None, annotations: int,
                missing: str) -> np.ndarray | None:
        """The decoded image at ``path`` (printed for the leakage check), or None with the
        image and its ``annotations`` dropped (``missing`` says where it was looked for)."""
        if path is None:
            self.audit.drop(split, source, f"image file not found ({missing}; {annotations} annotation(s) lost)")
            return None
        try:
            image = decode_rgb(path)
        except CorruptImageError as exc:
            self.audit.drop(split, source, f"corrupt image ({annotations} annotation(s) lost): {exc}")
            return None
        self.audit.images_read[split] += 1
        self.prints.append(image_print(split, source, path, image))
        return image

    def finish(self) -> DataAudit:
        if self.clipped:
            self.audit.notes.append(f"{self.clipped} annotation(s) crossed the image edge and were clipped to it.")
        self.audit.leakage = check_leakage(self.prints)
        return self.audit


def crosses_edge(bounds: tuple[float, float, float, float], width: int, height: int) -> bool:
    x1, y1, x2, y2 = bounds
    return x1 < 0 or y1 < 0 or x2 > width or y2 > height


def lies_outside(bounds: tuple[float, float, float, float], width: int, height: int) -> bool:
    x1, y1, x2, y2 = bounds
    return x2 <= 0 or y2 <= 0 or x1 >= width or y1 >= height


def read_annotated_image(split: str, entry: AnnotatedImage, class_names: tuple[str, ...],
                         settings: ReadSettings, state: ReadState, builder: SplitBuilder) -> None:
    """Decode, scale and preprocess one image and rasterise its regions at the scaled size;
    everything unusable goes into the audit."""
    audit = state.audit
    audit.annotations_read[split] += entry.annotation_count
    for item, reason in entry.rejected:
        audit.drop(split, item, reason)
    where = " or ".join(str(p) for p in entry.candidates)
    image = state.decoded(split, entry.source, entry.path, entry.annotation_count, f"looked for {where}")
    if image is None:
        return
    height, width = image.shape[:2]
    if entry.declared_size not in (None, (width, height)):
        audit.drop(split, entry.source, f"image is {width}x{height} but the annotation file says "
                                        f"{entry.declared_size[0]}x{entry.declared_size[1]} "
                                        f"({entry.annotation_count} annotation(s) lost)")
        return
    scaled = scaled_size(width, height, settings.image_size)
    boxes, labels, masks = [], [], []
    for region in entry.regions:
        mask = _region_mask(split, region, (width, height), scaled, state)
        if mask is not None:
            audit.keep(split, region.class_name)
            boxes.append(mask_box(mask))
            labels.append(class_names.index(region.class_name))
            masks.append(mask)
    builder.add(entry.source, settings.prepare(image), boxes, labels, masks)


def _region_mask(split: str, region: Region, original: tuple[int, int], scaled: tuple[int, int],
                 state: ReadState) -> np.ndarray | None:
    """The region's mask at the scaled size, or None with the region dropped."""
    width, height = original
    bounds = region.bounds()
    if bounds is not None and lies_outside(bounds, width, height):
        state.audit.drop(split, region.item, f"outside the {width}x{height} image")
        return None
    if region.rle is not None and tuple(region.rle["size"]) != (height, width):
        state.audit.drop(split, region.item, f"RLE mask is {region.rle['size'][1]}x{region.rle['size'][0]}, "
                                             f"the image {width}x{height}")
        return None
    mask = region.mask(original, scaled)
    if not mask.any():
        state.audit.drop(split, region.item, f"no pixel of it inside the image at {scaled[0]}x{scaled[1]}")
        return None
    state.clipped += bounds is not None and crosses_edge(bounds, width, height)
    return mask
