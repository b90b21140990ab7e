"""Segmentation metrics: pixel counts per image, the scores pooled over a split and per image,
and the masks they are computed on.

Binary masks (two classes, background and one foreground class) come from N x H x W foreground
probabilities by a threshold (``binarize``); multi-class masks (K > 2 classes, index 0 the
background) from N x K x H x W class probabilities by their argmax (``argmax_masks``). A
multi-class split is scored one foreground class at a time, that class against every other
(``class_mask_counts``), exactly as a binary mask is scored: with K = 2 its scores are the
binary ones at threshold 0.5 (but for pixels at exactly 0.5, which argmax gives the background).

A ratio whose denominator is empty is 1 when the mask and the prediction are both empty (an
image without cell pixels that the model leaves empty is segmented perfectly) and 0 otherwise
(a model that predicts nothing on an image with cells has precision 0, as Keras reports it).
For a multi-class per-image score the same holds per class: an image where a class is neither
present nor predicted scores 1 for that class and counts in its mean, as an empty binary image
does.
"""

from __future__ import annotations

import numpy as np

SEGMENTATION_SCORES = ("accuracy", "precision", "recall", "iou", "dice")
# What a multi-class split reports per foreground class, and as their unweighted mean.
MULTICLASS_SCORES = ("dice", "iou")


def mask_counts(truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Per image (n x 4): true-positive, false-positive, false-negative, true-negative pixels."""
    truth = np.asarray(truth).reshape(len(truth), -1).astype(bool)
    predicted = np.asarray(predicted).reshape(len(predicted), -1).astype(bool)
    return np.stack([(truth & predicted).sum(1), (~truth & predicted).sum(1),
                     (truth & ~predicted).sum(1), (~truth & ~predicted).sum(1)], axis=1).astype(np.float64)


def class_mask_counts(truth: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """Per image and foreground class (n x (K − 1) x 4): ``mask_counts`` of class-index masks
    for classes 1..K−1, each class against every other."""
    return np.stack([mask_counts(truth == c, predicted == c) for c in range(1, num_classes)], axis=1)


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


def cross_entropy(truth: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Mean pixel cross-entropy of each image, from N x K x H x W class probabilities (any float
    dtype, computed in float64) and N x H x W class-index masks; probabilities clipped to
    [1e-7, 1] as in ``binary_cross_entropy``."""
    truth = np.asarray(truth).astype(np.int64)[:, None]
    chosen = np.take_along_axis(np.asarray(probabilities), truth, axis=1)[:, 0].astype(np.float64)
    return -np.log(np.clip(chosen, 1e-7, 1)).reshape(len(truth), -1).mean(axis=1)


def argmax_masks(probabilities: np.ndarray) -> np.ndarray:
    """Class-index masks (n x H x W uint8) of N x K x H x W class probabilities: each pixel's
    most probable class, the lower index on a tie."""
    return np.asarray(probabilities).argmax(axis=1).astype(np.uint8)


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


def resampling_weights(weights: np.ndarray | None, n: int) -> np.ndarray:
    """Resampling weights as float64, all ones (each image once) when there are none."""
    return np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)


def weighted_mean(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The mean over images (axis 0 of ``values``, n or n x C) under ``weights`` (n, or B x n
    resampling weights); NaN where the weights sum to 0."""
    summed = weights @ values
    total = weights.sum(axis=-1).reshape(np.shape(weights)[:-1] + (1,) * (np.ndim(values) - 1))
    return np.divide(summed, total, out=np.full(np.shape(summed), np.nan), where=total > 0)


def pooled_and_per_image(counts: np.ndarray, weights: np.ndarray) -> tuple[dict, dict]:
    """Every score of per-image pixel counts (n x 4, or n x C x 4 per class), pooled (from the
    counts summed over the images) and per image (the mean of each image's own score), each
    with a leading axis over the B resamples when ``weights`` is B x n."""
    summed = (weights @ counts.reshape(len(counts), -1)).reshape(np.shape(weights)[:-1] + counts.shape[1:])
    per_image = {score: weighted_mean(values, weights) for score, values in scores_from_counts(counts).items()}
    return scores_from_counts(summed), per_image


def segmentation_metrics(truth: np.ndarray, probabilities: np.ndarray, *, threshold: float = 0.5,
                         min_size: int = 0, weights: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Every binary segmentation metric twice: ``<score>_pooled`` from the pixel counts summed
    over the split, and ``<score>_per_image`` as the mean of each image's own score; plus
    ``loss``, the mean per-image BCE of the probabilities. Masks come from ``binarize``. With
    ``weights`` (B x n) each value is an array over the B resamples."""
    counts = mask_counts(truth, binarize(probabilities, threshold=threshold, min_size=min_size))
    weights = resampling_weights(weights, len(counts))
    pooled, per_image = pooled_and_per_image(counts, weights)
    metrics = {}
    for score in SEGMENTATION_SCORES:
        metrics[f"{score}_pooled"] = pooled[score]
        metrics[f"{score}_per_image"] = per_image[score]
    metrics["loss"] = weighted_mean(binary_cross_entropy(truth, probabilities), weights)
    return metrics


def multiclass_segmentation_metrics(truth: np.ndarray, probabilities: np.ndarray, class_names: tuple[str, ...],
                                    *, weights: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The multi-class metrics of N x K x H x W class probabilities against class-index masks,
    masks by ``argmax_masks``: Dice and IoU of each foreground class (``class_names[1:]``),
    pooled and per image (``dice_pooled_<class>``, ``dice_per_image_<class>``,
    ``iou_pooled_<class>``, ``iou_per_image_<class>``), their unweighted mean over the
    foreground classes under the binary names (``dice_pooled``, ``dice_per_image``,
    ``iou_pooled``, ``iou_per_image``), and ``loss``, the mean per-image cross-entropy. With
    ``weights`` (B x n) each value is an array over the B resamples."""
    counts = class_mask_counts(truth, argmax_masks(probabilities), len(class_names))
    weights = resampling_weights(weights, len(counts))
    pooled, per_image = pooled_and_per_image(counts, weights)
    metrics = {}
    for score in MULTICLASS_SCORES:
        for kind, values in (("pooled", pooled[score]), ("per_image", per_image[score])):
            metrics[f"{score}_{kind}"] = values.mean(axis=-1)
            metrics.update({f"{score}_{kind}_{name}": values[..., index]
                            for index, name in enumerate(class_names[1:])})
    metrics["loss"] = weighted_mean(cross_entropy(truth, probabilities), weights)
    return metrics

