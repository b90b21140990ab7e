"""The binary-segmentation trainable: every segmentation study runs through this one function,
configured by ``SegmentationConfig``, sharing the training loop of ``trainables.engine``."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from trainables import checkpoints, engine
from trainables.arrays import Normalize, in_order
from trainables.config import (
    ConfigError,
    LoopConfig,
    from_config,
    require_choice,
    require_epoch_samples,
    require_positive,
)
from trainables.datasets.base import ClassificationData, SplitArrays
from trainables.device_data import DATA_PATHS, training_batches
from trainables.metrics import binarize, mask_counts, scores_from_counts, segmentation_metrics
from trainables.models import build_model

LOSSES = ("bce", "dice", "bce_dice")


@dataclass(frozen=True)
class SegmentationConfig(LoopConfig):
    """Everything a segmentation trial can be told. Defaults are study 6's fixed settings.

    ``threshold`` turns probabilities into masks for the validation metrics; the analysis
    tunes it again on validation outputs. ``epoch_samples`` caps an epoch at that many random
    training images (None: one pass). ``data_path`` says where training batches come from, as
    for classification (``trainables.device_data``); masks follow their images' geometric
    augmentation on either path.
    """

    model: str = "unet"
    pretrained: bool = False
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    dropout: float = 0.0
    base_channels: int = 32
    batch_size: int = 32
    eval_batch_size: int = 32
    max_epochs: int = 60
    epoch_samples: int | None = None
    loss: str = "bce"
    augment: str = "none"
    data_path: str = "auto"
    threshold: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        require_choice("optimizer", self.optimizer, engine.OPTIMIZERS)
        require_choice("loss", self.loss, LOSSES)
        require_choice("data_path", self.data_path, DATA_PATHS)
        require_epoch_samples(self.epoch_samples)
        if not 0 <= self.dropout < 1 or not 0 < self.threshold < 1:
            raise ConfigError(f"dropout must be in [0, 1) and threshold in (0, 1); "
                              f"got {self.dropout}, {self.threshold}")
        require_positive(self, ("base_channels",))


def soft_dice_loss(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """1 − the soft Dice of the batch's probabilities (smoothed by 1 pixel)."""
    probabilities = torch.sigmoid(logits)
    intersection = (probabilities * masks).sum()
    return 1 - (2 * intersection + 1) / (probabilities.sum() + masks.sum() + 1)


def segmentation_loss(name: str):
    bce = nn.BCEWithLogitsLoss()
    if name == "bce":
        return bce
    if name == "dice":
        return soft_dice_loss
    return lambda logits, masks: bce(logits, masks) + soft_dice_loss(logits, masks)


def build_segmenter(config: SegmentationConfig, mean, std) -> nn.Sequential:
    """Normalisation followed by the registered model (one logit per pixel)."""
    model = build_model(config.model, num_classes=1, pretrained=config.pretrained, dropout=config.dropout,
                        base_channels=config.base_channels)
    return nn.Sequential(Normalize(mean, std), model)


def predict_masks(model: nn.Module, split: SplitArrays, *, batch_size: int, device: torch.device) -> np.ndarray:
    """Cell probabilities (n x H x W, float32) of a whole split, in order."""
    model.eval()
    outputs = []
    with torch.no_grad():
        for images, _ in in_order(split, batch_size):
            outputs.append(torch.sigmoid(model(images.to(device))[:, 0]).float().cpu())
    return torch.cat(outputs).numpy() if outputs else np.zeros((0, *split.images.shape[1:3]), np.float32)


def checkpoint_model(checkpoint_dir: Path) -> tuple[nn.Sequential, dict]:
    """The segmenter a checkpoint of this trainable holds (on the CPU, in eval mode) and its
    metadata, built with pretraining off and given the checkpoint's weights: the checkpoint is
    all it needs."""
    config, meta = checkpoints.read_checkpoint_config(checkpoint_dir, SegmentationConfig)
    model = build_segmenter(config, meta["mean"], meta["std"])
    checkpoints.load_checkpoint_model(checkpoint_dir, model)
    return model.eval(), meta


