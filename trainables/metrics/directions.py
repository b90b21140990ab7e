"""How each metric improves.

The direction in which every metric of ``trainables.metrics`` gets better, declared once: the
analysis picks each trial's best epoch, ranks groups and compares models with it. The names are
those the metric functions return, which the trainables report with a split prefix (``val_map50``,
``train_loss``) and the analysis uses bare on the test split. A name may be a pattern with ``*``
for the per-class and per-variant families (``f1_<class>``, ``dice_pooled``, the R-CNN's
``loss_<term>``). A metric not declared here is an error, never a guess.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from trainables.errors import UnknownNameError

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
                           f"minimised in METRIC_DIRECTIONS in trainables/metrics/directions.py (declared: "
                           f"{', '.join(METRIC_DIRECTIONS)})")
