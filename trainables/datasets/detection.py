"""Detection and instance-segmentation data: images of different sizes, each with its boxes,
class labels and (when the annotations are polygons) one mask per instance.

Two datasets are read here:

* the private lymphoblast smears of study 4 (seed 003: RSUP Dr. Sardjito Yogyakarta), polygons
  drawn in VGG Image Annotator 2.x and saved as VIA JSON, or the same polygons as COCO JSON;
* BCCD's Pascal VOC boxes (box-only, no masks), the study's runnable twin.

Coordinates. Polygon vertices (VIA ``all_points_x/y``, COCO ``segmentation``) are pixel
positions: a vertex at (x, y) covers pixel column x, row y, and an instance's mask is every
pixel its polygon touches (``cv2.fillPoly``). Rectangles (VIA ``rect``, a COCO ``bbox`` given
without a segmentation, VOC boxes) are pixel edges: ``x1, y1, x2, y2`` cover columns x1..x2-1.
Every box handed out is in pixel edges, so for data with masks each box is exactly the extent of
its mask (columns ``min..max+1`` of the mask's pixels), flips included.

Scaling. ``image_size`` is the image's longer side after resizing, the aspect kept (the document
scaled 4100x3075 by 0.2 to 820x615). Polygons are drawn at the scaled size from scaled vertices,
never by resizing a full-size mask (only COCO RLE masks, which have no vertices, are resized).

Bad annotations never stop a run: each is left out and listed in the audit with its reason.
Regions whose shape is malformed, degenerate (fewer than 3 distinct points, zero area, a
rectangle of zero width or height), inverted (a negative width or height, a VOC box with
xmin > xmax or ymin > ymax) or of an unknown class are dropped; so is a region lying
entirely outside its image. A region that crosses the image's edge is clipped to the image and
kept (the audit's notes count them). Images that are missing or cannot be decoded are dropped
with all their regions. An annotation file that is not JSON, or not VIA or COCO in shape, is an
error naming the file and the key, since nothing in it can be trusted.

Finding the annotation file. ``annotations.json`` or ``via_region_data.json`` is taken first;
without them, the folder's one JSON file that is VIA or COCO in shape (other JSON files are
not candidates); several such files are an error listing them. The ``annotations`` setting
names the file instead (a path relative to the data folder).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

import cv2
import numpy as np

from trainables.datasets.audit import DataAudit
from trainables.datasets.bccd import bccd_manifest_check, bccd_source_files, locate_bccd
from trainables.datasets.base import DatasetError, SplitSelection
from trainables.datasets.cache import file_digests, fingerprint_of_digests, read_through_cache, save_npz_atomically
from trainables.datasets.download import DATA_DIR_ENV, DataNotFoundError, cache_dir
from trainables.datasets.images import CorruptImageError, decode_rgb
from trainables.datasets.leakage import ImagePrint, check_leakage, image_print
from trainables.datasets.leakage_policy import (apply_after_split, duplicate_index_groups, resolve_policy,
                                                split_keeping_groups, unassigned_prints)
from trainables.datasets.taleqani import shuffled_split
from trainables.datasets.voc import MalformedAnnotationError, VocBox, parse_annotation, read_split_list
from trainables.errors import MedsweepError

SPLITS = ("train", "val", "test")
LISTING = "listing"     # the audit's split for drops that belong to no image (a duplicate entry)
READER_VERSION = 2

LYMPHOBLAST = "lymphoblast"
LYMPHOBLAST_CLASSES = ("lymphoblast", "non-lymphoblast")
# Label spellings accepted for each class, compared after ``label_key`` normalisation: the
# document is Indonesian, and its annotators labelled cells "limfoblas" / "non-limfoblas".
LABEL_SPELLINGS = {
    "lymphoblast": ("lymphoblast", "lymphoblasts", "limfoblas", "limfoblast", "sel limfoblas"),
    "non-lymphoblast": ("non-lymphoblast", "non-lymphoblasts", "non-limfoblas", "non-limfoblast",
                        "bukan limfoblas", "sel non-limfoblas"),
}
LYMPHOBLAST_FRACTIONS = (0.7, 0.2, 0.1)
SPLIT_SEED = 42
ANNOTATION_NAMES = ("annotations.json", "via_region_data.json")
IMAGE_FOLDER = "images"

BCCD_DETECTION = "bccd_detection"
BCCD_CLASSES = ("RBC", "WBC", "Platelets")

PREPROCESSING_VARIANTS = ("raw", "segmented")
# The seed names a bilateral filter (abstract, lines 9 and 13) without parameters: these are
# OpenCV's documented example values (9-pixel neighbourhood, sigmas 75), which smooth the
# cytoplasm's grain while keeping cell edges.
BILATERAL_DIAMETER = 9
BILATERAL_SIGMA_COLOUR = 75
BILATERAL_SIGMA_SPACE = 75

FLIP_MODES = ("none", "x", "y", "xy")


class MalformedAnnotationFileError(MedsweepError, ValueError):
    """An annotation file that is not valid JSON, or not in the VIA or COCO shape."""


class AnnotationFileChoiceError(DatasetError):
    """A data folder whose annotation file is ambiguous (several VIA or COCO files and none
    chosen), or a chosen annotation file that does not exist."""


# --- the data handed to trials -----------------------------------------------------------------

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

    def take(self, indices) -> "DetectionSplit":
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


# --- geometry: scaling, masks, boxes, flips ----------------------------------------------------

def scaled_size(width: int, height: int, image_size: int) -> tuple[int, int]:
    """(width, height) with the longer side ``image_size`` and the aspect kept."""
    scale = image_size / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def scale_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize to ``size`` (width, height): area averaging to shrink, bilinear to enlarge."""
    height, width = image.shape[:2]
    if (width, height) == size:
        return image
    shrinking = size[0] * size[1] < width * height
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def scale_points(points: np.ndarray, factors: tuple[float, float]) -> np.ndarray:
    """Pixel positions (k x 2, x and y) mapped to the scaled image, pixel centre to centre."""
    return (np.asarray(points, np.float64) + 0.5) * np.asarray(factors) - 0.5


def polygon_mask(polygons: Iterable[np.ndarray], height: int, width: int) -> np.ndarray:
    """uint8 {0,1} H x W mask of every pixel the polygons (each k x 2 pixel positions x, y)
    touch, clipped to the image. Several polygons are one object in parts, so their union."""
    mask = np.zeros((height, width), np.uint8)
    for polygon in polygons:
        cv2.fillPoly(mask, [np.floor(np.asarray(polygon) + 0.5).astype(np.int32)], 1)
    return mask


