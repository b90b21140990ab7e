"""Every classification metric of the project, computed once from a confusion matrix.

Each function is tested against scikit-learn. Undefined ratios (a class never predicted or
never present) count as 0, matching scikit-learn's ``zero_division=0``.
"""

from __future__ import annotations

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts with true classes as rows and predicted classes as columns."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    return np.bincount(y_true * num_classes + y_pred, minlength=num_classes ** 2).reshape(
        num_classes, num_classes)


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)


def per_class_scores(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support of each class."""
    true_positive = np.diag(cm).astype(np.float64)
    precision = _safe_divide(true_positive, cm.sum(axis=0))
    recall = _safe_divide(true_positive, cm.sum(axis=1))
    f1 = _safe_divide(2 * precision * recall, precision + recall)
    return {"precision": precision, "recall": recall, "f1": f1, "support": cm.sum(axis=1)}


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray,
                           class_names: tuple[str, ...]) -> dict[str, float]:
    """Accuracy, macro-F1, balanced accuracy, weighted F1, and per-class F1/recall/precision.

    Balanced accuracy and macro averages run over the classes present in ``y_true`` or
    ``y_pred``, as scikit-learn's do.
    """
    num_classes = len(class_names)
    cm = confusion_matrix(y_true, y_pred, num_classes)
    scores = per_class_scores(cm)
    present = (cm.sum(axis=0) + cm.sum(axis=1)) > 0
    in_truth = cm.sum(axis=1) > 0
    total = cm.sum()
    metrics = {
        "accuracy": float(np.trace(cm) / total) if total else 0.0,
        "macro_f1": float(scores["f1"][present].mean()) if present.any() else 0.0,
        "balanced_accuracy": float(scores["recall"][in_truth].mean()) if in_truth.any() else 0.0,
        "weighted_f1": float(np.average(scores["f1"], weights=scores["support"])) if total else 0.0,
    }
    for index, name in enumerate(class_names):
        metrics[f"f1_{name}"] = float(scores["f1"][index])
        metrics[f"recall_{name}"] = float(scores["recall"][index])
        metrics[f"precision_{name}"] = float(scores["precision"][index])
    return metrics
