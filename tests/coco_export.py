"""BCCD's Pascal VOC boxes written as COCO instances JSON, for tests of the generic ``coco``
dataset on real images: ``export_bccd_as_coco(bccd_dir, out_dir)`` writes

    out_dir/annotations/instances_train.json
    out_dir/annotations/instances_val.json
    out_dir/annotations/instances_test.json
    out_dir/images/BloodImage_00001.jpg ...     (copies of the chosen images)

which ``prepare_coco(data_dir=None, root=str(out_dir), ...)`` reads with BCCD's own splits
(one file per split) and the classes RBC, WBC, Platelets (category ids 1, 2, 3). Each box is a
bare ``bbox`` (box-only data, so ``has_masks`` is False); ``width`` and ``height`` are the
image's own, read from its header. The data stays where it is: only the chosen images are
copied, into ``out_dir`` (a test's tmp folder, never the repository).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from PIL import Image

from trainables.datasets.detection.bccd_boxes import BCCD_CLASSES
from trainables.datasets.detection.types import SPLITS
from trainables.datasets.voc import parse_annotation, read_split_list

CATEGORY_IDS = {name: number for number, name in enumerate(BCCD_CLASSES, start=1)}


def export_bccd_as_coco(bccd_dir: Path, out_dir: Path, *, images_per_split: int | None = None) -> Path:
    """Write the first ``images_per_split`` images (all when None) of each of BCCD's split
    lists, in list order, as COCO files and image copies under ``out_dir``; returns ``out_dir``.
    ``bccd_dir`` is the ``BCCD_Dataset`` folder or its ``BCCD`` (VOC) folder. A box of a class
    outside RBC, WBC, Platelets keeps its name's absence as category id None, which the reader
    drops with its reason."""
    voc = Path(bccd_dir) / "BCCD" if (Path(bccd_dir) / "BCCD").is_dir() else Path(bccd_dir)
    out_dir = Path(out_dir)
    (out_dir / "annotations").mkdir(parents=True, exist_ok=True)
    (out_dir / "images").mkdir(exist_ok=True)
    for split in SPLITS:
        image_ids = read_split_list(voc, split)[:images_per_split]
        document = _coco_document(voc, image_ids, out_dir / "images")
        (out_dir / "annotations" / f"instances_{split}.json").write_text(json.dumps(document, indent=1))
    return out_dir


def _coco_document(voc: Path, image_ids: list[str], images_dir: Path) -> dict:
    """The COCO document of ``image_ids`` (their images copied into ``images_dir``)."""
    images, annotations = [], []
    for number, image_id in enumerate(image_ids, start=1):
        source = voc / "JPEGImages" / f"{image_id}.jpg"
        shutil.copyfile(source, images_dir / source.name)
        with Image.open(source) as image:
            width, height = image.size
        images.append({"id": number, "file_name": source.name, "width": width, "height": height})
        for box in parse_annotation(voc / "Annotations" / f"{image_id}.xml").boxes:
            x, y, box_width, box_height = box.xmin, box.ymin, box.xmax - box.xmin, box.ymax - box.ymin
            annotations.append({"id": len(annotations) + 1, "image_id": number,
                                "category_id": CATEGORY_IDS.get(box.class_name), "bbox": [x, y, box_width, box_height],
                                "area": box_width * box_height, "iscrowd": 0})
    return {"images": images, "annotations": annotations,
            "categories": [{"id": number, "name": name} for name, number in CATEGORY_IDS.items()]}