def box_mask(box: Sequence[float], height: int, width: int) -> np.ndarray:
    """uint8 {0,1} H x W mask of the pixels inside ``box`` (x1, y1, x2, y2 pixel edges),
    rounded to whole pixels and at least one pixel wide and high, clipped to the image."""
    x1, y1, x2, y2 = (int(np.floor(v + 0.5)) for v in box)
    x2, y2 = max(x2, x1 + 1), max(y2, y1 + 1)
    mask = np.zeros((height, width), np.uint8)
    mask[max(y1, 0):max(y2, 0), max(x1, 0):max(x2, 0)] = 1
    return mask


def mask_box(mask: np.ndarray) -> np.ndarray:
    """float32 (x1, y1, x2, y2): the pixel edges around the mask's pixels (it must have some)."""
    columns = np.flatnonzero(mask.any(axis=0))
    rows = np.flatnonzero(mask.any(axis=1))
    return np.array([columns[0], rows[0], columns[-1] + 1, rows[-1] + 1], np.float32)


def flip_sample(image: np.ndarray, boxes: np.ndarray, masks: np.ndarray | None,
                mode: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The image, its boxes (n x 4 pixel edges) and masks (n x H x W, or None) flipped in step.

    ``mode`` follows the document's "pencerminan pada sumbu x, sumbu y, dan kedua sumbu x-y"
    (seed 003, line 111): ``"x"`` mirrors the x coordinates (left-right), ``"y"`` the y
    coordinates (top-bottom), ``"xy"`` both, ``"none"`` nothing. Boxes stay ordered
    (x1 < x2, y1 < y2). Polygons need no flipping of their own: their masks are flipped.

    A flipped mask is the exact mirror of the instance's pixels. Re-drawing the mirrored
    polygon (x → W-1-x) gives the same mask where edges are axis-parallel, and may differ by a
    pixel along slanted edges, because ``cv2.fillPoly`` rounds those asymmetrically.
    """
    if mode not in FLIP_MODES:
        raise ValueError(f"unknown flip mode {mode!r}; valid modes: {', '.join(FLIP_MODES)}")
    height, width = image.shape[:2]
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4).copy()
    if "x" in mode:
        image = image[:, ::-1]
        boxes[:, [0, 2]] = width - boxes[:, [2, 0]]
        masks = None if masks is None else masks[:, :, ::-1]
    if "y" in mode:
        image = image[::-1]
        boxes[:, [1, 3]] = height - boxes[:, [3, 1]]
        masks = None if masks is None else masks[:, ::-1]
    return np.ascontiguousarray(image), boxes, None if masks is None else np.ascontiguousarray(masks)


# --- preprocessing variants --------------------------------------------------------------------

def check_preprocessing(variant: str) -> None:
    if variant not in PREPROCESSING_VARIANTS:
        raise ValueError(f"unknown preprocessing {variant!r}; valid variants: {', '.join(PREPROCESSING_VARIANTS)}")


def preprocess(image: np.ndarray, variant: str, *, bilateral: bool = False) -> np.ndarray:
    """The RGB uint8 image as the document fed it to Mask R-CNN.

    ``raw``: the image as is. ``segmented``: see ``segment_cells``. With ``bilateral`` the
    image is first smoothed by ``cv2.bilateralFilter`` (diameter ``BILATERAL_DIAMETER``, sigmas
    ``BILATERAL_SIGMA_COLOUR`` / ``BILATERAL_SIGMA_SPACE``), and the filtered image is then the
    one segmented and kept.
    """
    check_preprocessing(variant)
    if bilateral:
        image = cv2.bilateralFilter(image, BILATERAL_DIAMETER, BILATERAL_SIGMA_COLOUR, BILATERAL_SIGMA_SPACE)
    return image if variant == "raw" else segment_cells(image)


def segment_cells(image: np.ndarray) -> np.ndarray:
    """The cells of an RGB smear on black, by the document's recipe (seed 003, line 103):
    histogram equalisation, then the green channel *of the equalised image* thresholded
    inverse-binary, used as the mask of a bitwise AND on the image.

    The equalisation is per channel (the document takes "the green channel of that
    equalisation", so the equalised image is in colour); only its green channel is used, so
    only that one is computed. The document gives no threshold value: Otsu's method picks it
    per image. Cells absorb green (stained nuclei, red cells), the plasma does not, so the
    inverse threshold keeps the cells.
    """
    green = cv2.equalizeHist(np.ascontiguousarray(image[..., 1]))
    _, mask = cv2.threshold(green, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    return cv2.bitwise_and(image, image, mask=mask)


# --- annotation files: VIA 2.x and COCO --------------------------------------------------------

@dataclass(frozen=True)
class Region:
    """One annotated object at the original image's size: polygons (pixel positions, several
    when COCO gives an object in parts), or a box (pixel edges), or a COCO RLE mask."""

    item: str
    class_name: str
    polygons: tuple[np.ndarray, ...] = ()
    box: tuple[float, float, float, float] | None = None
    rle: dict | None = None

    def bounds(self) -> tuple[float, float, float, float] | None:
        """(x1, y1, x2, y2) of the region in pixel edges, or None for an RLE mask."""
        if self.polygons:
            points = np.concatenate(self.polygons)
            (x1, y1), (x2, y2) = points.min(axis=0), points.max(axis=0) + 1
            return float(x1), float(y1), float(x2), float(y2)
        return self.box

    def mask(self, original: tuple[int, int], scaled: tuple[int, int]) -> np.ndarray:
        """The uint8 mask at the ``scaled`` (width, height) size of an ``original``-sized image."""
        factors = (scaled[0] / original[0], scaled[1] / original[1])
        if self.polygons:
            return polygon_mask([scale_points(p, factors) for p in self.polygons], scaled[1], scaled[0])
        if self.box is not None:
            x1, y1, x2, y2 = self.box
            return box_mask((x1 * factors[0], y1 * factors[1], x2 * factors[0], y2 * factors[1]),
                            scaled[1], scaled[0])
        full = decode_rle(self.rle)
        return cv2.resize(full, scaled, interpolation=cv2.INTER_NEAREST)


@dataclass(frozen=True)
class AnnotatedImage:
    """One image entry of an annotation file: its name as written there, where its file may
    be (the first existing candidate is used), its usable regions, and the regions left out
    while reading the file, as (item, reason)."""

    source: str
    candidates: tuple[Path, ...]
    regions: tuple[Region, ...]
    rejected: tuple[tuple[str, str], ...] = ()
    declared_size: tuple[int, int] | None = None

    @property
    def path(self) -> Path | None:
        return next((p for p in self.candidates if p.is_file()), None)

    @property
    def annotation_count(self) -> int:
        return len(self.regions) + len(self.rejected)


@dataclass(frozen=True)
class AnnotationSet:
    """The images of one annotation file, sorted by source; ``listing_drops`` are entries
    that belong to no image, as (item, reason); ``class_attribute`` is the VIA region
    attribute the classes were read from."""

    path: Path
    form: str
    images: tuple[AnnotatedImage, ...]
    listing_drops: tuple[tuple[str, str], ...] = ()
    class_attribute: str | None = None


def label_key(label: str) -> str:
    """A label reduced to its letters and digits in lower case: ``"Non-Limfoblas"`` →
    ``"nonlimfoblas"``."""
    return "".join(ch for ch in label.lower() if ch.isalnum())


@dataclass
class ClassMap:
    """Maps labels as written to class names (the names themselves and their ``aliases``,
    compared by ``label_key``), counting every spelling it maps."""

    class_names: tuple[str, ...]
    aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)
    spellings: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._by_key = {label_key(name): name for name in self.class_names}
        self._by_key |= {label_key(alias): name for name, spellings in self.aliases.items()
                         for alias in spellings}

    def knows(self, label: str) -> bool:
        return label_key(label) in self._by_key

    def resolve(self, label: str) -> str | None:
        name = self._by_key.get(label_key(label))
        if name is not None:
            self.spellings[(label, name)] += 1
        return name

    def unknown(self, label: str) -> str:
        accepted = sorted({s for spellings in self.aliases.values() for s in spellings} - set(self.class_names))
        also = f"; also accepted: {', '.join(accepted)}" if accepted else ""
        return f"unknown class {label!r} (valid: {', '.join(self.class_names)}{also})"


def read_annotation_file(path: Path, class_map: ClassMap, *,
                         class_attribute: str | None = None) -> AnnotationSet:
    """The images and regions of a VIA 2.x (project or annotation export, regions as a list or
    VIA 1.x dict) or COCO instances JSON file, told apart by their keys. Images are looked
    for next to the file and in its ``images/`` folder."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise MalformedAnnotationFileError(
            f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); "
            f"re-export it from VIA (Annotation > Export annotations as json) or fix it") from exc
    except UnicodeDecodeError as exc:
        raise MalformedAnnotationFileError(f"{path}: not UTF-8 text ({exc}); is it really a JSON file?") from exc
    form = annotation_form(doc)
    if form == "COCO":
        return parse_coco(doc, path, class_map)
    if form == "VIA":
        return parse_via(doc, path, class_map, class_attribute=class_attribute)
    keys = sorted(doc)[:8] if isinstance(doc, dict) else type(doc).__name__
    raise MalformedAnnotationFileError(
        f"{path}: neither VIA nor COCO JSON (top level: {keys}). Expected a VIA 2.x project "
        f"(key '_via_img_metadata'), a VIA annotation export (entries with 'filename' and "
        f"'regions'), or COCO instances (keys 'images', 'annotations', 'categories').")


