"""Detection metrics: box IoU, matching detections to ground truth, AP at IoU 0.5 (boxes and
masks), the matched counts and scores, and the per-image count table.

Ground truth of a split is one (n_i x 4) array of x1, y1, x2, y2 boxes and one array of class
indices per image. Detections are one packed (D x 7) array, a row per box: image index, x1, y1,
x2, y2, score, class index (the form the analysis caches). A detection is a true positive when,
taken in descending score order (a stable sort, as pycocotools'), it has IoU at least 0.5 with a
not yet matched ground-truth box of its image and class; it takes the one it overlaps most (the
later one on equal IoU). This is COCO's matching at one IoU threshold without crowd boxes or
area ranges, so the AP below is pycocotools' AP at IoU 0.5, area "all", 100 detections.

Weights (n images, or B x n for B bootstrap resamples) count each image's boxes that many times:
the scores become arrays over B. Ratios with an empty denominator are 0, as in the
classification metrics; an AP of a class without ground truth is nan and left out of the mean.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from pycocotools import mask as coco_mask

from trainables.metrics.classification import nan_mean, safe_divide

DETECTION_COLUMNS = ("image", "x1", "y1", "x2", "y2", "score", "label")
AP_IOU_THRESHOLD = 0.5
AP_MAX_DETECTIONS = 100
RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101)
_AP_CHUNK_CELLS = 4_000_000


def detection_array(detections: np.ndarray, num_images: int, num_classes: int | None = None) -> np.ndarray:
    """The packed detections as a (D x 7) float64 array, after checking that every image and
    class index is a whole number in range."""
    array = np.asarray(detections, dtype=np.float64)
    if array.size == 0:
        return array.reshape(0, len(DETECTION_COLUMNS))
    if array.ndim != 2 or array.shape[1] != len(DETECTION_COLUMNS):
        raise ValueError(f"detections must be D x {len(DETECTION_COLUMNS)} ({', '.join(DETECTION_COLUMNS)}), "
                         f"got shape {array.shape}")
    for column, bound in ((0, num_images), (6, num_classes)):
        values = array[:, column]
        bad = (values != np.round(values)) | (values < 0) | (values >= (np.inf if bound is None else bound))
        if bad.any():
            raise ValueError(f"detection {DETECTION_COLUMNS[column]} index {float(values[bad][0])!r} is not a whole "
                             f"number in [0, {bound})")
    return array


def _truth_arrays(truth_boxes: Sequence[np.ndarray], truth_labels: Sequence[np.ndarray],
                  num_classes: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All truth boxes (G x 4), their image indices and their class indices, image by image,
    after checking that boxes and labels pair up and that the labels are in [0, num_classes)."""
    if len(truth_boxes) != len(truth_labels):
        raise ValueError(f"{len(truth_boxes)} images of truth boxes but {len(truth_labels)} of truth labels")
    boxes = [np.asarray(b, dtype=np.float64).reshape(-1, 4) for b in truth_boxes]
    labels = [np.asarray(lab, dtype=np.int64).reshape(-1) for lab in truth_labels]
    for index, (b, lab) in enumerate(zip(boxes, labels)):
        if len(b) != len(lab):
            raise ValueError(f"image {index} has {len(b)} truth boxes but {len(lab)} truth labels")
    label = np.concatenate(labels) if labels else np.zeros(0, dtype=np.int64)
    bad = (label < 0) | (label >= (np.inf if num_classes is None else num_classes))
    if bad.any():
        raise ValueError(f"truth label {label[bad][0]} is not in [0, {num_classes})")
    image = np.repeat(np.arange(len(boxes)), [len(b) for b in boxes])
    return np.concatenate(boxes) if boxes else np.zeros((0, 4)), image, label


def _detection_weights(weights: np.ndarray | None, num_images: int) -> np.ndarray:
    """Ones per image without ``weights``, else the weights (n or B x n) checked against n."""
    if weights is None:
        return np.ones(num_images)
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim not in (1, 2) or weights.shape[-1] != num_images:
        raise ValueError(f"weights must be n or B x n with n = {num_images} images, got shape {weights.shape}")
    return weights


