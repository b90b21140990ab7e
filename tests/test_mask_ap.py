"""COCO's box and mask AP (``coco_average_precision``, with ``average_precision_50`` for box
AP@0.5) against pycocotools run the documented way, from COCO JSON files, on generated
lymphoblast smears with instance masks."""

from __future__ import annotations

import contextlib
import io
import json

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from tests.synthetic_data import _lymphoblast_smear
from trainables.datasets.detection import mask_box
from trainables.metrics import (
    average_precision_50,
    coco_average_precision,
    encode_masks,
    mask_average_precision_50,
    metric_direction,
)

NAMES = ("lymphoblast", "non-lymphoblast")
WIDTH, HEIGHT = 160, 120


def _disc(x: float, y: float, radius: float) -> np.ndarray:
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    cv2.circle(mask, (round(x), round(y)), round(radius), 1, -1)
    return mask


def _scene(seed: int, num_images: int = 12):
    """Truth: the generator's cells rasterised from their polygons. Detections: each cell found
    zero to two times as a shifted, grown or shrunk copy of its mask (sometimes relabelled), plus
    false discs; each detection's box is its mask's. Returns per image the truth (boxes, labels,
    masks) and the detections (packed rows, masks)."""
    rng = np.random.default_rng(seed)
    truth, found = [], []
    for image in range(num_images):
        _, cells = _lymphoblast_smear(rng, WIDTH, HEIGHT)
        masks = [cv2.fillPoly(np.zeros((HEIGHT, WIDTH), np.uint8), [polygon.astype(np.int32)], 1)
                 for _, polygon in cells]
        labels = np.array([kind for kind, _ in cells], np.int64)
        truth.append((np.array([mask_box(m) for m in masks], np.float32).reshape(-1, 4), labels,
                      np.array(masks, np.uint8).reshape(-1, HEIGHT, WIDTH)))
        predicted = []
        for mask, label in zip(masks, labels):
            for _ in range(rng.integers(0, 3)):
                shifted = np.roll(mask, tuple(rng.integers(-4, 5, 2)), axis=(0, 1))
                size = int(rng.integers(1, 6))
                kernel = np.ones((size, size), np.uint8)
                changed = cv2.dilate(shifted, kernel) if rng.random() < 0.5 else cv2.erode(shifted, kernel)
                kind = label if rng.random() < 0.85 else 1 - label
                predicted.append((changed, kind, rng.uniform(0.3, 1.0)))
        for _ in range(rng.integers(0, 3)):
            disc = _disc(*rng.uniform((15, 15, 5), (WIDTH - 15, HEIGHT - 15, 14)))
            predicted.append((disc, int(rng.integers(0, 2)), rng.uniform(0.0, 0.8)))
        predicted = [p for p in predicted if p[0].any()]
        predicted.sort(key=lambda p: -p[2])
        rows = np.array([[image, *mask_box(m), score, kind] for m, kind, score in predicted], np.float32)
        found.append((rows.reshape(-1, 7), np.array([m for m, _, _ in predicted], np.uint8).reshape(-1, HEIGHT, WIDTH)))
    return truth, found


def _pycocotools_stats(tmp_path, truth, found, iou_type: str) -> np.ndarray:
    """COCOeval's summary on ground truth and results written as COCO JSON files and read back
    with ``COCO(file)`` and ``loadRes(file)``."""
    images, annotations, results = [], [], []
    for image, ((boxes, labels, masks), (rows, predicted)) in enumerate(zip(truth, found)):
        images.append({"id": image + 1, "height": HEIGHT, "width": WIDTH, "file_name": f"{image}.png"})
        for box, label, mask in zip(boxes, labels, masks):
            rle = mask_utils.encode(np.asfortranarray(mask))
            x1, y1, x2, y2 = (float(v) for v in box)
            area = float(mask_utils.area(rle)) if iou_type == "segm" else (x2 - x1) * (y2 - y1)
            annotations.append({"id": len(annotations) + 1, "image_id": image + 1, "category_id": int(label) + 1,
                                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": area, "iscrowd": 0,
                                "segmentation": {**rle, "counts": rle["counts"].decode()}})
        for row, mask in zip(rows, predicted):
            result = {"image_id": image + 1, "category_id": int(row[6]) + 1, "score": float(row[5])}
            if iou_type == "segm":
                rle = mask_utils.encode(np.asfortranarray(mask))
                result["segmentation"] = {**rle, "counts": rle["counts"].decode()}
            else:
                x1, y1, x2, y2 = (float(v) for v in row[1:5])
                result["bbox"] = [x1, y1, x2 - x1, y2 - y1]
            results.append(result)
    (tmp_path / "truth.json").write_text(json.dumps({
        "images": images, "annotations": annotations,
        "categories": [{"id": index + 1, "name": name} for index, name in enumerate(NAMES)]}))
    (tmp_path / "results.json").write_text(json.dumps(results))
    with contextlib.redirect_stdout(io.StringIO()):
        reference = COCO(str(tmp_path / "truth.json"))
        evaluation = COCOeval(reference, reference.loadRes(str(tmp_path / "results.json")), iou_type)
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return evaluation.stats