def annotation_form(doc) -> str | None:
    """``"COCO"`` or ``"VIA"`` when a parsed JSON document has that format's top-level keys
    (a VIA project's ``_via_img_metadata``, or entries with ``filename``; COCO's ``images`` and
    ``annotations``), else None. Only the top level is looked at; the readers check the rest."""
    if isinstance(doc, dict) and "images" in doc and "annotations" in doc:
        return "COCO"
    if isinstance(doc, dict) and (isinstance(doc.get("_via_img_metadata"), dict) or _looks_like_via_export(doc)):
        return "VIA"
    return None


def _looks_like_via_export(doc: dict) -> bool:
    return bool(doc) and all(isinstance(v, dict) and "filename" in v for v in doc.values())


def _image_candidates(folder: Path, name: str) -> tuple[Path, ...]:
    """Where the image a file names may be: next to the annotation file or in its ``images/``
    folder. A name that is absolute, a URL or climbs out (``..``) is looked for by its last
    part only, so a VIA project made elsewhere still finds images copied next to it."""
    relative = PurePosixPath(name.replace("\\", "/"))
    if relative.is_absolute() or ".." in relative.parts or ":" in name:
        relative = PurePosixPath(relative.name)
    return folder / relative, folder / IMAGE_FOLDER / relative


def _structure_error(path: Path, key: str, expected: str) -> MalformedAnnotationFileError:
    return MalformedAnnotationFileError(f"{path}: {key} {expected}; the file is not in the shape "
                                        f"VIA 2.x or COCO writes, so it was not read")


def parse_via(doc: dict, path: Path, class_map: ClassMap, *,
              class_attribute: str | None = None) -> AnnotationSet:
    """A VIA 2.x document (project or export). The class is the region attribute
    ``class_attribute``; by default the only region attribute, or else the only one whose
    values name a known class."""
    form = "VIA 2.x project" if "_via_img_metadata" in doc else "VIA annotation export"
    entries = doc.get("_via_img_metadata", doc)
    regions_by_key = {key: _via_regions(entry, path, key) for key, entry in entries.items()}
    attribute = class_attribute or _via_class_attribute(regions_by_key, path, class_map)
    images, drops, seen = [], [], set()
    for key, entry in entries.items():
        name = entry["filename"]
        if name in seen:
            drops.append((name, f"listed twice in {path.name} (key {key!r}); the first entry is used"))
            continue
        seen.add(name)
        regions, rejected = [], []
        for number, region in enumerate(regions_by_key[key]):
            item = f"{name} region {number}"
            try:
                regions.append(_via_region(region, item, attribute, class_map))
            except _RegionProblem as problem:
                rejected.append((item, str(problem)))
        images.append(AnnotatedImage(name, _image_candidates(path.parent, name), tuple(regions), tuple(rejected)))
    return AnnotationSet(path, form, tuple(sorted(images, key=lambda i: i.source)), tuple(drops),
                         class_attribute=attribute)


