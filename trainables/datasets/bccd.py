"""BCCD (Pascal VOC boxes) as one classification patch per box.

Splits are the dataset's own image-level lists, so patches of one image never straddle
splits. Each box is cropped with padding (clipped to the image) and resized once; the result
is cached by the data's checksum and the crop/resize parameters. The files read are compared
with the pinned SHA-256 manifest wherever the copy came from (``--data-dir``, the environment
or the download cache), from the same digests the cache key is made of.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TypeVar

import numpy as np

from trainables.config import ConfigError
from trainables.datasets.audit import DataAudit
from trainables.datasets.base import ClassificationData, SplitArrays
from trainables.datasets.cache import file_digests, fingerprint_of_digests, read_through_cache
from trainables.datasets.download import Manifest, cache_dir, compare_with_manifest, locate_or_download
from trainables.datasets.images import CorruptImageError, crop_with_padding, decode_rgb, resize_square
from trainables.datasets.leakage import ImagePrint, check_leakage, image_print
from trainables.datasets.leakage_policy import apply_to_fixed_splits
from trainables.datasets.options import LeakageOptions
from trainables.datasets.voc import MalformedAnnotationError, parse_annotation, read_split_list

CLASS_NAMES = ("RBC", "WBC", "Platelets")
SPLITS = ("train", "val", "test")
READER_VERSION = 4
SPLIT_LIST_FOLDER = "ImageSets/Main"
SOURCE_FOLDERS = (("Annotations", ".xml"), ("JPEGImages", ".jpg"))     # (folder, file suffix)


@dataclass(frozen=True)
class BCCDOptions(LeakageOptions):
    """``padding``: pixels added on every side of a box before its patch is cropped (seed 000 §2.1)."""

    padding: int = 10

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.padding < 0:
            raise ConfigError(f"data setting 'padding' must be a whole number of pixels, 0 or more, "
                              f"got {self.padding!r}", key="padding")


def locate_bccd(data_dir: str | None) -> Path:
    """The ``BCCD`` folder (VOC layout) of the dataset, downloading it when needed."""
    return locate_or_download("BCCD_Dataset", data_dir=data_dir, marker="BCCD/ImageSets/Main") / "BCCD"


def prepare_bccd(*, data_dir: str | None, image_size: int, leakage: str | None = None, padding: int = 10,
                 use_cache: bool = True) -> tuple[ClassificationData, DataAudit]:
    """Decoded BCCD patches of every split, and the audit of the whole dataset; ``leakage`` is
    the duplicate policy for its fixed splits (warn by default, drop or fail). The keywords
    after ``image_size`` are ``BCCDOptions``'s fields."""
    root = locate_bccd(data_dir)
    params = {"reader": READER_VERSION, "image_size": image_size, "padding": padding}
    digests = file_digests(bccd_source_files(root))
    key = fingerprint_of_digests(digests, root, params)
    cache_path = cache_dir() / "patches" / f"bccd-{key[:20]}.npz"
    splits, audit = read_through_cache(
        cache_path, params, lambda: read_voc_patches(root, image_size=image_size, padding=padding),
        use_cache=use_cache)
    splits = apply_to_fixed_splits(leakage, splits, audit, column_of=lambda source, label: CLASS_NAMES[label])
    audit.manifest = bccd_manifest_check(root, digests)
    data = ClassificationData(name="bccd", class_names=CLASS_NAMES, splits=splits, fingerprint=key)
    return data, audit


def bccd_source_files(root: Path) -> list[Path]:
    """The files BCCD's content is fingerprinted by: split lists, annotations, images."""
    lists = [root / SPLIT_LIST_FOLDER / f"{s}.txt" for s in SPLITS]
    return [p for p in lists if p.is_file()] + [path for folder, suffix in SOURCE_FOLDERS
                                                for path in sorted((root / folder).glob(f"*{suffix}"))]


def _is_bccd_source(relative: str) -> bool:
    """Whether a path relative to the ``BCCD`` folder names a file ``bccd_source_files`` lists."""
    path = PurePosixPath(relative)
    return (relative in {f"{SPLIT_LIST_FOLDER}/{s}.txt" for s in SPLITS}
            or (path.parent.as_posix(), path.suffix) in SOURCE_FOLDERS)


