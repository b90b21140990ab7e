"""Every metric of the project, computed once, split by task: ``classification`` (from
confusion matrices and scores), ``segmentation`` (binary and multi-class masks), ``detection`` (box and mask
AP at IoU 0.5, matched counts), ``coco`` (pycocotools' COCOeval AP) and ``directions`` (how
each metric improves, which the analysis reads). This module re-exports their public names,
so ``from trainables.metrics import ...`` reaches any of them.
"""

from trainables.metrics.classification import (
                                               binary_auc,
                                               binary_scores,
                                               classification_metrics,
                                               confusion_matrix,
                                               log_loss,
                                               metrics_from_confusion,
                                               nan_mean,
                                               per_class_scores,
                                               probability_metrics,
                                               roc_auc_ovr,
                                               row_normalised,
                                               undefined_reasons,
)
from trainables.metrics.coco import COCO_SCORES, coco_average_precision, encode_masks
from trainables.metrics.detection import (
                                               AP_IOU_THRESHOLD,
                                               AP_MAX_DETECTIONS,
                                               DETECTION_COLUMNS,
                                               RECALL_THRESHOLDS,
                                               average_precision_50,
                                               box_iou,
                                               count_table,
                                               detection_counts,
                                               detection_scores,
                                               mask_average_precision_50,
                                               match_detections,
)
from trainables.metrics.directions import MAXIMISED, METRIC_DIRECTIONS, MINIMISED, SPLIT_PREFIXES, metric_direction
from trainables.metrics.segmentation import (
                                               MULTICLASS_SCORES,
                                               SEGMENTATION_SCORES,
                                               argmax_masks,
                                               binarize,
                                               binary_cross_entropy,
                                               class_mask_counts,
                                               cross_entropy,
                                               mask_counts,
                                               multiclass_segmentation_metrics,
                                               scores_from_counts,
                                               segmentation_metrics,
)

__all__ = ["AP_IOU_THRESHOLD", "AP_MAX_DETECTIONS", "COCO_SCORES", "DETECTION_COLUMNS", "MAXIMISED",
           "METRIC_DIRECTIONS", "MINIMISED", "MULTICLASS_SCORES", "RECALL_THRESHOLDS", "SEGMENTATION_SCORES",
           "SPLIT_PREFIXES", "argmax_masks", "average_precision_50", "binarize", "binary_auc", "binary_cross_entropy",
           "binary_scores", "box_iou", "class_mask_counts", "classification_metrics", "coco_average_precision",
           "confusion_matrix", "count_table", "cross_entropy", "detection_counts", "detection_scores",
           "encode_masks", "log_loss", "mask_average_precision_50", "mask_counts", "match_detections",
           "metric_direction", "metrics_from_confusion", "multiclass_segmentation_metrics", "nan_mean",
           "per_class_scores", "probability_metrics", "roc_auc_ovr", "row_normalised",
           "scores_from_counts", "segmentation_metrics", "undefined_reasons"]