def _via_regions(entry, path: Path, key: str) -> list:
    """An entry's regions as a list (VIA 2.x writes a list, VIA 1.x a dict keyed "0", "1"...)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("filename"), str):
        raise _structure_error(path, f"entry {key!r}", "has no 'filename' string")
    regions = entry.get("regions")
    if isinstance(regions, dict):
        return [regions[k] for k in sorted(regions, key=lambda k: (len(k), k))]
    if not isinstance(regions, list):
        raise _structure_error(path, f"entry {key!r} key 'regions'", "is missing or neither a list nor a dict")
    return regions


def _via_class_attribute(regions_by_key: dict[str, list], path: Path, class_map: ClassMap) -> str | None:
    values: dict[str, set] = {}
    for regions in regions_by_key.values():
        for region in regions:
            for name, value in _region_attributes(region).items():
                values.setdefault(name, set()).update(_attribute_labels(value))
    if len(values) <= 1:
        return next(iter(values), None)
    naming = [name for name, labels in values.items() if any(class_map.knows(v) for v in labels)]
    if len(naming) == 1:
        return naming[0]
    raise MalformedAnnotationFileError(
        f"{path}: regions carry several attributes ({', '.join(sorted(values))}) and "
        f"{'several' if naming else 'none'} of them name the classes ({', '.join(class_map.class_names)}); "
        f"say which attribute holds the class (class_attribute=...)")


def _region_attributes(region) -> dict:
    attributes = region.get("region_attributes") if isinstance(region, dict) else None
    return attributes if isinstance(attributes, dict) else {}


def _attribute_labels(value) -> list[str]:
    """The labels an attribute value holds: a text/dropdown/radio string, or the ticked
    options of a checkbox attribute (a dict of option → true)."""
    if isinstance(value, str):
        return [value.strip()] if value.strip() else []
    if isinstance(value, dict):
        return [option for option, ticked in value.items() if ticked]
    return []


class _RegionProblem(ValueError):
    """Why one region cannot be used (the reason the audit shows)."""


def _via_region(region, item: str, attribute: str | None, class_map: ClassMap) -> Region:
    if not isinstance(region, dict) or not isinstance(region.get("shape_attributes"), dict):
        raise _RegionProblem("region has no 'shape_attributes' object")
    if attribute is None:
        raise _RegionProblem("no class label: no region of the file has any attribute")
    labels = _attribute_labels(_region_attributes(region).get(attribute))
    if len(labels) != 1:
        raise _RegionProblem(f"region attribute {attribute!r} holds {len(labels)} labels, not one")
    shape = region["shape_attributes"]
    if shape.get("name") == "polygon":
        geometry = {"polygons": (_checked_polygon(shape.get("all_points_x"), shape.get("all_points_y")),)}
    elif shape.get("name") == "rect":
        geometry = {"box": _checked_rect(*(shape.get(k) for k in ("x", "y", "width", "height")))}
    else:
        raise _RegionProblem(f"shape {shape.get('name')!r} is not supported (polygon or rect)")
    class_name = class_map.resolve(labels[0])
    if class_name is None:
        raise _RegionProblem(class_map.unknown(labels[0]))
    return Region(item=item, class_name=class_name, **geometry)


def _numbers(values) -> np.ndarray | None:
    """``values`` as a float64 array when it is a list of finite numbers, else None."""
    if not isinstance(values, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                               for v in values):
        return None
    array = np.asarray(values, np.float64)
    return array if np.isfinite(array).all() else None


def _checked_polygon(xs, ys) -> np.ndarray:
    """k x 2 vertices, or a _RegionProblem saying why they cannot make a polygon."""
    xs, ys = _numbers(xs), _numbers(ys)
    if xs is None or ys is None or len(xs) != len(ys):
        raise _RegionProblem("malformed polygon: x and y must be lists of numbers of equal length")
    points = np.stack([xs, ys], axis=1)
    distinct = len(np.unique(points, axis=0))
    if distinct < 3:
        raise _RegionProblem(f"degenerate polygon: {distinct} distinct point(s), at least 3 needed")
    if cv2.contourArea(points.astype(np.float32)) == 0:
        raise _RegionProblem("degenerate polygon: zero area (all points on one line)")
    return points


def _checked_rect(x, y, width, height) -> tuple[float, float, float, float]:
    """(x1, y1, x2, y2) pixel edges of a rectangle given as x, y, width, height."""
    numbers = _numbers([x, y, width, height])
    if numbers is None:
        raise _RegionProblem("malformed rectangle: x, y, width and height must be numbers")
    x, y, width, height = numbers
    if width < 0 or height < 0:
        raise _RegionProblem(f"inverted rectangle (negative width or height): width {width:g}, height {height:g}")
    if width == 0 or height == 0:
        raise _RegionProblem(f"degenerate rectangle: width {width:g}, height {height:g}")
    return float(x), float(y), float(x + width), float(y + height)


def parse_coco(doc: dict, path: Path, class_map: ClassMap) -> AnnotationSet:
    """A COCO instances document: polygon segmentations (one object may have several parts),
    RLE masks (decoded with pycocotools when installed), or a bare ``bbox``. Crowd regions
    (``iscrowd`` 1) are left out: they are not one object."""
    for key in ("images", "annotations", "categories"):
        if not isinstance(doc.get(key), list):
            raise _structure_error(path, f"key {key!r}", "is missing or not a list")
    categories = _coco_categories(doc["categories"], path)
    entries, by_image, names, drops = {}, {}, set(), []
    for index, image in enumerate(doc["images"]):
        if not isinstance(image, dict) or "id" not in image or not isinstance(image.get("file_name"), str):
            raise _structure_error(path, f"images[{index}]", "lacks 'id' or a 'file_name' string")
        if image["file_name"] in names or image["id"] in entries:
            drops.append((image["file_name"], f"file name or image id {image['id']!r} listed twice in "
                                              f"{path.name}; the first entry is used"))
            continue
        names.add(image["file_name"])
        entries[image["id"]] = image
        by_image[image["id"]] = []
    for index, annotation in enumerate(doc["annotations"]):
        if not isinstance(annotation, dict) or "image_id" not in annotation:
            raise _structure_error(path, f"annotations[{index}]", "lacks 'image_id'")
        if annotation["image_id"] not in by_image:
            drops.append((f"annotation {annotation.get('id', index)}",
                          f"image id {annotation['image_id']!r} is not among the file's images"))
            continue
        by_image[annotation["image_id"]].append(annotation)
    images = [_coco_image(entries[image_id], annotations, categories, path, class_map)
              for image_id, annotations in by_image.items()]
    return AnnotationSet(path, "COCO", tuple(sorted(images, key=lambda i: i.source)), tuple(drops))


def _coco_categories(categories: list, path: Path) -> dict:
    found = {}
    for index, category in enumerate(categories):
        if not isinstance(category, dict) or "id" not in category or not isinstance(category.get("name"), str):
            raise _structure_error(path, f"categories[{index}]", "lacks 'id' or a 'name' string")
        found[category["id"]] = category["name"]
    return found


def _coco_image(entry: dict, annotations: list[dict], categories: dict, path: Path,
                class_map: ClassMap) -> AnnotatedImage:
    name = entry["file_name"]
    regions, rejected = [], []
    for annotation in annotations:
        item = f"{name} annotation {annotation.get('id', '?')}"
        try:
            regions.append(_coco_region(annotation, item, categories, class_map))
        except _RegionProblem as problem:
            rejected.append((item, str(problem)))
    size = (entry.get("width"), entry.get("height"))
    declared = tuple(int(v) for v in size) if all(isinstance(v, int) for v in size) else None
    return AnnotatedImage(name, _image_candidates(path.parent, name), tuple(regions), tuple(rejected), declared)


def _coco_region(annotation: dict, item: str, categories: dict, class_map: ClassMap) -> Region:
    if annotation.get("iscrowd"):
        raise _RegionProblem("crowd region (iscrowd=1), not one object")
    if annotation.get("category_id") not in categories:
        raise _RegionProblem(f"category id {annotation.get('category_id')!r} is not in the file's categories")
    label = categories[annotation["category_id"]]
    segmentation = annotation.get("segmentation")
    if isinstance(segmentation, list) and segmentation:
        geometry = {"polygons": tuple(_coco_polygon(part, number) for number, part in enumerate(segmentation))}
    elif isinstance(segmentation, dict):
        geometry = {"rle": _checked_rle(segmentation)}
    elif isinstance(annotation.get("bbox"), list) and len(annotation["bbox"]) == 4:
        geometry = {"box": _checked_rect(*annotation["bbox"])}
    else:
        raise _RegionProblem("no segmentation and no 4-number bbox")
    class_name = class_map.resolve(label)
    if class_name is None:
        raise _RegionProblem(class_map.unknown(label))
    return Region(item=item, class_name=class_name, **geometry)


def _coco_polygon(part, number: int) -> np.ndarray:
    """One part of a COCO polygon segmentation (flat x1, y1, x2, y2, ...)."""
    values = _numbers(part)
    if values is None or len(values) % 2:
        raise _RegionProblem(f"malformed polygon part {number}: not an even-length list of numbers")
    try:
        return _checked_polygon(list(values[0::2]), list(values[1::2]))
    except _RegionProblem as problem:
        raise _RegionProblem(f"part {number}: {problem}") from None


def rle_module():
    """``pycocotools.mask``, or None when pycocotools is not installed."""
    try:
        from pycocotools import mask
    except ImportError:
        return None
    return mask


def _checked_rle(segmentation: dict) -> dict:
    if rle_module() is None:
        raise _RegionProblem("RLE segmentation needs pycocotools to decode (pip install pycocotools)")
    size = segmentation.get("size")
    if "counts" not in segmentation or not (isinstance(size, list) and len(size) == 2):
        raise _RegionProblem("malformed RLE: needs 'counts' and 'size' [height, width]")
    return segmentation


def decode_rle(rle: dict) -> np.ndarray:
    """The uint8 {0,1} H x W mask of a COCO RLE (compressed or not), by pycocotools."""
    mask = rle_module()
    height, width = rle["size"]
    encoded = mask.frPyObjects(rle, height, width) if isinstance(rle["counts"], list) else rle
    return np.ascontiguousarray(mask.decode(encoded), dtype=np.uint8)


# --- reading images and targets ----------------------------------------------------------------

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
    """Collects one split's images and targets, then builds its ``DetectionSplit``."""

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
        self.masks.append(np.stack(masks) if masks else np.zeros((0, height, width), np.uint8))
        self.sources.append(source)

    def build(self) -> DetectionSplit:
        return DetectionSplit(images=tuple(self.images), boxes=tuple(self.boxes), labels=tuple(self.labels),
                              masks=tuple(self.masks) if self.with_masks else None,
                              sources=np.asarray(self.sources, dtype=str))


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


