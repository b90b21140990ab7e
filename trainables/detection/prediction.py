"""Eval-mode prediction: torchvision's outputs a batch at a time, packed as D x 7 detections,
with masks as RLEs, and their COCO APs on a split."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from torchvision.models.detection.generalized_rcnn import GeneralizedRCNN

from trainables.datasets.detection import DetectionSplit
from trainables.detection.batches import image_tensor
from trainables.metrics import coco_average_precision, encode_masks

# Mask probabilities above this are the instance (Matterport's and torchvision's 0.5).
MASK_THRESHOLD = 0.5


@contextmanager
def boxes_only(model: GeneralizedRCNN):
    """Eval-mode prediction without the mask branch: torchvision's RoIHeads predicts masks only
    while it has a mask RoI pool, and pasting a full-size mask per detection costs time and
    memory the box metrics and candidates do not need."""
    pool = model.roi_heads.mask_roi_pool
    model.roi_heads.mask_roi_pool = None
    try:
        yield model
    finally:
        model.roi_heads.mask_roi_pool = pool


def image_outputs(model: GeneralizedRCNN, images: Sequence[np.ndarray], *, batch_size: int,
                  device: torch.device) -> Iterator[dict[str, torch.Tensor]]:
    """torchvision's eval-mode outputs (boxes, labels 1..C, scores, masks where predicted) image
    by image, on the CPU, predicted a batch at a time."""
    model.eval()
    for start in range(0, len(images), batch_size):
        batch = [image_tensor(image).to(device) for image in images[start:start + batch_size]]
        with torch.no_grad():
            outputs = model(batch)
        yield from ({key: value.cpu() for key, value in output.items()} for output in outputs)


def predict_outputs(model: GeneralizedRCNN, images: Sequence[np.ndarray], *, batch_size: int,
                    device: torch.device) -> list[dict[str, torch.Tensor]]:
    """``image_outputs`` as a list."""
    return list(image_outputs(model, images, batch_size=batch_size, device=device))


def pack_detections(outputs: Sequence[dict[str, torch.Tensor]]) -> np.ndarray:
    """Per-image outputs as one D x 7 float32 array: image index, x1, y1, x2, y2, score, label
    (0..C-1)."""
    rows = [np.column_stack([np.full(len(output["scores"]), index), output["boxes"].numpy(),
                             output["scores"].numpy(), output["labels"].numpy() - 1])
            for index, output in enumerate(outputs)]
    return np.concatenate(rows).astype(np.float32) if rows else np.zeros((0, 7), np.float32)


def predict_detections(model: GeneralizedRCNN, images: Sequence[np.ndarray], *, batch_size: int,
                       device: torch.device) -> np.ndarray:
    """The model's detections (D x 7) of ``images`` under its current score/NMS settings."""
    with boxes_only(model):
        return pack_detections(predict_outputs(model, images, batch_size=batch_size, device=device))


def predict_instances(model: GeneralizedRCNN, images: Sequence[np.ndarray], *, batch_size: int,
                      device: torch.device) -> tuple[np.ndarray, list[list[dict]]]:
    """A Mask R-CNN's detections (D x 7) of ``images`` under its current settings and, per image,
    their masks (probability above ``MASK_THRESHOLD``) as ``encode_masks`` RLEs in the order of
    the image's rows: encoded as each batch arrives, so no full-size masks pile up."""
    outputs, masks = [], []
    for output in image_outputs(model, images, batch_size=batch_size, device=device):
        masks.append(encode_masks((output.pop("masks")[:, 0] > MASK_THRESHOLD).numpy()))
        outputs.append(output)
    return pack_detections(outputs), masks


def predict_coco_scores(model: GeneralizedRCNN, split: DetectionSplit, class_names: tuple[str, ...], *,
                        batch_size: int, device: torch.device) -> tuple[np.ndarray, dict[str, float]]:
    """The model's detections (D x 7) of ``split`` under its current settings, and their
    ``coco_average_precision``: box AP@[.50:.95], and mask AP@0.5 and AP@[.50:.95] when the model
    predicts masks."""
    sizes = [image.shape[:2] for image in split.images]
    if not model.roi_heads.has_mask():
        detections = predict_detections(model, split.images, batch_size=batch_size, device=device)
        return detections, coco_average_precision(split.boxes, split.labels, detections, class_names,
                                                  image_sizes=sizes)
    detections, masks = predict_instances(model, split.images, batch_size=batch_size, device=device)
    return detections, coco_average_precision(split.boxes, split.labels, detections, class_names, image_sizes=sizes,
                                              truth_masks=[encode_masks(m) for m in split.masks],
                                              detection_masks=masks)
