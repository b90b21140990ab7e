"""An epoch's validation: the detection scores and COCO APs of the model's predictions, and its
loss terms on the held-out images."""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn
from torchvision.models.detection.generalized_rcnn import GeneralizedRCNN

from trainables.datasets.detection import DetectionSplit
from trainables.detection.batches import image_sample, to_device
from trainables.detection.config import DetectionConfig
from trainables.detection.prediction import predict_coco_scores
from trainables.metrics import detection_scores


@contextmanager
def loss_mode(model: GeneralizedRCNN):
    """Train mode (torchvision returns losses only then) without touching the model's state:
    ordinary batch norm (a model trained from scratch) stays in eval mode so validation does not
    move its running statistics (FrozenBatchNorm2d has no mode), and the RoI sampler's random
    draws come from a forked generator so validation neither uses nor advances the training
    stream. Back in eval mode afterwards."""
    model.train()
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.eval()
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=devices):
            yield model
    finally:
        model.eval()


def validation_losses(model: GeneralizedRCNN, split: DetectionSplit, *, batch_size: int,
                      device: torch.device, seed: int) -> dict[str, float]:
    """The R-CNN's loss terms on ``split`` (image-weighted means) and their sum as ``loss``: the
    training objective on held-out images, the RoI sampling seeded by ``seed`` so every epoch
    draws alike."""
    sums: dict[str, float] = {}
    with loss_mode(model):
        torch.manual_seed(seed)
        for start in range(0, len(split), batch_size):
            samples = [image_sample(split, index) for index in range(start, min(start + batch_size, len(split)))]
            images, targets = to_device([s[0] for s in samples], [s[1] for s in samples], device)
            for key, value in model(images, targets).items():
                sums[key] = sums.get(key, 0.0) + float(value) * len(images)
    means = {key: total / max(1, len(split)) for key, total in sums.items()}
    return {"loss": sum(means.values()) if means else float("nan"), **means}


def validation_metrics(model: GeneralizedRCNN, split: DetectionSplit, config: DetectionConfig,
                       class_names: tuple[str, ...], device: torch.device) -> dict[str, float]:
    """Every validation number of one epoch: ``detection_scores`` of the model's detections at
    the config's confidence (map50, precision, recall, f1, accuracy, count_mae and per class),
    their COCO APs (box_map; mask_map50 and mask_map for Mask R-CNN: ``predict_coco_scores``)
    and the loss terms."""
    detections, coco = predict_coco_scores(model, split, class_names, batch_size=config.eval_batch_size,
                                           device=device)
    scores = detection_scores(split.boxes, split.labels, detections, class_names,
                              min_confidence=config.detection_min_confidence)
    losses = validation_losses(model, split, batch_size=config.eval_batch_size, device=device, seed=config.seed)
    return {**{key: float(value) for key, value in scores.items()}, **coco, **losses}