def _crosses_edge(bounds: tuple[float, float, float, float], width: int, height: int) -> bool:
    x1, y1, x2, y2 = bounds
    return x1 < 0 or y1 < 0 or x2 > width or y2 > height


def _outside(bounds: tuple[float, float, float, float], width: int, height: int) -> bool:
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
    if bounds is not None and _outside(bounds, width, height):
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
    state.clipped += bounds is not None and _crosses_edge(bounds, width, height)
    return mask


# --- the lymphoblast dataset (study 4) ---------------------------------------------------------

@dataclass(frozen=True)
class DetectionPlan:
    """What a dataset read will cover: its annotation files, the images of each split, and
    notes on how the layout was read. Cheap to make (no image is decoded), so the cache key
    can be computed from it. ``shuffle`` is the (seed, fractions) of the split medsweep made of
    the one annotation file's images, None where the data's own folders fix the splits."""

    root: Path
    annotation_sets: tuple[AnnotationSet, ...]
    splits: dict[str, tuple[AnnotatedImage, ...]]
    notes: tuple[str, ...]
    shuffle: tuple[int, tuple[float, float, float]] | None = None

    @property
    def splits_made_here(self) -> bool:
        return self.shuffle is not None

    def keeping_together(self, groups: list[list[int]]) -> "DetectionPlan":
        """The plan with the same seeded split, except that each group (indices into the
        annotation file's images) lands in one split (see ``assign_splits``)."""
        seed, fractions = self.shuffle
        return replace(self, splits=assign_splits(self.annotation_sets[0].images, seed=seed, fractions=fractions,
                                                  groups=groups))

    def source_files(self) -> list[Path]:
        images = {entry.path for entries in self.splits.values() for entry in entries} - {None}
        return [s.path for s in self.annotation_sets] + sorted(images)


def locate_lymphoblast(data_dir: str | None, *, annotations: str | None = None) -> Path:
    """The lymphoblast dataset folder: ``<dir>/lymphoblast`` or ``<dir>`` itself, where
    ``<dir>`` is ``data_dir`` or else ``$MEDSWEEP_DATA_DIR``, and the folder holds an annotation
    file (see ``find_annotation_file``; the file ``annotations`` names, when given) or
    ``train/``, ``val/``, ``test/`` folders each holding one. The data is private, so it is
    never downloaded."""
    base = data_dir or os.environ.get(DATA_DIR_ENV)
    looked = [Path(base).expanduser() / LYMPHOBLAST, Path(base).expanduser()] if base else []
    for folder in looked:
        if (folder / annotations).is_file() if annotations else _holds_annotations(folder):
            return folder
    if annotations and looked:
        raise _missing_named_file(annotations, looked)
    where = ("Looked in:\n" + "\n".join(f"  {p}" for p in looked) if looked
             else f"Neither --data-dir nor {DATA_DIR_ENV} is set, so there was nowhere to look.")
    raise DataNotFoundError(
        f"Lymphoblast data was not found.\n{where}\n"
        f"It is private (seed 003: 1,461 smears from RSUP Dr. Sardjito Yogyakarta) and cannot be "
        f"downloaded. With access to it, put the VIA 2.x (or COCO) JSON file (any name; "
        f"{' or '.join(ANNOTATION_NAMES)} is taken first, --set annotations=FILE picks one of several) "
        f"in a folder with the images next to it or in {IMAGE_FOLDER}/ (or train/, val/, test/ folders "
        f"each laid out so), then pass --data-dir DIR or set {DATA_DIR_ENV}=DIR, where DIR is that "
        f"folder or holds it as {LYMPHOBLAST}/.\n"
        f"To try medsweep without it: python -m trainables.datasets.synthetic lymphoblast OUT, "
        f"then --data-dir OUT")