def checkpoint_mask_probabilities(checkpoint_dir: Path, split: SplitArrays, *, batch_size: int = 16) -> np.ndarray:
    """Cell probabilities of a split from a checkpoint this trainable wrote (``checkpoint_model``)."""
    model, _ = checkpoint_model(checkpoint_dir)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return predict_masks(model.to(device), split, batch_size=batch_size, device=device)


# The inference-time grid tuned on validation outputs: probability threshold x smallest kept
# connected component (pixels). medsweep's choice; seed 004 used Keras' fixed 0.5.
THRESHOLDS = tuple(round(t, 2) for t in np.arange(0.1, 0.91, 0.05))
MIN_SIZES = (0, 4, 16, 64)


def mask_scores(labels: np.ndarray, outputs: np.ndarray, class_names: tuple[str, ...],
                weights: np.ndarray | None = None, *, threshold: float = 0.5, min_size: int = 0) -> dict:
    """The analysis's scoring of predicted probabilities (``class_names`` is unused: binary)."""
    return segmentation_metrics(labels, outputs, threshold=threshold, min_size=min_size, weights=weights)


def tune_inference(labels: np.ndarray, outputs: np.ndarray,
                   class_names: tuple[str, ...] = ()) -> tuple[dict, list[dict]]:
    """The threshold and minimum component size that maximise the mean per-image Dice (the
    sweep's metric) on validation outputs (ties go to the earlier grid point), and the grid of
    settings with their Dice; ``class_names`` is unused (binary)."""
    best, best_value, grid = {"threshold": 0.5, "min_size": 0}, -np.inf, []
    for threshold in THRESHOLDS:
        for min_size in MIN_SIZES:
            counts = mask_counts(labels, binarize(outputs, threshold=threshold, min_size=min_size))
            value = float(np.mean(scores_from_counts(counts)["dice"]))
            grid.append({"threshold": threshold, "min_size": min_size, "dice_per_image": value})
            if value > best_value:
                best, best_value = {"threshold": threshold, "min_size": min_size}, value
    return best, grid


def segmentation_trainable(config: dict, *, data: ClassificationData, monitor: engine.Monitor) -> None:
    """Ray Tune function trainable for binary segmentation (train and val splits only)."""
    cfg = from_config(SegmentationConfig, config)
    trial_started, device = engine.start_trial(cfg.seed)
    model = build_segmenter(cfg, data.mean, data.std).to(device)
    batches = training_batches(data.splits["train"], None, augment=cfg.augment, batch_size=cfg.batch_size,
                               epoch_samples=cfg.epoch_samples, seed=cfg.seed, device=device,
                               data_path=cfg.data_path, cpus=engine.assigned_cpus())
    loss_fn = segmentation_loss(cfg.loss)

    def batch_loss(net: nn.Module, batch) -> tuple[torch.Tensor, None]:
        images, masks = batch
        images, masks = images.to(device, non_blocking=True), masks.to(device, non_blocking=True)
        return loss_fn(net(images)[:, 0], masks.float()), None

    def evaluate(net: nn.Module) -> dict:
        val = data.splits["val"]
        probabilities = predict_masks(net, val, batch_size=cfg.eval_batch_size, device=device)
        metrics = segmentation_metrics(val.labels, probabilities, threshold=cfg.threshold)
        return {k: float(v) for k, v in metrics.items()}

    optimizer = engine.OPTIMIZERS[cfg.optimizer](model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    settings = engine.LoopSettings.of(cfg, baseline_loss=math.log(2), monitor=monitor, channels_last=True)
    meta = {"task": "segmentation", "dataset": data.name, "class_names": list(data.class_names),
            "image_size": data.image_size, "mean": list(data.mean), "std": list(data.std), "config": asdict(cfg),
            "data_path": batches.path}
    engine.fit(model=model, optimizer=optimizer, train_batches=batches, batch_loss=batch_loss,
        evaluate=evaluate, settings=settings, meta=meta, trial_started=trial_started)
