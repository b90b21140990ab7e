"""Every classification metric of the project, computed once, from confusion matrices and scores.

Each function is tested against scikit-learn. Undefined ratios (a class never predicted or
never present) count as 0, matching scikit-learn's ``zero_division=0``.

The functions take one confusion matrix (C x C) or a stack of them (... x C x C), and
``roc_auc_ovr`` takes optional per-sample weights (one row per resample): the analysis's
bootstrap computes the same metrics on a thousand resamples at once with these functions.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Sequence
from fnmatch import fnmatchcase

import numpy as np
from pycocotools import mask as coco_mask

from trainables.errors import UnknownNameError


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int,
                     weights: np.ndarray | None = None) -> np.ndarray:
    """Counts with true classes as rows and predicted classes as columns.

    ``weights`` (n samples, or B x n for B resamples) counts each sample that many times and
    gives a B x C x C stack.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    cell = y_true * num_classes + y_pred
    if weights is None:
        return np.bincount(cell, minlength=num_classes ** 2).reshape(num_classes, num_classes)
    weights = np.asarray(weights, dtype=np.float64)
    one_hot = np.zeros((len(cell), num_classes ** 2))
    one_hot[np.arange(len(cell)), cell] = 1.0
    return (weights @ one_hot).reshape(*weights.shape[:-1], num_classes, num_classes)


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)


