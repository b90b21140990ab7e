"""``detection_trainable``, the Ray Tune function, and its loop's loss bookkeeping: the training
loss terms' running means and the uninformed baseline of the divergence bound."""

from __future__ import annotations

import math
from dataclasses import asdict

import numpy as np
import torch
from torch import nn

from trainables import engine
from trainables.config import from_config
from trainables.datasets.detection import DetectionData
from trainables.detection.batches import sampling_weights, to_device, training_batches
from trainables.detection.config import DetectionConfig
from trainables.detection.model import longest_side
from trainables.detection.optimizer import build_optimizer
from trainables.detection.validation import validation_metrics
from trainables.device_data import loader_workers
from trainables.models.rcnn import build_detector


class LossComponents:
    """Running means of the R-CNN's loss terms over an epoch's steps, for ``epoch_extras``."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.steps = 0

    def add(self, losses: dict[str, torch.Tensor]) -> None:
        for key, value in losses.items():
            self.sums[key] = self.sums.get(key, 0.0) + float(value.detach())
        self.steps += 1

    def means(self, prefix: str) -> dict[str, float]:
        """``<prefix><term>`` means since the last call, then start over."""
        means = {f"{prefix}{key}": total / max(1, self.steps) for key, total in self.sums.items()}
        self.sums, self.steps = {}, 0
        return means


def uniform_guess_loss(num_classes: int, masks: bool) -> float:
    """An uninformed R-CNN's summed loss, the baseline of ``LoopSettings.of``'s divergence bound
    (``divergence_factor`` times it): the box classifier's cross-entropy over the classes and
    background (ln(C + 1)), the RPN's objectness (ln 2) and, with masks, the per-pixel mask BCE
    (ln 2). The box-regression terms (a fraction of 1 at the start) fall within the factor: with
    the default 10 the bound is about 25 for 2 classes with masks, 21 for 3 box-only, against
    starting losses of 2-4."""
    return math.log(num_classes + 1) + math.log(2) * (2 if masks else 1)


def detection_trainable(config: dict, *, data: DetectionData, monitor: engine.Monitor) -> None:
    """Ray Tune function trainable for detection / instance segmentation (train and val splits
    only). The sweep selects on the spec's metric: ``val_map50`` (box AP@0.5) for box-only data,
    ``val_mask_map50`` (mask AP@0.5, which Mask R-CNN trials report with ``val_mask_map``) for
    instance masks."""
    cfg = from_config(DetectionConfig, config)
    trial_started, device = engine.start_trial(cfg.seed)
    side = longest_side(data)
    model = build_detector(cfg, num_classes=data.num_classes, masks=data.has_masks, image_side=side).to(device)
    train = data.splits["train"]
    val = data.splits["val"].take(slice(0, cfg.validation_steps))
    weights = sampling_weights(train.labels, data.num_classes, balance=cfg.balance_classes)
    draws = np.random.default_rng(cfg.seed)
    workers = loader_workers(engine.assigned_cpus(), device)
    components = LossComponents()

    def batch_loss(net: nn.Module, batch) -> tuple[torch.Tensor, None]:
        losses = net(*to_device(*batch, device))
        components.add(losses)
        return sum(losses.values()), None

    def evaluate(net: nn.Module) -> dict:
        return validation_metrics(net, val, cfg, data.class_names, device)

    settings = engine.LoopSettings.of(cfg, baseline_loss=uniform_guess_loss(data.num_classes, data.has_masks),
                               monitor=monitor, channels_last=False)
    meta = {"task": "detection", "dataset": data.name, "class_names": list(data.class_names),
            "has_masks": data.has_masks, "image_side": side, "config": asdict(cfg)}
    engine.fit(model=model, optimizer=build_optimizer(cfg, model),
        train_batches=lambda: training_batches(train, cfg, weights, draws, workers=workers,
                                               pin_memory=device.type == "cuda"),
        batch_loss=batch_loss,
        evaluate=evaluate, settings=settings, meta=meta, trial_started=trial_started,
        epoch_extras=lambda: components.means("train_"))
