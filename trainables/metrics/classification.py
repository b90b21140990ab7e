"""Every classification metric of the project, computed once, from confusion matrices and scores.

Each function is tested against scikit-learn. Undefined ratios (a class never predicted or
never present) count as 0, matching scikit-learn's ``zero_division=0``.

The functions take one confusion matrix (C x C) or a stack of them (... x C x C), and
``roc_auc_ovr`` takes optional per-sample weights (one row per resample): the analysis's
bootstrap computes the same metrics on a thousand resamples at once with these functions.
"""

from __future__ import annotations

import numpy as np


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


def safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)


def per_class_scores(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support of each class (last axis = class)."""
    true_positive = np.diagonal(cm, axis1=-2, axis2=-1).astype(np.float64)
    precision = safe_divide(true_positive, cm.sum(axis=-2))
    recall = safe_divide(true_positive, cm.sum(axis=-1))
    f1 = safe_divide(2 * precision * recall, precision + recall)
    return {"precision": precision, "recall": recall, "f1": f1, "support": cm.sum(axis=-1)}


def _masked_mean(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return safe_divide((values * mask).sum(axis=-1), mask.sum(axis=-1))


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
        "accuracy": safe_divide(np.trace(cm, axis1=-2, axis2=-1), total),
        "macro_f1": _masked_mean(scores["f1"], present),
        "macro_precision": _masked_mean(scores["precision"], present),
        "macro_recall": _masked_mean(scores["recall"], present),
        "balanced_accuracy": _masked_mean(scores["recall"], in_truth),
        "weighted_f1": safe_divide((scores["f1"] * support).sum(axis=-1), total),
        "weighted_precision": safe_divide((scores["precision"] * support).sum(axis=-1), total),
        "weighted_recall": safe_divide((scores["recall"] * support).sum(axis=-1), total),
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


def undefined_reasons(y_true: np.ndarray, class_names: tuple[str, ...], split: str) -> dict[str, str]:
    """The metrics of ``probability_metrics`` that the labels of ``split`` leave undefined,
    each with why ("no Pneumothorax positives in test"), whatever a model predicts.

    A class without positives has no recall (for two classes: the second's is the
    sensitivity, the first's the specificity) and no one-vs-rest AUC; a class without
    negatives (every sample is of it) has no AUC either, and the macro AUC is undefined when
    no class has one. These are the values scikit-learn warns about or refuses; the functions
    above still return numbers for them (0 for a recall, nan for an AUC), so the analysis asks
    here before showing one. Labels are class indices (one class per sample, as every reader
    of the project keeps them), so a class's negatives are the other classes' positives.
    """
    counts = np.bincount(np.asarray(y_true, dtype=np.int64), minlength=len(class_names))
    total = int(counts.sum())
    reasons: dict[str, str] = {}
    for name, count in zip(class_names, counts):
        if count == 0:
            reasons[f"recall_{name}"] = reasons[f"auc_{name}"] = f"no {name} positives in {split}"
        elif count == total:
            reasons[f"auc_{name}"] = f"no {name} negatives in {split}"
    if len(class_names) == 2:
        binary = {"sensitivity": f"recall_{class_names[1]}", "specificity": f"recall_{class_names[0]}",
                  "auc": f"auc_{class_names[1]}"}
        reasons |= {metric: reasons[source] for metric, source in binary.items() if source in reasons}
    per_class_auc = [reasons.get(f"auc_{name}") for name in class_names]
    if all(per_class_auc):
        reasons["macro_auc"] = "; ".join(dict.fromkeys(per_class_auc))
    return reasons


def row_normalised(cm: np.ndarray) -> np.ndarray:
    """Each row of a confusion matrix as shares of its true class (0 for an empty row)."""
    cm = np.asarray(cm, dtype=np.float64)
    return safe_divide(cm, cm.sum(axis=-1, keepdims=True))


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
