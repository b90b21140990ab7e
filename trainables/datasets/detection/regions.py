"""Annotated regions as both annotation formats (VIA and COCO) give them: the ``Region``,
``AnnotatedImage`` and ``AnnotationSet`` records, the label-to-class ``ClassMap``, and the
shape checks and error helpers the VIA and COCO parsers share."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import cv2
import numpy as np

from trainables.datasets.detection.geometry import box_mask, decode_rle, polygon_mask, scale_points
from trainables.datasets.detection.types import MalformedAnnotationFileError

IMAGE_FOLDER = "images"


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


def image_candidates(folder: Path, name: str) -> tuple[Path, ...]:
    """Where the image a file names may be: next to the annotation file or in its ``images/``
    folder. A name that is absolute, a URL or climbs out (``..``) is looked for by its last
    part only, so a VIA project made elsewhere still finds images copied next to it."""
    relative = PurePosixPath(name.replace("\\", "/"))
    if relative.is_absolute() or ".." in relative.parts or ":" in name:
        relative = PurePosixPath(relative.name)
    return folder / relative, folder / IMAGE_FOLDER / relative


def structure_error(path: Path, key: str, expected: str) -> MalformedAnnotationFileError:
    return MalformedAnnotationFileError(f"{path}: {key} {expected}; the file is not in the shape "
                                        f"VIA 2.x or COCO writes, so it was not read")


class RegionProblem(ValueError):
    """Why one region cannot be used (the reason the audit shows)."""


def finite_numbers(values) -> np.ndarray | None:
    """``values`` as a float64 array when it is a list of finite numbers, else None."""
    if not isinstance(values, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                               for v in values):
        return None
    array = np.asarray(values, np.float64)
    return array if np.isfinite(array).all() else None


def checked_polygon(xs, ys) -> np.ndarray:
    """k x 2 vertices, or a RegionProblem saying why they cannot make a polygon."""
    xs, ys = finite_numbers(xs), finite_numbers(ys)
    if xs is None or ys is None or len(xs) != len(ys):
        raise RegionProblem("malformed polygon: x and y must be lists of numbers of equal length")
    points = np.stack([xs, ys], axis=1)
    distinct = len(np.unique(points, axis=0))
    if distinct < 3:
        raise RegionProblem(f"degenerate polygon: {distinct} distinct point(s), at least 3 needed")
    if cv2.contourArea(points.astype(np.float32)) == 0:
        raise RegionProblem("degenerate polygon: zero area (all points on one line)")
    return points


def checked_rect(x, y, width, height) -> tuple[float, float, float, float]:
    """(x1, y1, x2, y2) pixel edges of a rectangle given as x, y, width, height."""
    numbers = finite_numbers([x, y, width, height])
    if numbers is None:
        raise RegionProblem("malformed rectangle: x, y, width and height must be numbers")
    x, y, width, height = numbers
    if width < 0 or height < 0:
        raise RegionProblem(f"inverted rectangle (negative width or height): width {width:g}, height {height:g}")
    if width == 0 or height == 0:
        raise RegionProblem(f"degenerate rectangle: width {width:g}, height {height:g}")
    return float(x), float(y), float(x + width), float(y + height)
