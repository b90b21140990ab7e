"""A trial's detector rebuilt from its checkpoint, and what the analysis asks of it: the
cached candidates of a split, the test split's COCO APs and the report's predicted masks."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torchvision.models.detection.generalized_rcnn import GeneralizedRCNN

from trainables import checkpoints
from trainables.config import from_config
from trainables.datasets.detection import DetectionSplit
from trainables.detection.config import DetectionConfig
from trainables.detection.prediction import (
    MASK_THRESHOLD,
    predict_coco_scores,
    predict_detections,
    predict_instances,
    predict_outputs,
)
from trainables.detection_inference import candidate_settings, instance_candidates
from trainables.models.rcnn import build_detector


def checkpoint_model(checkpoint_dir: Path) -> tuple[GeneralizedRCNN, dict]:
    """The detector a checkpoint of this trainable holds (on the CPU, in eval mode) and its
    metadata. It is rebuilt from the trial's own config rather than ``read_checkpoint_config``'s
    pretraining-off one: whether the trial started from weights decides its norm layers, which
    the weights must fit; but no weights are read (``load_weights=False``: neither
    ``pretrained_path`` nor a download), so the checkpoint is all it needs."""
    meta = json.loads((Path(checkpoint_dir) / checkpoints.META_FILE).read_text())
    config = from_config(DetectionConfig, meta["config"])
    model = build_detector(config, num_classes=len(meta["class_names"]), masks=meta["has_masks"],
                           image_side=meta["image_side"], load_weights=False)
    checkpoints.load_checkpoint_model(checkpoint_dir, model)
    return model.eval(), meta


def checkpoint_detector(checkpoint_dir: Path) -> tuple[GeneralizedRCNN, dict, torch.device]:
    """``checkpoint_model`` on the local GPU when there is one, with its metadata and device."""
    model, meta = checkpoint_model(checkpoint_dir)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return model.to(device), meta, device


def checkpoint_candidates(checkpoint_dir: Path, split: DetectionSplit, *, batch_size: int = 2) -> np.ndarray:
    """The candidate detections (D x 7) of a split from a checkpoint this trainable wrote: every
    box scoring at least the inference grid's lowest confidence, before detection NMS
    (``detection_inference.candidate_settings``, sized so that no such box is dropped). The
    analysis tunes the minimum confidence and NMS IoU on the validation candidates and applies
    them on the CPU (``detection_inference.postprocess``), so one prediction pass serves the
    whole grid, exactly."""
    model, device = candidate_detector(checkpoint_dir)
    return predict_detections(model, split.images, batch_size=batch_size, device=device)


def checkpoint_instance_candidates(checkpoint_dir: Path, split: DetectionSplit, *,
                                   batch_size: int = 2) -> np.ndarray | dict[str, np.ndarray]:
    """What the analysis caches of a checkpoint on a split: a Mask R-CNN's candidates with their
    masks (``detection_inference.instance_candidates``: boxes, RLE counts, image sizes), so its
    mask AP@0.5 can be bootstrapped at any inference setting; a Faster R-CNN's D x 7 candidates
    (``checkpoint_candidates``, the same boxes: the same batches). Masks are encoded batch by
    batch (``predict_instances``), so only one batch's full-size masks are ever held."""
    model, device = candidate_detector(checkpoint_dir)
    if not model.roi_heads.has_mask():
        return predict_detections(model, split.images, batch_size=batch_size, device=device)
    boxes, masks = predict_instances(model, split.images, batch_size=batch_size, device=device)
    return instance_candidates(boxes, masks, [image.shape[:2] for image in split.images])


def candidate_detector(checkpoint_dir: Path) -> tuple[GeneralizedRCNN, torch.device]:
    """A checkpoint's detector set to output the cached candidates (``candidate_settings``)."""
    model, meta, device = checkpoint_detector(checkpoint_dir)
    settings = candidate_settings(len(meta["class_names"]), proposals=model.rpn.post_nms_top_n())
    for name, value in settings.items():
        setattr(model.roi_heads, name, value)
    return model, device


def checkpoint_coco_scores(checkpoint_dir: Path, split: DetectionSplit, *, min_confidence: float,
                           nms_iou: float) -> dict[str, float]:
    """``predict_coco_scores`` of a checkpoint on ``split`` under the tuned inference settings
    (score > ``min_confidence``, per-class NMS at ``nms_iou``, the config's ``max_detections``):
    the report's test-split COCO APs, masks included for a Mask R-CNN."""
    model, meta, device = checkpoint_detector(checkpoint_dir)
    model.roi_heads.score_thresh, model.roi_heads.nms_thresh = min_confidence, nms_iou
    return predict_coco_scores(model, split, tuple(meta["class_names"]), batch_size=1, device=device)[1]


def checkpoint_masks(checkpoint_dir: Path, split: DetectionSplit, indices: Sequence[int], *,
                     min_confidence: float, nms_iou: float) -> list[tuple]:
    """For the report's predicted images: per image of ``indices``, the detections of a
    checkpoint under the tuned inference settings (torchvision's score > ``min_confidence``,
    per-class NMS at ``nms_iou``, the config's ``max_detections``) as (boxes n x 4 float32,
    labels n int64 in 0..C-1, scores n float32, masks n x H x W uint8 thresholded at 0.5, or None
    for a box-only model)."""
    model, _, device = checkpoint_detector(checkpoint_dir)
    model.roi_heads.score_thresh, model.roi_heads.nms_thresh = min_confidence, nms_iou
    outputs = predict_outputs(model, [split.images[i] for i in indices], batch_size=1, device=device)
    return [(output["boxes"].numpy().astype(np.float32), output["labels"].numpy().astype(np.int64) - 1,
             output["scores"].numpy().astype(np.float32),
             (output["masks"][:, 0] > MASK_THRESHOLD).numpy().astype(np.uint8) if "masks" in output else None)
            for output in outputs]
