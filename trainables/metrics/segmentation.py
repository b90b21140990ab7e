"""Binary segmentation metrics: pixel counts per image, the scores pooled over a split and per
image, and the masks they are computed on.

A ratio whose denominator is empty is 1 when the mask and the prediction are both empty (an
image without cell pixels that the model leaves empty is segmented perfectly) and 0 otherwise
(a model that predicts nothing on an image with cells has precision 0, as Keras reports it).
"""

from __future__ import annotations

import numpy as np

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