def per_class_scores(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support of each class (last axis = class)."""
    true_positive = np.diagonal(cm, axis1=-2, axis2=-1).astype(np.float64)
    precision = _safe_divide(true_positive, cm.sum(axis=-2))
    recall = _safe_divide(true_positive, cm.sum(axis=-1))
    f1 = _safe_divide(2 * precision * recall, precision + recall)
    return {"precision": precision, "recall": recall, "f1": f1, "support": cm.sum(axis=-1)}


def _masked_mean(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return _safe_divide((values * mask).sum(axis=-1), mask.sum(axis=-1))


def metrics_from_confusion(cm: np.ndarray, class_names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Accuracy, macro/weighted F1, precision and recall, balanced accuracy, and per-class
    F1/recall/precision of one confusion matrix or a stack of them.

    Macro averages and balanced accuracy run over the classes present in the truth or the
    predictions (the truth only, for balanced accuracy), as scikit-learn's do.
    """
    cm = np.asarray(cm, dtype=np.float64)
    scores = per_class_scores(cm)
    present = ((cm.sum(axis=-2) + cm.sum(axis=-1)) > 0).astype(np.float64)
    in_truth = (cm.sum(axis=-1) > 0).astype(np.float64)
    total = cm.sum(axis=(-2, -1))
    support = scores["support"]
    metrics = {
        "accuracy": _safe_divide(np.trace(cm, axis1=-2, axis2=-1), total),
        "macro_f1": _masked_mean(scores["f1"], present),
        "macro_precision": _masked_mean(scores["precision"], present),
        "macro_recall": _masked_mean(scores["recall"], present),
        "balanced_accuracy": _masked_mean(scores["recall"], in_truth),
        "weighted_f1": _safe_divide((scores["f1"] * support).sum(axis=-1), total),
        "weighted_precision": _safe_divide((scores["precision"] * support).sum(axis=-1), total),
        "weighted_recall": _safe_divide((scores["recall"] * support).sum(axis=-1), total),
    }
    for index, name in enumerate(class_names):
        for score in ("f1", "recall", "precision"):
            metrics[f"{score}_{name}"] = scores[score][..., index]
    if len(class_names) == 2:
        metrics |= binary_scores(scores)
    return metrics


def binary_scores(scores: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A two-class task's scores named as binary studies report them, the second class being
    the positive one: sensitivity (its recall), specificity (the first class's recall), and its
    precision and F1."""
    return {"sensitivity": scores["recall"][..., 1], "specificity": scores["recall"][..., 0],
            "precision": scores["precision"][..., 1], "f1": scores["f1"][..., 1]}


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray,
                           class_names: tuple[str, ...]) -> dict[str, float]:
    """Every confusion-matrix metric of one set of predictions, as floats."""
    cm = confusion_matrix(y_true, y_pred, len(class_names))
    return {name: float(value) for name, value in metrics_from_confusion(cm, class_names).items()}


def binary_auc(positive: np.ndarray, scores: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Area under the ROC curve of ``scores`` for the boolean labels ``positive``.

    Tied scores count one half, as scikit-learn's trapezoidal ROC does. ``weights`` (n, or
    B x n) repeats samples; the result has the weights' leading shape, nan where the
    (resampled) labels hold only one class.
    """
    positive = np.asarray(positive, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    weights = np.ones(len(scores)) if weights is None else np.asarray(weights, dtype=np.float64)
    order = np.argsort(scores, kind="stable")
    sorted_scores, sorted_positive, w = scores[order], positive[order], weights[..., order]
    if len(scores) == 0:
        return np.full(w.shape[:-1], np.nan)
    negative_w = np.where(sorted_positive, 0.0, w)
    positive_w = np.where(sorted_positive, w, 0.0)
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    group = np.cumsum(np.isin(np.arange(len(scores)), starts)) - 1
    negatives_in_group = np.add.reduceat(negative_w, starts, axis=-1)
    negatives_below_group = np.cumsum(negatives_in_group, axis=-1) - negatives_in_group
    beaten = negatives_below_group[..., group] + 0.5 * negatives_in_group[..., group]
    wins = (positive_w * beaten).sum(axis=-1)
    pairs = positive_w.sum(axis=-1) * negative_w.sum(axis=-1)
    return np.divide(wins, pairs, out=np.full(np.shape(pairs), np.nan), where=pairs > 0)


def roc_auc_ovr(y_true: np.ndarray, probabilities: np.ndarray, class_names: tuple[str, ...],
                weights: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """One-vs-rest ROC-AUC of each class and their unweighted mean over the classes present
    (scikit-learn's ``roc_auc_score(..., multi_class='ovr', average='macro')``); for two
    classes also ``auc``, the second (positive) class's."""
    y_true = np.asarray(y_true)
    per_class = {f"auc_{name}": binary_auc(y_true == index, probabilities[:, index], weights)
                 for index, name in enumerate(class_names)}
    binary = {"auc": per_class[f"auc_{class_names[1]}"]} if len(class_names) == 2 else {}
    return {**per_class, "macro_auc": nan_mean(np.stack(list(per_class.values()), axis=-1), axis=-1), **binary}


def nan_mean(values: np.ndarray, axis: int) -> np.ndarray:
    """Mean along ``axis`` ignoring nan; nan (without a warning) where every value is nan."""
    values = np.asarray(values, dtype=np.float64)
    defined = ~np.isnan(values)
    return np.divide(np.where(defined, values, 0.0).sum(axis=axis), defined.sum(axis=axis),
                     out=np.full(np.delete(values.shape, axis % values.ndim), np.nan), where=defined.any(axis=axis))


def row_normalised(cm: np.ndarray) -> np.ndarray:
    """Each row of a confusion matrix as shares of its true class (0 for an empty row)."""
    cm = np.asarray(cm, dtype=np.float64)
    return _safe_divide(cm, cm.sum(axis=-1, keepdims=True))


def log_loss(y_true: np.ndarray, probabilities: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Mean negative log-likelihood of the true class (unweighted cross-entropy), clipped at
    1e-15 as scikit-learn's ``log_loss`` is."""
    y_true = np.asarray(y_true, dtype=np.int64)
    losses = -np.log(np.clip(probabilities[np.arange(len(y_true)), y_true], 1e-15, 1.0))
    weights = np.ones(len(y_true)) if weights is None else np.asarray(weights, dtype=np.float64)
    total = weights.sum(axis=-1)
    return np.divide(weights @ losses, total, out=np.full(np.shape(total), np.nan), where=total > 0)


def probability_metrics(y_true: np.ndarray, probabilities: np.ndarray, class_names: tuple[str, ...],
                        weights: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Every metric of a set of class probabilities: the confusion-matrix metrics of the
    arg-max predictions, one-vs-rest ROC-AUC and the log loss. With ``weights`` (B x n) each
    value is an array over the B resamples."""
    predictions = np.asarray(probabilities).argmax(axis=1)
    cm = confusion_matrix(y_true, predictions, len(class_names), weights)
    return {**metrics_from_confusion(cm, class_names),
            **roc_auc_ovr(y_true, probabilities, class_names, weights),
            "loss": log_loss(y_true, probabilities, weights)}


# ---- binary segmentation ----------------------------------------------------------------------
#
# A ratio whose denominator is empty is 1 when the mask and the prediction are both empty (an
# image without cell pixels that the model leaves empty is segmented perfectly) and 0 otherwise
# (a model that predicts nothing on an image with cells has precision 0, as Keras reports it).

SEGMENTATION_SCORES = ("accuracy", "precision", "recall", "iou", "dice")


def mask_counts(truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Per image (n x 4): true-positive, false-positive, false-negative, true-negative pixels."""
    truth = np.asarray(truth).reshape(len(truth), -1).astype(bool)
    predicted = np.asarray(predicted).reshape(len(predicted), -1).astype(bool)
    return np.stack([(truth & predicted).sum(1), (~truth & predicted).sum(1),
                     (truth & ~predicted).sum(1), (~truth & ~predicted).sum(1)], axis=1).astype(np.float64)


def scores_from_counts(counts: np.ndarray) -> dict[str, np.ndarray]:
    """Pixel accuracy, precision, recall, IoU and Dice of (... x 4) pixel counts."""
    tp, fp, fn, tn = (counts[..., i] for i in range(4))
    both_empty = (tp + fp + fn) == 0

    def ratio(numerator, denominator):
        return np.divide(numerator, denominator, out=np.array(both_empty, dtype=np.float64), where=denominator > 0)

    return {"accuracy": ratio(tp + tn, tp + fp + fn + tn), "precision": ratio(tp, tp + fp),
            "recall": ratio(tp, tp + fn), "iou": ratio(tp, tp + fp + fn), "dice": ratio(2 * tp, 2 * tp + fp + fn)}


def binary_cross_entropy(truth: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Mean pixel BCE of each image (probabilities clipped to [1e-7, 1 - 1e-7])."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64).reshape(len(probabilities), -1), 1e-7, 1 - 1e-7)
    t = np.asarray(truth).reshape(len(truth), -1).astype(bool)
    return -np.where(t, np.log(p), np.log1p(-p)).mean(axis=1)


def binarize(probabilities: np.ndarray, *, threshold: float = 0.5, min_size: int = 0) -> np.ndarray:
    """Masks (n x H x W bool) of pixels at or above ``threshold``, without the connected
    components (8-connected) smaller than ``min_size`` pixels."""
    masks = np.asarray(probabilities) >= threshold
    if min_size <= 1:
        return masks
    import cv2

    kept = np.zeros_like(masks)
    for index, mask in enumerate(masks):
        count, components, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
        large = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] >= min_size)
        kept[index] = np.isin(components, large[large > 0])
    return kept


def segmentation_metrics(truth: np.ndarray, probabilities: np.ndarray, *, threshold: float = 0.5,
                         min_size: int = 0, weights: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Every segmentation metric twice: ``<score>_pooled`` from the pixel counts summed over the
    split, and ``<score>_per_image`` as the mean of each image's own score; plus ``loss``, the
    mean per-image BCE of the probabilities. Masks come from ``binarize``. With ``weights``
    (B x n) each value is an array over the B resamples."""
    counts = mask_counts(truth, binarize(probabilities, threshold=threshold, min_size=min_size))
    weights = np.ones(len(counts)) if weights is None else np.asarray(weights, dtype=np.float64)
    total = weights.sum(axis=-1)
    pooled = scores_from_counts(weights @ counts)
    per_image = scores_from_counts(counts)
    metrics = {}
    for score in SEGMENTATION_SCORES:
        metrics[f"{score}_pooled"] = pooled[score]
        metrics[f"{score}_per_image"] = np.divide(weights @ per_image[score], total,
                                                  out=np.full(np.shape(total), np.nan), where=total > 0)
    metrics["loss"] = np.divide(weights @ binary_cross_entropy(truth, probabilities), total,
                                out=np.full(np.shape(total), np.nan), where=total > 0)
    return metrics


# ---- detection --------------------------------------------------------------------------------
#
# Ground truth of a split is one (n_i x 4) array of x1, y1, x2, y2 boxes and one array of class
# indices per image. Detections are one packed (D x 7) array, a row per box: image index, x1, y1,
# x2, y2, score, class index (the form the analysis caches). A detection is a true positive when,
# taken in descending score order (a stable sort, as pycocotools'), it has IoU at least 0.5 with a
# not yet matched ground-truth box of its image and class; it takes the one it overlaps most (the
# later one on equal IoU). This is COCO's matching at one IoU threshold without crowd boxes or
# area ranges, so the AP below is pycocotools' AP at IoU 0.5, area "all", 100 detections.
#
# Weights (n images, or B x n for B bootstrap resamples) count each image's boxes that many times:
# the scores become arrays over B. Ratios with an empty denominator are 0, as in the
# classification metrics; an AP of a class without ground truth is nan and left out of the mean.

DETECTION_COLUMNS = ("image", "x1", "y1", "x2", "y2", "score", "label")
AP_IOU_THRESHOLD = 0.5
AP_MAX_DETECTIONS = 100
RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101)
_AP_CHUNK_CELLS = 4_000_000


def _detection_array(detections: np.ndarray, num_images: int, num_classes: int | None = None) -> np.ndarray:
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
    detections = _detection_array(detections, len(truth_boxes))
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
    detections = _detection_array(detections, num_images, len(class_names))
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
    detections = _detection_array(detections, num_images, len(class_names))
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
    detections = _detection_array(detections, num_images, num_classes)
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
    precision = _safe_divide(tp, tp + fp)
    recall = _safe_divide(tp, tp + fn)
    return {"precision": precision, "recall": recall, "f1": _safe_divide(2 * tp, 2 * tp + fp + fn),
            "accuracy": _safe_divide(tp, tp + fp + fn)}


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
    detections = _detection_array(detections, num_images, num_classes)
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
    detections = _detection_array(detections, num_images, num_classes)
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


# ---- COCO average precision (boxes and masks) -------------------------------------------------
#
# pycocotools' own COCOeval, called on ground truth and detections built in memory: box AP over
# IoU 0.50:0.95 and, for instance segmentation, mask AP at 0.5 and over 0.50:0.95, area "all", at
# most 100 detections per image and class (COCO's standard numbers). Box AP at 0.5 is
# ``average_precision_50`` (the same definition, weighted for the bootstrap), not repeated here.

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
    detections = _detection_array(detections, num_images, len(class_names))
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


# ---- how each metric improves -----------------------------------------------------------------
#
# The direction in which every metric above gets better, declared once: the analysis picks each
# trial's best epoch, ranks groups and compares models with it. The names are those the
# functions above return, which the trainables report with a split prefix (``val_map50``,
# ``train_loss``) and the analysis uses bare on the test split. A name may be a pattern with ``*``
# for the per-class and per-variant families (``f1_<class>``, ``dice_pooled``, the R-CNN's
# ``loss_<term>``). A metric not declared here is an error, never a guess.

MAXIMISED = "max"
MINIMISED = "min"
SPLIT_PREFIXES = ("train_", "val_")
METRIC_DIRECTIONS: dict[str, str] = {
    # classification: metrics_from_confusion, binary_scores, roc_auc_ovr
    "accuracy": MAXIMISED, "balanced_accuracy": MAXIMISED,
    "macro_f1": MAXIMISED, "macro_precision": MAXIMISED, "macro_recall": MAXIMISED,
    "weighted_f1": MAXIMISED, "weighted_precision": MAXIMISED, "weighted_recall": MAXIMISED,
    "f1": MAXIMISED, "precision": MAXIMISED, "recall": MAXIMISED,
    "sensitivity": MAXIMISED, "specificity": MAXIMISED,
    "auc": MAXIMISED, "macro_auc": MAXIMISED, "auc_*": MAXIMISED,
    # per class (classification and detection) and pooled / per image (segmentation)
    "f1_*": MAXIMISED, "precision_*": MAXIMISED, "recall_*": MAXIMISED, "accuracy_*": MAXIMISED,
    "iou_*": MAXIMISED, "dice_*": MAXIMISED,
    # detection: detection_scores, average_precision_50
    "map50": MAXIMISED, "ap50_*": MAXIMISED,
    # detection: coco_average_precision
    "box_map": MAXIMISED, "mask_map": MAXIMISED,
    # instance segmentation: mask_average_precision_50 (and coco_average_precision's mask_map50)
    "mask_map50": MAXIMISED, "mask_ap50_*": MAXIMISED,
    "count_mae": MINIMISED, "count_mae_*": MINIMISED,
    # losses: log_loss, segmentation BCE, the training criterion, and the R-CNN's loss terms
    "loss": MINIMISED, "loss_*": MINIMISED,
}


def metric_direction(name: str) -> str:
    """``"max"`` or ``"min"``: how the metric ``name`` (with or without a ``train_``/``val_``
    prefix) improves, from ``METRIC_DIRECTIONS``; an undeclared metric is an
    ``UnknownNameError`` saying where to declare it."""
    bare = next((name.removeprefix(prefix) for prefix in SPLIT_PREFIXES if name.startswith(prefix)), name)
    if bare in METRIC_DIRECTIONS:
        return METRIC_DIRECTIONS[bare]
    for pattern, direction in METRIC_DIRECTIONS.items():
        if "*" in pattern and fnmatchcase(bare, pattern):
            return direction
    raise UnknownNameError(f"metric {name!r} has no declared direction: declare whether it is maximised or "
                           f"minimised in METRIC_DIRECTIONS in trainables/metrics.py (declared: "
                           f"{', '.join(METRIC_DIRECTIONS)})")
