"""Reading a COCO instances document into an ``AnnotationSet``: polygon segmentations (an
object may come in parts), RLE masks (decoded by pycocotools when installed), or bare boxes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trainables.datasets.detection.geometry import rle_module
from trainables.datasets.detection.regions import (
    AnnotatedImage,
    AnnotationSet,
    ClassMap,
    Region,
    RegionProblem,
    checked_polygon,
    checked_rect,
    finite_numbers,
    image_candidates,
    structure_error,
)


def parse_coco(doc: dict, path: Path, class_map: ClassMap) -> AnnotationSet:
    """A COCO instances document: polygon segmentations (one object may have several parts),
    RLE masks (decoded with pycocotools when installed), or a bare ``bbox``. Crowd regions
    (``iscrowd`` 1) are left out: they are not one object."""
    for key in ("images", "annotations", "categories"):
        if not isinstance(doc.get(key), list):
            raise structure_error(path, f"key {key!r}", "is missing or not a list")
    categories = _coco_categories(doc["categories"], path)
    entries, by_image, names, drops = {}, {}, set(), []
    for index, image in enumerate(doc["images"]):
        if not isinstance(image, dict) or "id" not in image or not isinstance(image.get("file_name"), str):
            raise structure_error(path, f"images[{index}]", "lacks 'id' or a 'file_name' string")
        if image["file_name"] in names or image["id"] in entries:
            drops.append((image["file_name"], f"file name or image id {image['id']!r} listed twice in "
                                              f"{path.name}; the first entry is used"))
            continue
        names.add(image["file_name"])
        entries[image["id"]] = image
        by_image[image["id"]] = []
    for index, annotation in enumerate(doc["annotations"]):
        if not isinstance(annotation, dict) or "image_id" not in annotation:
            raise structure_error(path, f"annotations[{index}]", "lacks 'image_id'")
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
            raise structure_error(path, f"categories[{index}]", "lacks 'id' or a 'name' string")
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
        except RegionProblem as problem:
            rejected.append((item, str(problem)))
    size = (entry.get("width"), entry.get("height"))
    declared = tuple(int(v) for v in size) if all(isinstance(v, int) for v in size) else None
    return AnnotatedImage(name, image_candidates(path.parent, name), tuple(regions), tuple(rejected), declared)


def _coco_region(annotation: dict, item: str, categories: dict, class_map: ClassMap) -> Region:
    if annotation.get("iscrowd"):
        raise RegionProblem("crowd region (iscrowd=1), not one object")
    if annotation.get("category_id") not in categories:
        raise RegionProblem(f"category id {annotation.get('category_id')!r} is not in the file's categories")
    label = categories[annotation["category_id"]]
    segmentation = annotation.get("segmentation")
    if isinstance(segmentation, list) and segmentation:
        geometry = {"polygons": tuple(_coco_polygon(part, number) for number, part in enumerate(segmentation))}
    elif isinstance(segmentation, dict):
        geometry = {"rle": _checked_rle(segmentation)}
    elif isinstance(annotation.get("bbox"), list) and len(annotation["bbox"]) == 4:
        geometry = {"box": checked_rect(*annotation["bbox"])}
    else:
        raise RegionProblem("no segmentation and no 4-number bbox")
    class_name = class_map.resolve(label)
    if class_name is None:
        raise RegionProblem(class_map.unknown(label))
    return Region(item=item, class_name=class_name, **geometry)


def _coco_polygon(part, number: int) -> np.ndarray:
    """One part of a COCO polygon segmentation (flat x1, y1, x2, y2, ...)."""
    values = finite_numbers(part)
    if values is None or len(values) % 2:
        raise RegionProblem(f"malformed polygon part {number}: not an even-length list of numbers")
    try:
        return checked_polygon(list(values[0::2]), list(values[1::2]))
    except RegionProblem as problem:
        raise RegionProblem(f"part {number}: {problem}") from None


def _checked_rle(segmentation: dict) -> dict:
    if rle_module() is None:
        raise RegionProblem("RLE segmentation needs pycocotools to decode (pip install pycocotools)")
    size = segmentation.get("size")
    if "counts" not in segmentation or not (isinstance(size, list) and len(size) == 2):
        raise RegionProblem("malformed RLE: needs 'counts' and 'size' [height, width]")
    return segmentation
