"""The image-classification trainable: every classification study runs through this one
function, configured by ``ClassificationConfig`` and fed decoded arrays from the object store."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, RandomSampler

from trainables.arrays import ArrayDataset, Normalize
from trainables.augment import build_augmentation
from trainables.config import from_config, require_choice, require_positive
from trainables.datasets.base import ClassificationData, SplitArrays
from trainables.engine import (LOOP_POSITIVE, OPTIMIZERS, LoopSettings, Monitor, fit, load_checkpoint_model,
                               read_checkpoint_config, seed_everything, trial_device_and_threads)
from trainables.metrics import classification_metrics
from trainables.models import build_model


@dataclass(frozen=True)
class ClassificationConfig:
    """Everything a classification trial can be told. Defaults are study 1's fixed settings.

    ``epoch_samples`` caps an epoch at that many random training samples (None: one full pass
    over the training split, oversampled or not).
    """

    model: str = "efficientnet_b0"
    pretrained: bool = True
    pretrained_path: str | None = None
    optimizer: str = "adamw"
    lr: float = 1e-4
    weight_decay: float = 1e-4
    batch_size: int = 32
    eval_batch_size: int = 64
    max_epochs: int = 50
    epoch_samples: int | None = None
    weighted_loss: bool = False
    oversampling: bool = False
    augment: str = "none"
    plateau_factor: float = 0.5
    plateau_patience: int = 5
    early_stopping_patience: int = 10
    divergence_factor: float = 10.0
    seed: int = 42

    def __post_init__(self) -> None:
        require_choice("optimizer", self.optimizer, OPTIMIZERS)
        require_positive(self, LOOP_POSITIVE)


def class_weights(counts: np.ndarray) -> np.ndarray:
    """total / (num_classes × count) per class; 0 for a class absent from the training split."""
    counts = np.asarray(counts, dtype=np.float64)
    weights = np.zeros_like(counts)
    present = counts > 0
    weights[present] = counts.sum() / (len(counts) * counts[present])
    return weights


def oversampled_indices(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices of every sample plus random duplicates of each minority class until every
    present class has as many samples as the majority class."""
    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    target = counts.max()
    extra = [rng.choice(np.flatnonzero(labels == c), size=target - n, replace=True)
             for c, n in zip(classes, counts) if n < target]
    return np.concatenate([np.arange(len(labels)), *extra]).astype(np.int64)


def build_classifier(config: ClassificationConfig, data: ClassificationData) -> nn.Sequential:
    """Normalisation followed by the registered model, so checkpoints take raw uint8 input."""
    model = build_model(config.model, num_classes=data.num_classes, pretrained=config.pretrained,
                        pretrained_path=config.pretrained_path)
    return nn.Sequential(Normalize(data.mean, data.std), model)


def checkpoint_probabilities(checkpoint_dir: Path, split: SplitArrays, *, batch_size: int = 256) -> np.ndarray:
    """Class probabilities (n x C) of a split from a checkpoint this trainable wrote, on the
    local GPU when there is one; the weights come from the checkpoint, never downloaded."""
    config, meta = read_checkpoint_config(checkpoint_dir, ClassificationConfig)
    model = build_model(config.model, num_classes=len(meta["class_names"]), pretrained=False)
    classifier = nn.Sequential(Normalize(meta["mean"], meta["std"]), model)
    load_checkpoint_model(checkpoint_dir, classifier)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    logits, _ = predict(classifier.to(device), split, batch_size=batch_size, device=device)
    return torch.softmax(torch.from_numpy(logits), dim=1).numpy()


def predict(model: nn.Module, split: SplitArrays, *, batch_size: int,
            device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels for a whole split, in order, without augmentation."""
    loader = DataLoader(ArrayDataset(split), batch_size=batch_size, shuffle=False)
    model.eval()
    logits, labels = [], []
    with torch.no_grad():
        for images, targets in loader:
            logits.append(model(images.to(device)).float().cpu())
            labels.append(targets)
    if not logits:
        return np.zeros((0, 0), np.float32), np.zeros(0, np.int64)
    return torch.cat(logits).numpy(), torch.cat(labels).numpy()


def evaluate_logits(logits: np.ndarray, labels: np.ndarray, class_names: tuple[str, ...],
                    loss_weights: torch.Tensor | None = None) -> dict[str, float]:
    """Loss (same weighting as training) and every classification metric of a split."""
    loss = nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels),
                                       weight=loss_weights).item() if len(labels) else float("nan")
    predictions = logits.argmax(axis=1) if len(labels) else labels
    return {"loss": loss, **classification_metrics(labels, predictions, class_names)}


def classification_trainable(config: dict, *, data: ClassificationData, monitor: Monitor) -> None:
    """Ray Tune function trainable for image classification (train and val splits only)."""
    cfg = from_config(ClassificationConfig, config)
    trial_started = time.perf_counter()
    seed_everything(cfg.seed)
    device = trial_device_and_threads()
    model = build_classifier(cfg, data).to(device)
    train = data.splits["train"]
    weights = None
    if cfg.weighted_loss:
        weights = torch.tensor(class_weights(data.class_counts("train")), dtype=torch.float32)
    indices = oversampled_indices(train.labels, np.random.default_rng(cfg.seed)) if cfg.oversampling else None
    train_set = ArrayDataset(train, indices, build_augmentation(cfg.augment))
    sampler = RandomSampler(train_set, num_samples=cfg.epoch_samples,
                            generator=torch.Generator().manual_seed(cfg.seed))
    loader = DataLoader(train_set, batch_size=cfg.batch_size, sampler=sampler)
    loss_fn = nn.CrossEntropyLoss(weight=weights.to(device) if weights is not None else None)

    def batch_loss(net: nn.Module, batch) -> torch.Tensor:
        images, labels = batch
        return loss_fn(net(images.to(device)), labels.to(device))

    def evaluate(net: nn.Module) -> dict:
        logits, labels = predict(net, data.splits["val"], batch_size=cfg.eval_batch_size, device=device)
        return evaluate_logits(logits, labels, data.class_names, weights)

    optimizer = OPTIMIZERS[cfg.optimizer](model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    settings = LoopSettings.of(cfg, num_classes=data.num_classes, monitor=monitor)
    meta = {"task": "classification", "dataset": data.name, "class_names": list(data.class_names),
            "image_size": data.image_size, "mean": list(data.mean), "std": list(data.std),
            "config": asdict(cfg)}
    fit(model=model, optimizer=optimizer, train_batches=lambda: loader, batch_loss=batch_loss,
        evaluate=evaluate, settings=settings, meta=meta, trial_started=trial_started)