def _ours(truth, found, *, masks: bool = True) -> dict[str, float]:
    boxes, labels = [t[0] for t in truth], [t[1] for t in truth]
    detections = np.concatenate([rows for rows, _ in found])
    coco = coco_average_precision(boxes, labels, detections, NAMES, image_sizes=[(HEIGHT, WIDTH)] * len(truth),
                                  truth_masks=[encode_masks(t[2]) for t in truth] if masks else None,
                                  detection_masks=[encode_masks(m) for _, m in found] if masks else None)
    return {**coco, "map50": float(average_precision_50(boxes, labels, detections, NAMES)["map50"])}


@pytest.mark.parametrize("seed", range(4))
def test_box_and_mask_ap_equal_pycocotools_on_generated_lymphoblast_smears(seed, tmp_path):
    truth, found = _scene(seed)
    ours = _ours(truth, found)
    box, segm = (_pycocotools_stats(tmp_path, truth, found, kind) for kind in ("bbox", "segm"))
    assert ours["map50"] == pytest.approx(box[1], abs=5e-4)
    assert ours["box_map"] == pytest.approx(box[0], abs=5e-4)
    assert ours["mask_map50"] == pytest.approx(segm[1], abs=5e-4)
    assert ours["mask_map"] == pytest.approx(segm[0], abs=5e-4)
    assert 0 < ours["mask_map"] < ours["mask_map50"] < 1


def _mask_ap50(truth, found, weights=None) -> np.ndarray:
    """``mask_average_precision_50``, the bootstrap path, of a scene."""
    return mask_average_precision_50([t[1] for t in truth], [encode_masks(t[2]) for t in truth],
                                     np.concatenate([rows for rows, _ in found]), [encode_masks(m) for _, m in found],
                                     NAMES, weights)["mask_map50"]


@pytest.mark.parametrize("seed", range(4))
def test_bootstrap_mask_ap50_equals_pycocotools_segm_ap50(seed, tmp_path):
    truth, found = _scene(seed)
    reference = _pycocotools_stats(tmp_path, truth, found, "segm")[1]
    assert float(_mask_ap50(truth, found)) == pytest.approx(reference, abs=5e-4)
    assert _mask_ap50(truth, found, np.ones((3, len(truth)))) == pytest.approx([reference] * 3, abs=5e-4)


@pytest.mark.parametrize("seed", range(2))
def test_resampling_weights_give_pycocotools_mask_ap50_of_the_images_repeated(seed, tmp_path):
    truth, found = _scene(seed + 10, num_images=6)
    weights = np.array([[2, 0, 1, 3, 0, 1], [0, 1, 1, 0, 2, 2]])
    for row, counts in zip(_mask_ap50(truth, found, weights), weights):
        repeated = [index for index, count in enumerate(counts) for _ in range(count)]
        rows = [(np.c_[np.full(len(found[i][0]), position), found[i][0][:, 1:]], found[i][1])
                for position, i in enumerate(repeated)]
        assert row == pytest.approx(_pycocotools_stats(tmp_path, [truth[i] for i in repeated], rows, "segm")[1],
                                    abs=5e-4)


def test_mask_ap50_pairs_each_detection_row_with_its_own_mask_whatever_the_row_order():
    truth, found = _scene(5, num_images=5)
    rows = np.concatenate([r for r, _ in found])
    masks = [rle for _, m in found for rle in encode_masks(m)]
    shuffled = np.random.default_rng(0).permutation(len(rows))
    per_image = [[masks[i] for i in shuffled if rows[i, 0] == image] for image in range(len(found))]
    ours = mask_average_precision_50([t[1] for t in truth], [encode_masks(t[2]) for t in truth], rows[shuffled],
                                     per_image, NAMES)
    assert float(ours["mask_map50"]) == pytest.approx(float(_mask_ap50(truth, found)))
    assert set(ours) == {"mask_ap50_lymphoblast", "mask_ap50_non-lymphoblast", "mask_map50"}
    with pytest.raises(ValueError, match="image 0 has"):
        mask_average_precision_50([t[1] for t in truth], [encode_masks(t[2]) for t in truth], rows[shuffled],
                                  [[]] + per_image[1:], NAMES)


def test_box_only_data_gets_box_ap_alone_and_no_detections_score_zero():
    truth, found = _scene(7, num_images=4)
    assert set(_ours(truth, found, masks=False)) == {"box_map", "map50"}
    nothing = [(rows[:0], masks[:0]) for rows, masks in found]
    assert _ours(truth, nothing) == {"box_map": 0.0, "mask_map50": 0.0, "mask_map": 0.0, "map50": 0.0}


def test_mask_ap_needs_masks_on_both_sides_and_a_size_per_image():
    truth, found = _scene(8, num_images=2)
    boxes, labels = [t[0] for t in truth], [t[1] for t in truth]
    detections = np.concatenate([rows for rows, _ in found])
    with pytest.raises(ValueError, match="both truth_masks and detection_masks"):
        coco_average_precision(boxes, labels, detections, NAMES, image_sizes=[(HEIGHT, WIDTH)] * 2,
                               truth_masks=[encode_masks(t[2]) for t in truth])
    with pytest.raises(ValueError, match="image_sizes has 1 entries for 2 images"):
        coco_average_precision(boxes, labels, detections, NAMES, image_sizes=[(HEIGHT, WIDTH)])


def test_the_new_aps_are_maximised():
    assert {metric_direction(name) for name in ("val_mask_map50", "val_mask_map", "val_box_map", "mask_map",
                                                "mask_ap50_lymphoblast")} == {"max"}