def _holds_annotations(folder: Path) -> bool:
    """Whether ``folder`` has train/, val/ and test/ folders each with an annotation file, or
    one of its own."""
    return all(find_annotation_file(folder / s) for s in SPLITS) or find_annotation_file(folder) is not None


def find_annotation_file(folder: Path) -> Path | None:
    """The folder's annotation file, or None. ``annotations.json`` or ``via_region_data.json``
    comes first (both is an error: which one is meant?); without them, the one JSON file of the
    folder that is VIA or COCO in shape. Several such files is an error that lists them, since
    guessing would silently train on the wrong labels."""
    fixed = [folder / name for name in ANNOTATION_NAMES if (folder / name).is_file()]
    if len(fixed) > 1:
        raise AnnotationFileChoiceError(
            f"{folder} holds both {' and '.join(p.name for p in fixed)}; keep only the one to use there, "
            f"or choose one with --set annotations=FILE (its path relative to the data folder)")
    if fixed:
        return fixed[0]
    candidates = annotation_candidates(folder)
    if len(candidates) > 1:
        raise AnnotationFileChoiceError(
            f"{folder} holds {len(candidates)} VIA or COCO annotation files: "
            f"{', '.join(p.name for p in candidates)}. Keep only the one to use there, or choose one "
            f"with --set annotations=FILE (its path relative to the data folder)")
    return candidates[0] if candidates else None


def annotation_candidates(folder: Path) -> list[Path]:
    """The ``*.json`` files directly in ``folder`` that parse as VIA or COCO (``annotation_form``),
    sorted by name. Files that are not JSON or of another shape are not candidates."""
    return [path for path in sorted(folder.glob("*.json")) if path.is_file() and _is_annotation_json(path)]


def _is_annotation_json(path: Path) -> bool:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    return annotation_form(doc) is not None


def named_annotation_file(root: Path, annotations: str) -> Path:
    """The annotation file chosen with ``--set annotations=FILE``: ``root / annotations``,
    which must be a file inside the data folder ``root``."""
    relative = PurePosixPath(annotations)
    if relative.is_absolute() or ".." in relative.parts:
        raise AnnotationFileChoiceError(
            f"--set annotations={annotations}: give the file's path relative to the data folder "
            f"{root}, inside it (no absolute path, no ..)")
    if not (root / relative).is_file():
        raise _missing_named_file(annotations, [root])
    return root / relative


def _missing_named_file(annotations: str, folders: list[Path]) -> AnnotationFileChoiceError:
    found = [f"{folder}: {', '.join(_json_files(folder)) or 'no JSON files'}" for folder in folders
             if folder.is_dir()]
    return AnnotationFileChoiceError(
        f"--set annotations={annotations}: no such file in {' or '.join(str(f) for f in folders)} "
        f"(the path is relative to the data folder). JSON files found:\n"
        + "\n".join(f"  {line}" for line in found or ["none (no such folder)"]))


def _json_files(folder: Path) -> list[str]:
    """The JSON files in ``folder`` and its direct subfolders, as paths relative to it."""
    return sorted(p.relative_to(folder).as_posix() for p in [*folder.glob("*.json"), *folder.glob("*/*.json")])


def plan_lymphoblast(root: Path, *, annotations: str | None = None, class_attribute: str | None = None,
                     seed: int = SPLIT_SEED,
                     fractions: tuple[float, float, float] = LYMPHOBLAST_FRACTIONS) -> DetectionPlan:
    """The lymphoblast images per split. ``annotations`` (a path relative to ``root``) names the
    one annotation file to read. Otherwise, with ``train/``, ``val/``, ``test/`` folders each
    holding an annotation file, those are the splits; else the root's one file (see
    ``find_annotation_file``) is read. One file's images, sorted by name, are shuffled once with
    ``seed`` and split by ``fractions`` (the document's 70/20/10); reading may then keep
    duplicates together (``DetectionPlan.keeping_together``)."""
    root = Path(root)
    class_map = ClassMap(LYMPHOBLAST_CLASSES, LABEL_SPELLINGS)
    per_split = {} if annotations else {split: find_annotation_file(root / split) for split in SPLITS}
    folders_split = bool(per_split) and all(per_split.values())
    if folders_split:
        sets = tuple(read_annotation_file(per_split[s], class_map, class_attribute=class_attribute) for s in SPLITS)
        splits = {split: annotation_set.images for split, annotation_set in zip(SPLITS, sets)}
        how = "splits from the train/, val/ and test/ folders' own annotation files"
        unused = annotation_candidates(root)
        if unused:
            how += f" ({', '.join(p.name for p in unused)} at the top not used)"
    else:
        top = named_annotation_file(root, annotations) if annotations else find_annotation_file(root)
        if top is None:
            raise DataNotFoundError(
                f"{root} has no VIA or COCO annotation file (nor train/, val/, test/ folders each holding "
                f"one); JSON files there: {', '.join(_json_files(root)) or 'none'}")
        sets = (read_annotation_file(top, class_map, class_attribute=class_attribute),)
        splits = assign_splits(sets[0].images, seed=seed, fractions=fractions)
        how = (f"split {'/'.join(f'{round(f * 100)}' for f in fractions)} by one shuffle with seed {seed}")
    if not any(splits.values()):
        raise DataNotFoundError(f"{', '.join(str(s.path) for s in sets)} list(s) no images")
    return DetectionPlan(root, sets, splits, (_layout_note(sets, root, how), _label_note(class_map)),
                         shuffle=None if folders_split else (seed, fractions))


def assign_splits(images: Sequence[AnnotatedImage], *, seed: int = SPLIT_SEED,
                  fractions: tuple[float, float, float] = LYMPHOBLAST_FRACTIONS,
                  groups: list[list[int]] = ()) -> dict[str, tuple]:
    """``images`` shuffled once by ``seed`` and cut by ``fractions`` into train, val, test; each
    of the ``groups`` of duplicates (indices into ``images``) is shuffled and cut as one image
    (see ``split_keeping_groups``), so without groups the split is the plain one."""
    parts = split_keeping_groups(len(images), list(groups), lambda representatives: shuffled_split(
        np.arange(len(representatives)), np.random.default_rng(seed), fractions))
    return {split: tuple(images[i] for i in part) for split, part in zip(SPLITS, parts)}


def duplicate_image_groups(images: Sequence[AnnotatedImage]) -> list[list[int]]:
    """Groups (indices into ``images``) of images that are copies or confirmed near-duplicates
    of each other, found before splitting (an image whose file is missing belongs to none)."""
    prints = unassigned_prints((entry.source, entry.path) for entry in images if entry.path is not None)
    return duplicate_index_groups([entry.source for entry in images], prints)