def box_iou(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """IoU of every box of ``first`` (N x 4, x1 y1 x2 y2) with every box of ``second`` (M x 4),
    in float64 as pycocotools computes it; 0 for boxes that only touch."""
    first = np.asarray(first, dtype=np.float64)
    second = np.asarray(second, dtype=np.float64)
    width = np.minimum(first[:, None, 2], second[None, :, 2]) - np.maximum(first[:, None, 0], second[None, :, 0])
    height = np.minimum(first[:, None, 3], second[None, :, 3]) - np.maximum(first[:, None, 1], second[None, :, 1])
    inter = np.where((width > 0) & (height > 0), width * height, 0.0)
    area_first = (first[:, 2] - first[:, 0]) * (first[:, 3] - first[:, 1])
    area_second = (second[:, 2] - second[:, 0]) * (second[:, 3] - second[:, 1])
    union = area_first[:, None] + area_second[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=inter > 0)


def _score_order(detections: np.ndarray) -> np.ndarray:
    """Detection indices by descending score, ties by image then by position in the array: the
    order pycocotools accumulates them in (a stable sort of each image's, then of all)."""
    return np.lexsort((np.arange(len(detections)), detections[:, 0], -detections[:, 5]))


def _candidate_pairs(truth_image: np.ndarray, truth_label: np.ndarray, detections: np.ndarray,
                     overlaps: Callable[[np.ndarray, np.ndarray], np.ndarray],
                     iou_threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (detection, truth instance) pair of one image and class with IoU at or above the
    threshold (capped below 1 as pycocotools caps it), as detection, truth and IoU arrays.
    ``overlaps(detection indices, truth indices)`` gives the IoU matrix of one image's
    detections and truth instances (boxes or masks)."""
    threshold = min(iou_threshold, 1 - 1e-10)
    pairs = []
    det_image = detections[:, 0].astype(np.int64)
    for image in np.intersect1d(det_image, truth_image):
        det_index = np.flatnonzero(det_image == image)
        truth_index = np.flatnonzero(truth_image == image)
        iou = np.asarray(overlaps(det_index, truth_index), dtype=np.float64).reshape(len(det_index), len(truth_index))
        same_class = detections[det_index, 6][:, None] == truth_label[truth_index][None, :]
        rows, cols = np.nonzero(same_class & (iou >= threshold))
        pairs.append((det_index[rows], truth_index[cols], iou[rows, cols]))
    if not pairs:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0)
    return tuple(np.concatenate(parts) for parts in zip(*pairs))


def _greedy_matches(detections: np.ndarray, num_truth: int,
                    pairs: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """COCO's greedy matching of the candidate ``pairs``: by descending score, each detection
    takes the unmatched truth instance it overlaps most (the later one on equal IoU); whether
    each detection (in the array's order) was matched."""
    det, gt, iou = pairs
    rank = np.empty(len(detections), dtype=np.int64)
    rank[_score_order(detections)] = np.arange(len(detections))
    order = np.lexsort((-gt, -iou, rank[det]))
    matched = np.zeros(len(detections), dtype=bool)
    taken = np.zeros(num_truth, dtype=bool)
    for d, g in zip(det[order].tolist(), gt[order].tolist()):
        if not matched[d] and not taken[g]:
            matched[d] = taken[g] = True
    return matched


def match_detections(truth_boxes: Sequence[np.ndarray], truth_labels: Sequence[np.ndarray],
                     detections: np.ndarray, *, iou_threshold: float = AP_IOU_THRESHOLD) -> np.ndarray:
    """Whether each detection (in the array's order) is a true positive under COCO's greedy
    matching: by descending score, each detection takes the unmatched truth box of its image and
    class that it overlaps most, if that IoU is at least ``iou_threshold``; each truth box is
    matched at most once."""
    if not 0.0 < iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold!r}")
    detections = detection_array(detections, len(truth_boxes))
    boxes, truth_image, truth_label = _truth_arrays(truth_boxes, truth_labels)

    def overlaps(det_index: np.ndarray, truth_index: np.ndarray) -> np.ndarray:
        return box_iou(detections[det_index, 1:5], boxes[truth_index])

    pairs = _candidate_pairs(truth_image, truth_label, detections, overlaps, iou_threshold)
    return _greedy_matches(detections, len(boxes), pairs)


def _top_per_image_class(detections: np.ndarray, order: np.ndarray, limit: int) -> np.ndarray:
    """Mask of the detections among the ``limit`` best-scoring (in ``order``) of their image and
    class, the only ones pycocotools evaluates."""
    group = detections[order, 0] * (detections[:, 6].max(initial=0) + 1) + detections[order, 6]
    by_group = np.argsort(group, kind="stable")
    sorted_group = group[by_group]
    position = np.arange(len(group)) - np.searchsorted(sorted_group, sorted_group, side="left")
    kept = np.zeros(len(detections), dtype=bool)
    kept[order[by_group]] = position < limit
    return kept


def _interpolated_precision(true_positive: np.ndarray, weights: np.ndarray, truth_total: np.ndarray) -> np.ndarray:
    """COCO's AP of one class's ranked detections (B x Dc weights, Dc true-positive flags) for each
    of B resamples with ``truth_total`` truth boxes: precision made non-increasing from the right,
    read at the first point whose recall reaches each of 101 thresholds (0 past the last point),
    averaged."""
    num_resamples, count = weights.shape
    if count == 0:
        return np.zeros(num_resamples)
    tp_sum = np.cumsum(weights * true_positive, axis=1)
    fp_sum = np.cumsum(weights * ~true_positive, axis=1)
    recall = np.divide(tp_sum, truth_total[:, None], out=np.zeros_like(tp_sum), where=truth_total[:, None] > 0)
    precision = tp_sum / (fp_sum + tp_sum + np.spacing(1))
    precision = np.flip(np.maximum.accumulate(np.flip(precision, axis=1), axis=1), axis=1)
    reached = np.searchsorted(RECALL_THRESHOLDS, recall, side="right")
    cells = np.arange(num_resamples)[:, None] * (len(RECALL_THRESHOLDS) + 1) + reached
    below = np.bincount(cells.ravel(), minlength=num_resamples * (len(RECALL_THRESHOLDS) + 1))
    first = np.cumsum(below.reshape(num_resamples, -1), axis=1)[:, :len(RECALL_THRESHOLDS)]
    read = np.take_along_axis(precision, np.minimum(first, count - 1), axis=1)
    return np.where(first < count, read, 0.0).mean(axis=1)


def _class_ap(true_positive: np.ndarray, det_image: np.ndarray, truth_counts: np.ndarray,
              weights: np.ndarray) -> np.ndarray:
    """AP of one class for each row of the B x n ``weights`` (nan where a row holds none of its
    truth boxes), a chunk of rows at a time to keep the B x Dc work arrays small."""
    truth_total = weights @ truth_counts
    chunk = max(1, _AP_CHUNK_CELLS // max(1, len(det_image)))
    ap = np.concatenate([_interpolated_precision(true_positive, weights[start:start + chunk][:, det_image],
                                                 truth_total[start:start + chunk])
                         for start in range(0, len(weights), chunk)])
    return np.where(truth_total > 0, ap, np.nan)


def average_precision_50(truth_boxes: Sequence[np.ndarray], truth_labels: Sequence[np.ndarray],
                         detections: np.ndarray, class_names: tuple[str, ...],
                         weights: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """``ap50_<class>`` and their mean over the classes with truth boxes, ``map50``: pycocotools'
    AP at IoU 0.5, area "all", at most 100 detections per image and class (101-point interpolated
    precision over detections ranked by descending score, ties by image then array position).

    With ``weights`` (n, or B x n) each image's truth boxes and detections count that many times
    (weighted cumulative true and false positives), so integer weights give the AP of the images
    repeated, exactly when no two detections of one class share a score; values then have the
    weights' leading shape. A class without truth boxes (in a resample) has AP nan.
    """
    num_images = len(truth_boxes)
    detections = detection_array(detections, num_images, len(class_names))
    _, truth_image, truth_label = _truth_arrays(truth_boxes, truth_labels, len(class_names))
    true_positive = match_detections(truth_boxes, truth_labels, detections)
    return _ap50_of_matches(detections, true_positive, (truth_image, truth_label), num_images, class_names, weights,
                            prefix="")


def _ap50_of_matches(detections: np.ndarray, true_positive: np.ndarray, truth: tuple[np.ndarray, np.ndarray],
                     num_images: int, class_names: tuple[str, ...], weights: np.ndarray | None, *,
                     prefix: str) -> dict[str, np.ndarray]:
    """``<prefix>ap50_<class>`` and ``<prefix>map50`` of detections with their true-positive
    flags, against the truth instances' (image, class) indices: COCO's AP of each class over its
    (at most 100 per image) detections by descending score, weighted per image. Box and mask
    AP@0.5 both accumulate here, so they differ only in how detections were matched."""
    truth_image, truth_label = truth
    weights = _detection_weights(weights, num_images)
    rows = weights.reshape(-1, num_images)
    order = _score_order(detections)
    kept = _top_per_image_class(detections, order, AP_MAX_DETECTIONS)
    ranked = order[kept[order]]
    per_class = {}
    for index, name in enumerate(class_names):
        of_class = ranked[detections[ranked, 6] == index]
        truth_counts = np.bincount(truth_image[truth_label == index], minlength=num_images)
        per_class[f"{prefix}ap50_{name}"] = _class_ap(true_positive[of_class],
                                                      detections[of_class, 0].astype(np.int64), truth_counts, rows)
    leading = weights.shape[:-1]
    values = np.stack(list(per_class.values()), axis=-1).reshape(*leading, len(class_names))
    return {**{key: value.reshape(leading) for key, value in per_class.items()},
            f"{prefix}map50": nan_mean(values, axis=-1)}


def mask_average_precision_50(truth_labels: Sequence[np.ndarray], truth_masks: Sequence[list[dict]],
                              detections: np.ndarray, detection_masks: Sequence[list[dict]],
                              class_names: tuple[str, ...], weights: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """``mask_ap50_<class>`` and their mean over the classes with truth instances,
    ``mask_map50``: ``average_precision_50`` with detections matched to truth instances by mask
    IoU (pycocotools' ``maskUtils.iou``, no crowd regions) instead of box IoU, which is
    pycocotools' segm AP at IoU 0.5, area "all", 100 detections; ``weights`` (n, or B x n)
    resample images as for boxes, for the bootstrap.

    ``truth_masks`` and ``detection_masks`` hold per image the ``encode_masks`` RLEs of its truth
    instances (in ``truth_labels`` order) and of its detections (in the order of its rows in
    ``detections``), as ``coco_average_precision`` takes them.
    """
    num_images = len(truth_labels)
    detections = detection_array(detections, num_images, len(class_names))
    truth_rles = _instance_masks(truth_masks, [len(np.asarray(lab).reshape(-1)) for lab in truth_labels], "truth")
    row_images = detections[:, 0].astype(np.int64)
    detection_rles = _instance_masks(detection_masks, np.bincount(row_images, minlength=num_images), "detection")
    detection_rles = [detection_rles[i] for i in np.argsort(np.argsort(row_images, kind="stable"), kind="stable")]
    _, truth_image, truth_label = _truth_arrays([np.zeros((len(m), 4)) for m in truth_masks], truth_labels,
                                                len(class_names))

    def overlaps(det_index: np.ndarray, truth_index: np.ndarray) -> np.ndarray:
        return coco_mask.iou([detection_rles[i] for i in det_index], [truth_rles[j] for j in truth_index],
                             [0] * len(truth_index))

    pairs = _candidate_pairs(truth_image, truth_label, detections, overlaps, AP_IOU_THRESHOLD)
    true_positive = _greedy_matches(detections, len(truth_rles), pairs)
    return _ap50_of_matches(detections, true_positive, (truth_image, truth_label), num_images, class_names, weights,
                            prefix="mask_")


def _instance_masks(masks: Sequence[list[dict]], counts: Sequence[int], kind: str) -> list[dict]:
    """Per-image RLE lists flattened image by image, after checking that image i has
    ``counts[i]`` of them (one per instance of that ``kind``, truth or detection)."""
    if len(masks) != len(counts):
        raise ValueError(f"{kind} masks are given for {len(masks)} images, expected {len(counts)}")
    for image, (of_image, count) in enumerate(zip(masks, counts)):
        if len(of_image) != count:
            raise ValueError(f"image {image} has {len(of_image)} {kind} masks for {count} {kind} instances")
    return [rle for of_image in masks for rle in of_image]


def detection_counts(truth_boxes: Sequence[np.ndarray], truth_labels: Sequence[np.ndarray],
                     detections: np.ndarray, num_classes: int, *, min_confidence: float = 0.0) -> np.ndarray:
    """Per image and class (n x C x 3): true positives, false positives (unmatched detections)
    and false negatives (unmatched truth boxes) of the detections scoring at least
    ``min_confidence``, matched at IoU 0.5 within their class."""
    num_images = len(truth_boxes)
    detections = detection_array(detections, num_images, num_classes)
    detections = detections[detections[:, 5] >= min_confidence]
    _, truth_image, truth_label = _truth_arrays(truth_boxes, truth_labels, num_classes)
    true_positive = match_detections(truth_boxes, truth_labels, detections)
    cell = detections[:, 0].astype(np.int64) * num_classes + detections[:, 6].astype(np.int64)
    size = num_images * num_classes
    tp = np.bincount(cell, weights=true_positive, minlength=size)
    found = np.bincount(cell, minlength=size)
    truth = np.bincount(truth_image * num_classes + truth_label, minlength=size)
    return np.stack([tp, found - tp, truth - tp], axis=-1).reshape(num_images, num_classes, 3).astype(np.float64)


def _matched_scores(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> dict[str, np.ndarray]:
    precision = safe_divide(tp, tp + fp)
    recall = safe_divide(tp, tp + fn)
    return {"precision": precision, "recall": recall, "f1": safe_divide(2 * tp, 2 * tp + fp + fn),
            "accuracy": safe_divide(tp, tp + fp + fn)}


def detection_scores(truth_boxes: Sequence[np.ndarray], truth_labels: Sequence[np.ndarray],
                     detections: np.ndarray, class_names: tuple[str, ...], weights: np.ndarray | None = None,
                     *, min_confidence: float = 0.0) -> dict[str, np.ndarray]:
    """Every detection score of the detections scoring at least ``min_confidence``.

    ``precision``, ``recall``, ``f1`` and ``accuracy`` (TP / (TP + FP + FN), as the study defines
    it) pool the matched counts of all classes; ``<score>_<class>`` are each class's own. Each is
    0 where its denominator is empty. ``count_mae_<class>`` is the mean over images of
    |detections of the class - truth boxes of the class|, ``count_mae`` its mean over classes.
    ``map50`` and ``ap50_<class>`` are ``average_precision_50`` of the same thresholded
    detections: every score here describes the detector whose output keeps those boxes (the
    seed's val mAP "at confidence 0.4"); ``min_confidence=0`` gives the threshold-free AP.
    With ``weights`` (n, or B x n) each value has the weights' leading shape.
    """
    num_images, num_classes = len(truth_boxes), len(class_names)
    counts = detection_counts(truth_boxes, truth_labels, detections, num_classes, min_confidence=min_confidence)
    detections = detection_array(detections, num_images, num_classes)
    w = _detection_weights(weights, num_images)
    tp, fp, fn = (w @ counts[..., k] for k in range(3))
    per_class = _matched_scores(tp, fp, fn)
    pooled = _matched_scores(tp.sum(axis=-1), fp.sum(axis=-1), fn.sum(axis=-1))
    total = w.sum(axis=-1, keepdims=True)
    count_error = np.abs(counts[..., 1] - counts[..., 2])  # |(TP + FP) - (TP + FN)| per image and class
    count_mae = np.divide(w @ count_error, total, out=np.full(np.shape(tp), np.nan), where=total > 0)
    scores = {**pooled, "count_mae": count_mae.mean(axis=-1)}
    for index, name in enumerate(class_names):
        scores |= {f"{key}_{name}": value[..., index] for key, value in per_class.items()}
        scores[f"count_mae_{name}"] = count_mae[..., index]
    kept = detections[detections[:, 5] >= min_confidence]
    return scores | average_precision_50(truth_boxes, truth_labels, kept, class_names, weights)


def count_table(truth_labels: Sequence[np.ndarray], detections: np.ndarray, class_names: tuple[str, ...],
                *, min_confidence: float) -> list[dict]:
    """One row per image: ``image`` (its index), and per class ``actual_<class>`` (truth boxes)
    and ``automatic_<class>`` (detections scoring at least ``min_confidence``), the per-image
    count table the study publishes."""
    num_images, num_classes = len(truth_labels), len(class_names)
    detections = detection_array(detections, num_images, num_classes)
    detections = detections[detections[:, 5] >= min_confidence]
    automatic = np.bincount(detections[:, 0].astype(np.int64) * num_classes + detections[:, 6].astype(np.int64),
                            minlength=num_images * num_classes).reshape(num_images, num_classes)
    rows = []
    for image, labels in enumerate(truth_labels):
        actual = np.bincount(np.asarray(labels, dtype=np.int64).reshape(-1), minlength=num_classes)
        row = {"image": image}
        for index, name in enumerate(class_names):
            row |= {f"actual_{name}": int(actual[index]), f"automatic_{name}": int(automatic[image, index])}
        rows.append(row)
    return rows
