"""COCO average precision (boxes and masks) by pycocotools.

pycocotools' own COCOeval, called on ground truth and detections built in memory: box AP over
IoU 0.50:0.95 and, for instance segmentation, mask AP at 0.5 and over 0.50:0.95, area "all", at
most 100 detections per image and class (COCO's standard numbers). Box AP at 0.5 is
``average_precision_50`` (the same definition, weighted for the bootstrap), not repeated here.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence

import numpy as np
from pycocotools import mask as coco_mask

from trainables.metrics.detection import detection_array

COCO_SCORES = {"bbox": {"box_map": 0}, "segm": {"mask_map": 0, "mask_map50": 1}}


def encode_masks(masks: np.ndarray) -> list[dict]:
    """n x H x W binary masks (nonzero: the instance) as pycocotools' compressed RLEs, the form
    ``coco_average_precision`` takes: a few bytes per instance instead of H x W."""
    masks = np.asarray(masks)
    if len(masks) == 0:
        return []
    return coco_mask.encode(np.asfortranarray(np.moveaxis(masks != 0, 0, -1).astype(np.uint8)))


def _xywh(boxes: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.c_[boxes[:, :2], boxes[:, 2:] - boxes[:, :2]]


def _coco_truth(truth_boxes: Sequence[np.ndarray], truth_labels: Sequence[np.ndarray],
                truth_masks: Sequence[list[dict]] | None, num_classes: int, image_sizes: Sequence[tuple[int, int]]):
    """The ground truth as a pycocotools ``COCO`` (images 1..n, categories 1..C, annotations
    numbered from 1: COCOeval reads id 0 as "unmatched")."""
    from pycocotools.coco import COCO  # pycocotools.coco imports matplotlib: only when evaluating

    annotations = []
    for image, (boxes, labels) in enumerate(zip(truth_boxes, truth_labels)):
        for index, (box, label) in enumerate(zip(_xywh(boxes), np.asarray(labels).reshape(-1))):
            annotation = {"id": len(annotations) + 1, "image_id": image + 1, "category_id": int(label) + 1,
                          "bbox": box.tolist(), "area": float(box[2] * box[3]), "iscrowd": 0}
            if truth_masks is not None:
                rle = truth_masks[image][index]
                annotation |= {"segmentation": rle, "area": float(coco_mask.area(rle))}
            annotations.append(annotation)
    truth = COCO()
    truth.dataset = {"images": [{"id": image + 1, "height": int(h), "width": int(w)}
                                for image, (h, w) in enumerate(image_sizes)],
                     "annotations": annotations,
                     "categories": [{"id": label + 1, "name": str(label)} for label in range(num_classes)]}
    truth.createIndex()
    return truth


def _coco_results(truth, detections: np.ndarray, detection_masks: Sequence[list[dict]] | None) -> object:
    """The detections as pycocotools results (``COCO.loadRes``: boxes, or masks with their box
    and area derived as loadRes derives them); an empty ``COCO`` when there are none, which
    loadRes refuses."""
    from pycocotools.coco import COCO

    results = []
    for image in range(len(truth.imgs)):
        rows = detections[detections[:, 0] == image]
        for index, row in enumerate(rows):
            result = {"image_id": image + 1, "category_id": int(row[6]) + 1, "score": float(row[5])}
            if detection_masks is None:
                result["bbox"] = _xywh(row[1:5])[0].tolist()
            else:
                result["segmentation"] = detection_masks[image][index]
            results.append(result)
    if results:
        return truth.loadRes(results)
    empty = COCO()
    empty.dataset = {"images": list(truth.dataset["images"]), "annotations": [],
                     "categories": list(truth.dataset["categories"])}
    empty.createIndex()
    return empty


def _coco_eval_stats(truth, results, iou_type: str) -> np.ndarray:
    """COCOeval's 12 summary numbers (-1, "no truth to score against", as nan)."""
    from pycocotools.cocoeval import COCOeval

    evaluation = COCOeval(truth, results, iou_type)
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    return np.where(evaluation.stats < 0, np.nan, evaluation.stats)


def coco_average_precision(truth_boxes: Sequence[np.ndarray], truth_labels: Sequence[np.ndarray],
                           detections: np.ndarray, class_names: tuple[str, ...], *,
                           image_sizes: Sequence[tuple[int, int]],
                           truth_masks: Sequence[list[dict]] | None = None,
                           detection_masks: Sequence[list[dict]] | None = None) -> dict[str, float]:
    """COCO's AP by pycocotools' ``COCOeval``: ``box_map`` (boxes, AP averaged over IoU
    0.50:0.95) and, given masks, ``mask_map50`` and ``mask_map`` (masks, AP at IoU 0.5 and over
    0.50:0.95); each the mean over the classes with truth instances, nan when there are none.

    ``detections`` is the packed D x 7 array; ``truth_masks`` and ``detection_masks`` hold per
    image the ``encode_masks`` RLEs of its truth instances (in ``truth_boxes`` order) and of its
    detections (in the order of its rows in ``detections``); ``image_sizes`` is each image's
    (height, width).
    """
    if (truth_masks is None) != (detection_masks is None):
        raise ValueError("mask AP needs both truth_masks and detection_masks")
    num_images = len(truth_boxes)
    if len(image_sizes) != num_images:
        raise ValueError(f"image_sizes has {len(image_sizes)} entries for {num_images} images")
    detections = detection_array(detections, num_images, len(class_names))
    scores: dict[str, float] = {}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress and tables
        truth = _coco_truth(truth_boxes, truth_labels, truth_masks, len(class_names), image_sizes)
        for iou_type, wanted in COCO_SCORES.items():
            if iou_type == "segm" and truth_masks is None:
                continue
            results = _coco_results(truth, detections, detection_masks if iou_type == "segm" else None)
            stats = _coco_eval_stats(truth, results, iou_type)
            scores |= {name: float(stats[index]) for name, index in wanted.items()}
    return scores