def bccd_manifest_check(root: Path, digests: Mapping[Path, str]) -> dict:
    """The files read from ``root`` (the ``BCCD`` folder; ``digests`` maps each to its SHA-256)
    compared with the pinned manifest, whose paths start at ``BCCD_Dataset/``. Files the
    reader never reads (the licence, ``test.csv``, ``trainval.txt``) are not compared."""
    def read_by_reader(name: str) -> bool:
        folder, _, inside = name.partition("/")
        return folder == root.name and _is_bccd_source(inside)

    relative = {path.relative_to(root.parent).as_posix(): digest for path, digest in digests.items()}
    return compare_with_manifest(Manifest.load("bccd"), digests=relative, read_by_reader=read_by_reader)


def read_voc_patches(root: Path, *, image_size: int, padding: int,
                     class_names: tuple[str, ...] = CLASS_NAMES,
                     splits: tuple[str, ...] = SPLITS) -> tuple[dict[str, SplitArrays], DataAudit]:
    """Crop one patch per valid box of every listed image; audit everything left out."""
    audit = DataAudit(dataset="bccd", root=str(root), class_names=class_names)
    split_lists = {split: read_split_list(root, split) for split in splits}
    result, prints = {}, []
    for split, image_ids in split_lists.items():
        audit.images_listed[split] = len(image_ids)
        images, labels, sources = [], [], []
        for image_id in image_ids:
            for class_index, patch in _image_patches(root, split, image_id, padding, class_names, audit, prints):
                images.append(resize_square(patch, image_size))
                labels.append(class_index)
                sources.append(image_id)
        result[split] = SplitArrays(
            images=np.stack(images) if images else np.zeros((0, image_size, image_size, 3), np.uint8),
            labels=np.asarray(labels, dtype=np.int64), sources=np.asarray(sources, dtype=str))
    audit.leakage = check_leakage(prints)
    return result, audit


T = TypeVar("T")


def _read_or_drop(read: Callable[[Path], T], path: Path, errors: type[Exception], audit: DataAudit, split: str,
                  image_id: str, *, missing: str, damaged: str) -> T | None:
    """``read(path)``, or None with the reason dropped in the audit: ``missing`` when the file
    is not there, ``damaged`` and the error when ``read`` raises one of ``errors``."""
    if not path.is_file():
        audit.drop(split, image_id, missing)
        return None
    try:
        return read(path)
    except errors as exc:
        audit.drop(split, image_id, f"{damaged}: {exc}")
        return None


def _image_patches(root: Path, split: str, image_id: str, padding: int,
                   class_names: tuple[str, ...], audit: DataAudit, prints: list[ImagePrint]):
    """Yield (class index, patch) for each usable box of one image, auditing the rest and
    adding the image's print for the leakage check."""
    xml_path = root / "Annotations" / f"{image_id}.xml"
    jpg_path = root / "JPEGImages" / f"{image_id}.jpg"
    annotation = _read_or_drop(parse_annotation, xml_path, MalformedAnnotationError, audit, split, image_id,
                               missing=f"annotation {xml_path.name} is missing", damaged="malformed annotation")
    if annotation is None:
        return
    audit.annotations_read[split] += len(annotation.boxes)
    lost = f"({len(annotation.boxes)} boxes lost)"
    image = _read_or_drop(decode_rgb, jpg_path, CorruptImageError, audit, split, image_id,
                          missing=f"image {jpg_path.name} is missing {lost}", damaged=f"corrupt image {lost}")
    if image is None:
        return
    audit.images_read[split] += 1
    prints.append(image_print(split, image_id, jpg_path, image))
    height, width = image.shape[:2]
    for number, box in enumerate(annotation.boxes):
        item = f"{image_id} box {number} {box.class_name} {box.as_tuple()}"
        if box.class_name not in class_names:
            audit.drop(split, item, f"unknown class {box.class_name!r} (valid: {', '.join(class_names)})")
        elif problem := box.shape_problem():
            audit.drop(split, item, problem)
        elif not box.inside(width, height):
            audit.drop(split, item, f"box outside the {width}x{height} image")
        else:
            audit.keep(split, box.class_name)
            yield class_names.index(box.class_name), crop_with_padding(image, box.as_tuple(), padding)