def _layout_note(sets: tuple[AnnotationSet, ...], root: Path, how: str) -> str:
    files = ", ".join(f"{s.path.relative_to(root).as_posix()} ({s.form}"
                      f"{f', class attribute {s.class_attribute!r}' if s.class_attribute else ''})" for s in sets)
    return f"Annotations: {files}; {how}."


def _label_note(class_map: ClassMap) -> str:
    mapping = ", ".join(f"{label!r} → {name} ({count})"
                        for (label, name), count in sorted(class_map.spellings.items()))
    return f"Labels read as classes: {mapping or 'none'}."


def read_planned(plan: DetectionPlan, class_names: tuple[str, ...], settings: ReadSettings,
                 dataset: str) -> tuple[dict[str, DetectionSplit], DataAudit]:
    """Every planned image decoded, scaled and preprocessed, with its targets; and the audit."""
    audit = DataAudit(dataset=dataset, root=str(plan.root), class_names=class_names,
                      notes=[*plan.notes, settings.note()])
    state = ReadState(audit)
    for annotation_set in plan.annotation_sets:
        for item, reason in annotation_set.listing_drops:
            audit.drop(LISTING, f"{annotation_set.path.relative_to(plan.root).as_posix()}: {item}", reason)
    splits = {}
    for split, entries in plan.splits.items():
        audit.images_listed[split] = len(entries)
        builder = SplitBuilder(with_masks=True)
        for entry in entries:
            read_annotated_image(split, entry, class_names, settings, state, builder)
        splits[split] = builder.build()
    return splits, state.finish()


def read_lymphoblast_plan(plan: DetectionPlan, settings: ReadSettings,
                          policy: str) -> tuple[dict[str, DetectionSplit], DataAudit]:
    """The planned lymphoblast splits under the resolved leakage ``policy`` (see
    ``leakage_policy``): ``group`` first moves each group of duplicate images into one split,
    the other policies act on the plain split; the audit says what the policy did."""
    images = plan.annotation_sets[0].images
    groups = duplicate_image_groups(images) if policy == "group" else []
    splits, audit = read_planned(plan.keeping_together(groups) if groups else plan, LYMPHOBLAST_CLASSES,
                                 settings, LYMPHOBLAST)
    splits = apply_after_split(policy, splits, audit, [[images[i].source for i in group] for group in groups],
                               columns_of=lambda source, labels: [LYMPHOBLAST_CLASSES[label] for label in labels])
    return splits, audit


def lymphoblast_policy(plan: DetectionPlan, leakage: str | None) -> str:
    """The leakage policy to run: ``leakage``, or ``group`` where medsweep splits the data and
    ``warn`` where its train/val/test folders do (where ``group`` is an error)."""
    return resolve_policy(leakage, dataset=LYMPHOBLAST, splits_made_here=plan.splits_made_here)


def read_lymphoblast(root: Path, *, image_size: int, preprocessing: str = "raw", bilateral: bool = False,
                     annotations: str | None = None, class_attribute: str | None = None,
                     seed: int = SPLIT_SEED, leakage: str | None = None,
                     ) -> tuple[dict[str, DetectionSplit], DataAudit]:
    """The lymphoblast splits (images, boxes, labels, masks) and their audit, uncached."""
    settings = ReadSettings(image_size, preprocessing, bilateral)
    plan = plan_lymphoblast(root, annotations=annotations, class_attribute=class_attribute, seed=seed)
    return read_lymphoblast_plan(plan, settings, lymphoblast_policy(plan, leakage))


def prepare_lymphoblast(*, data_dir: str | None, image_size: int, padding: int = 10,
                        preprocessing: str = "raw", bilateral: bool = False, annotations: str | None = None,
                        leakage: str | None = None, use_cache: bool = True) -> tuple[DetectionData, DataAudit]:
    """Lymphoblast / non-lymphoblast instances of every split, and the audit of the dataset.

    ``preprocessing`` is ``raw`` or ``segmented`` (see ``preprocess``); ``bilateral`` adds the
    bilateral filter first. ``annotations`` names the annotation file (relative to the data
    folder) when the folder's own cannot be found unambiguously (see ``find_annotation_file``).
    ``leakage`` is the duplicate policy (``group`` by default where medsweep makes the split,
    ``warn`` where train/val/test folders fix it; see ``leakage_policy``).
    ``padding`` is accepted because every dataset's prepare function takes the same keywords;
    whole images are used, so it is ignored. The result is cached by the data's checksum, the
    image size, the preprocessing and the leakage policy.
    """
    settings = ReadSettings(image_size, preprocessing, bilateral)
    plan = plan_lymphoblast(locate_lymphoblast(data_dir, annotations=annotations), annotations=annotations)
    policy = lymphoblast_policy(plan, leakage)
    return _prepared(LYMPHOBLAST, LYMPHOBLAST_CLASSES, plan.root, file_digests(plan.source_files()),
                     {**settings.params(), "leakage": policy},
                     lambda: read_lymphoblast_plan(plan, settings, policy), use_cache)


def _prepared(dataset: str, class_names: tuple[str, ...], root: Path, digests: dict[Path, str],
              params: dict, read: Callable[[], tuple[dict[str, DetectionSplit], DataAudit]],
              use_cache: bool) -> tuple[DetectionData, DataAudit]:
    """The cached (or freshly ``read``) splits and audit of data whose files' SHA-256 digests
    are ``digests``, read with ``params`` (part of the cache key)."""
    params = {**params, "dataset": dataset}
    key = fingerprint_of_digests(digests, root, params)
    path = cache_dir() / "detection" / f"{dataset}-{key[:20]}.npz"
    splits, audit = read_through_cache(path, params, read, use_cache=use_cache, load=load_detection_splits,
                                       save=save_detection_splits)
    return DetectionData(name=dataset, class_names=class_names, splits=splits, fingerprint=key), audit


# --- BCCD boxes (the runnable twin) ------------------------------------------------------------

def read_bccd_detection(root: Path, *, image_size: int, preprocessing: str = "raw",
                        bilateral: bool = False) -> tuple[dict[str, DetectionSplit], DataAudit]:
    """BCCD's boxes per image (box-only: ``masks`` is None), split by the dataset's own lists,
    and the audit. Zero-area and inverted boxes, boxes of unknown classes and boxes entirely
    outside their image are dropped; boxes crossing the edge are clipped. Boxes are scaled with the image."""
    settings = ReadSettings(image_size, preprocessing, bilateral)
    audit = DataAudit(dataset=BCCD_DETECTION, root=str(root), class_names=BCCD_CLASSES,
                      notes=["Splits: the dataset's own ImageSets/Main lists.", settings.note()])
    state = ReadState(audit)
    splits = {}
    for split in SPLITS:
        image_ids = read_split_list(root, split)
        audit.images_listed[split] = len(image_ids)
        builder = SplitBuilder(with_masks=False)
        for image_id in image_ids:
            _read_voc_image(root, split, image_id, settings, state, builder)
        splits[split] = builder.build()
    return splits, state.finish()


def _read_voc_image(root: Path, split: str, image_id: str, settings: ReadSettings, state: ReadState,
                    builder: SplitBuilder) -> None:
    xml_path = root / "Annotations" / f"{image_id}.xml"
    jpg_path = root / "JPEGImages" / f"{image_id}.jpg"
    if not xml_path.is_file():
        state.audit.drop(split, image_id, f"annotation {xml_path.name} is missing")
        return
    try:
        annotation = parse_annotation(xml_path)
    except MalformedAnnotationError as exc:
        state.audit.drop(split, image_id, f"malformed annotation: {exc}")
        return
    state.audit.annotations_read[split] += len(annotation.boxes)
    image = state.decoded(split, image_id, jpg_path if jpg_path.is_file() else None, len(annotation.boxes),
                          f"looked for {jpg_path}")
    if image is None:
        return
    height, width = image.shape[:2]
    scaled = scaled_size(width, height, settings.image_size)
    factors = np.array([scaled[0] / width, scaled[1] / height] * 2, np.float32)
    boxes, labels = [], []
    for number, box in enumerate(annotation.boxes):
        kept = _kept_voc_box(split, f"{image_id} box {number} {box.class_name} {box.as_tuple()}",
                             box, width, height, state)
        if kept is not None:
            boxes.append(kept * factors)
            labels.append(BCCD_CLASSES.index(box.class_name))
    builder.add(image_id, settings.prepare(image), boxes, labels, [])


def _kept_voc_box(split: str, item: str, box: VocBox, width: int, height: int,
                  state: ReadState) -> np.ndarray | None:
    """The box clipped to the image (float32 x1, y1, x2, y2), or None with the box dropped."""
    if box.class_name not in BCCD_CLASSES:
        state.audit.drop(split, item, f"unknown class {box.class_name!r} (valid: {', '.join(BCCD_CLASSES)})")
        return None
    if problem := box.shape_problem():
        state.audit.drop(split, item, problem)
        return None
    if _outside(box.as_tuple(), width, height):
        state.audit.drop(split, item, f"box outside the {width}x{height} image")
        return None
    state.clipped += _crosses_edge(box.as_tuple(), width, height)
    state.audit.keep(split, box.class_name)
    return np.clip(np.asarray(box.as_tuple(), np.float32), 0, [width, height, width, height])


def prepare_bccd_detection(*, data_dir: str | None, image_size: int, padding: int = 10,
                           preprocessing: str = "raw", bilateral: bool = False,
                           use_cache: bool = True) -> tuple[DetectionData, DataAudit]:
    """BCCD's RBC / WBC / Platelets boxes of every split (no masks), and the audit.

    ``padding`` is accepted because every dataset's prepare function takes the same keywords;
    whole images are used, so it is ignored. Cached like ``prepare_lymphoblast``; the files read
    are compared with the pinned manifest like ``prepare_bccd``'s.
    """
    settings = ReadSettings(image_size, preprocessing, bilateral)
    root = locate_bccd(data_dir)
    digests = file_digests(bccd_source_files(root))
    data, audit = _prepared(BCCD_DETECTION, BCCD_CLASSES, root, digests, settings.params(),
                            lambda: read_bccd_detection(root, image_size=image_size, preprocessing=preprocessing,
                                                        bilateral=bilateral), use_cache)
    audit.manifest = bccd_manifest_check(root, digests)
    return data, audit


# --- the cache ---------------------------------------------------------------------------------
# One npz per (data checksum, settings). Images of different sizes cannot be stacked, so each
# split stores its images flattened end to end with their shapes, and its instances' boxes,
# labels and bit-packed masks end to end with the instance count of each image.

def save_detection_splits(path: Path, splits: dict[str, DetectionSplit], meta: dict) -> None:
    arrays = {"meta": np.array(json.dumps({**meta, "splits": list(splits),
                                           "masks": {n: s.masks is not None for n, s in splits.items()}}))}
    for name, split in splits.items():
        arrays |= {f"{name}/{key}": value for key, value in _packed(split).items()}
    save_npz_atomically(path, arrays)


def _end_to_end(parts: tuple[np.ndarray, ...], dtype) -> np.ndarray:
    """The arrays flattened and joined into one 1-D array of ``dtype``."""
    return np.concatenate([np.ravel(p) for p in parts]).astype(dtype, copy=False) if parts else np.zeros(0, dtype)


def _packed(split: DetectionSplit) -> dict[str, np.ndarray]:
    packed = {"pixels": _end_to_end(split.images, np.uint8),
              "shapes": np.array([image.shape[:2] for image in split.images], np.int64).reshape(-1, 2),
              "counts": np.array([len(labels) for labels in split.labels], np.int64),
              "boxes": _end_to_end(split.boxes, np.float32).reshape(-1, 4),
              "labels": _end_to_end(split.labels, np.int64), "sources": split.sources.astype(str)}
    if split.masks is not None:
        packed["masks"] = np.packbits(_end_to_end(split.masks, np.uint8))
    return packed


def load_detection_splits(path: Path) -> tuple[dict[str, DetectionSplit], dict] | None:
    """The cached splits and metadata at ``path``, or None when absent or unreadable."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            meta = json.loads(str(stored["meta"]))
            splits = {name: _unpacked(stored, name, meta["masks"][name]) for name in meta["splits"]}
        return splits, meta
    except (OSError, KeyError, ValueError):
        return None


def _unpacked(stored, name: str, with_masks: bool) -> DetectionSplit:
    shapes, counts = stored[f"{name}/shapes"], stored[f"{name}/counts"]
    image_ends = np.cumsum(shapes[:, 0] * shapes[:, 1] * 3)
    pixels = stored[f"{name}/pixels"]
    images = tuple(pixels[end - h * w * 3:end].reshape(h, w, 3) for (h, w), end in zip(shapes, image_ends))
    instance_ends = np.cumsum(counts)
    boxes, labels = stored[f"{name}/boxes"], stored[f"{name}/labels"]
    masks = None
    if with_masks:
        mask_ends = np.cumsum(counts * shapes[:, 0] * shapes[:, 1])
        bits = np.unpackbits(stored[f"{name}/masks"], count=int(mask_ends[-1]) if len(mask_ends) else 0)
        masks = tuple(bits[end - n * h * w:end].reshape(n, h, w)
                      for n, (h, w), end in zip(counts, shapes, mask_ends))
    return DetectionSplit(images=images, boxes=tuple(boxes[end - n:end] for n, end in zip(counts, instance_ends)),
                          labels=tuple(labels[end - n:end] for n, end in zip(counts, instance_ends)),
                          masks=masks, sources=stored[f"{name}/sources"])
