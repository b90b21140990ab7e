"""The image-classification trainable: every classification study runs through this one
function, configured by ``ClassificationConfig`` and fed decoded arrays from the object store."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from trainables import checkpoints, engine
from trainables.arrays import Normalize, in_order
from trainables.config import ConfigError, LoopConfig, from_config, require_choice, require_epoch_samples
from trainables.datasets.base import ClassificationData, SplitArrays
from trainables.device_data import DATA_PATHS, training_batches
from trainables.metrics import classification_metrics, probability_metrics
from trainables.models import build_model, check_model_name


@dataclass(frozen=True)
class ClassificationConfig(LoopConfig):
    """Everything a classification trial can be told. Defaults are study 1's fixed settings.

    ``epoch_samples`` caps an epoch at that many random training samples (None: one full pass
    over the training split, oversampled or not). ``model`` is a registered classifier or any timm
    model (``trainables.models.model_names``). ``dropout`` is the model head's.
    ``balance_per_class`` resamples the training split to that many samples of every class
    (duplicates differ by their on-the-fly augmentation), as studies 2 and 5 balanced their
    data, but after the split; ``oversampling`` instead tops every class up to the majority's
    count.

    ``data_path`` says where training batches come from (``trainables.device_data``): ``auto``
    (the train split on the trial's device, batches drawn and augmented there, unless it does
    not fit the device memory budget or the augmentation has no device version; a sweep decides
    it once for all its trials, ``resolve_data_path``), ``device``, or ``loader`` (the
    per-sample ``DataLoader``). The samples are the same either way.
    """

    model: str = "efficientnet_b0"
    pretrained: bool = True
    pretrained_path: str | None = None
    dropout: float = 0.0
    optimizer: str = "adamw"
    lr: float = 1e-4
    weight_decay: float = 1e-4
    batch_size: int = 32
    eval_batch_size: int = 64
    max_epochs: int = 50
    epoch_samples: int | None = None
    weighted_loss: bool = False
    oversampling: bool = False
    balance_per_class: int | None = None
    augment: str = "none"
    data_path: str = "auto"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_model_name("classification", self.model)
        require_choice("optimizer", self.optimizer, engine.OPTIMIZERS)
        require_choice("data_path", self.data_path, DATA_PATHS)
        require_epoch_samples(self.epoch_samples)
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"config key 'dropout' must be in [0, 1), got {self.dropout!r}")
        if self.balance_per_class is not None and (self.balance_per_class <= 0 or self.oversampling):
            raise ConfigError(f"config key 'balance_per_class' must be positive and is an alternative to "
                              f"oversampling=true, got {self.balance_per_class!r} "
                              f"with oversampling={self.oversampling}")


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


def balanced_indices(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """``per_class`` indices of every present class: a random subset of a larger class, every
    sample plus random duplicates for a smaller one."""
    labels = np.asarray(labels)
    chosen = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        if len(members) >= per_class:
            chosen.append(rng.choice(members, size=per_class, replace=False))
        else:
            chosen.append(np.concatenate([members, rng.choice(members, size=per_class - len(members), replace=True)]))
    return np.concatenate(chosen).astype(np.int64)


def training_indices(config: ClassificationConfig, labels: np.ndarray) -> np.ndarray | None:
    """Which training samples an epoch draws from (None: each once), after any rebalancing."""
    rng = np.random.default_rng(config.seed)
    if config.balance_per_class:
        return balanced_indices(labels, config.balance_per_class, rng)
    return oversampled_indices(labels, rng) if config.oversampling else None


def output_units(num_classes: int) -> int:
    """Two classes get one logit (BCE-with-logits, as the binary study trains); more get one each."""
    return 1 if num_classes == 2 else num_classes


def class_probabilities(logits: np.ndarray) -> np.ndarray:
    """n x C probabilities from n x C logits (softmax), or from n x 1 binary logits ([1 - p, p])."""
    tensor = torch.from_numpy(np.asarray(logits, dtype=np.float32))
    if tensor.shape[1] == 1:
        positive = torch.sigmoid(tensor)
        return torch.cat([1 - positive, positive], dim=1).numpy()
    return torch.softmax(tensor, dim=1).numpy()


def classification_loss(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """Cross-entropy over the classes, or BCE-with-logits for one binary logit; ``weights``
    (one per class) weight the classes, as ``pos_weight`` = w1 / w0 in the binary case."""
    if logits.shape[1] == 1:
        pos_weight = None if weights is None else (weights[1] / weights[0]).reshape(1).to(logits.device)
        return nn.functional.binary_cross_entropy_with_logits(logits[:, 0], labels.float(), pos_weight=pos_weight)
    return nn.functional.cross_entropy(logits, labels, weight=None if weights is None else weights.to(logits.device))


def predicted_classes(logits: torch.Tensor) -> torch.Tensor:
    return (logits[:, 0] > 0).long() if logits.shape[1] == 1 else logits.argmax(dim=1)


def build_classifier(config: ClassificationConfig, *, num_classes: int, in_channels: int, mean, std) -> nn.Sequential:
    """Normalisation followed by the registered model, so checkpoints take raw uint8 input."""
    model = build_model(config.model, num_classes=output_units(num_classes), pretrained=config.pretrained,
                        pretrained_path=config.pretrained_path, dropout=config.dropout, in_channels=in_channels)
    return nn.Sequential(Normalize(mean, std), model)


def checkpoint_model(checkpoint_dir: Path) -> tuple[nn.Sequential, dict]:
    """The classifier a checkpoint of this trainable holds (on the CPU, in eval mode) and its
    metadata. It is built with pretraining off — no ``pretrained_path`` read, nothing
    downloaded — and then given the checkpoint's weights, so the checkpoint is all a report
    needs, on any machine."""
    config, meta = checkpoints.read_checkpoint_config(checkpoint_dir, ClassificationConfig)
    classifier = build_classifier(config, num_classes=len(meta["class_names"]), in_channels=len(meta["mean"]),
                                  mean=meta["mean"], std=meta["std"])
    checkpoints.load_checkpoint_model(checkpoint_dir, classifier)
    return classifier.eval(), meta


def checkpoint_probabilities(checkpoint_dir: Path, split: SplitArrays, *, batch_size: int = 256) -> np.ndarray:
    """Class probabilities (n x C) of a split from a checkpoint this trainable wrote, on the
    local GPU when there is one (``checkpoint_model``)."""
    classifier, _ = checkpoint_model(checkpoint_dir)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    logits, _ = predict(classifier.to(device), split, batch_size=batch_size, device=device)
    return class_probabilities(logits)


def predict(model: nn.Module, split: SplitArrays, *, batch_size: int,
            device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels for a whole split, in order, without augmentation."""
    model.eval()
    logits, labels = [], []
    with torch.no_grad():
        for images, targets in in_order(split, batch_size):
            logits.append(model(images.to(device)).float().cpu())
            labels.append(targets)
    if not logits:
        return np.zeros((0, 0), np.float32), np.zeros(0, np.int64)
    return torch.cat(logits).numpy(), torch.cat(labels).numpy()


def evaluate_logits(logits: np.ndarray, labels: np.ndarray, class_names: tuple[str, ...],
                    loss_weights: torch.Tensor | None = None) -> dict[str, float]:
    """Loss (the training criterion, same weighting) and every metric of a split's outputs."""
    if not len(labels):
        return {"loss": float("nan"), **classification_metrics(labels, labels, class_names)}
    loss = classification_loss(torch.from_numpy(logits), torch.from_numpy(labels), loss_weights).item()
    metrics = probability_metrics(labels, class_probabilities(logits), class_names)
    return {**{k: float(v) for k, v in metrics.items()}, "loss": loss}


def classification_trainable(config: dict, *, data: ClassificationData, monitor: engine.Monitor) -> None:
    """Ray Tune function trainable for image classification (train and val splits only)."""
    cfg = from_config(ClassificationConfig, config)
    trial_started, device = engine.start_trial(cfg.seed)
    model = build_classifier(cfg, num_classes=data.num_classes, in_channels=data.channels, mean=data.mean,
                             std=data.std).to(device)
    train = data.splits["train"]
    weights = None
    if cfg.weighted_loss:
        weights = torch.tensor(class_weights(data.class_counts("train")), dtype=torch.float32)
    batches = training_batches(train, training_indices(cfg, train.labels), augment=cfg.augment,
                               batch_size=cfg.batch_size, epoch_samples=cfg.epoch_samples, seed=cfg.seed,
                               device=device, data_path=cfg.data_path, cpus=engine.assigned_cpus())

    def batch_loss(net: nn.Module, batch) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = batch
        logits, labels = net(images.to(device, non_blocking=True)), labels.to(device, non_blocking=True)
        return classification_loss(logits, labels, weights), (predicted_classes(logits) == labels).sum()

    def evaluate(net: nn.Module) -> dict:
        logits, labels = predict(net, data.splits["val"], batch_size=cfg.eval_batch_size, device=device)
        return evaluate_logits(logits, labels, data.class_names, weights)

    optimizer = engine.OPTIMIZERS[cfg.optimizer](model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    settings = engine.LoopSettings.of(cfg, baseline_loss=math.log(data.num_classes), monitor=monitor,
                                      channels_last=True)
    meta = {"task": "classification", "dataset": data.name, "class_names": list(data.class_names),
            "image_size": data.image_size, "mean": list(data.mean), "std": list(data.std),
            "config": asdict(cfg), "data_path": batches.path}
    engine.fit(model=model, optimizer=optimizer, train_batches=batches, batch_loss=batch_loss,
        evaluate=evaluate, settings=settings, meta=meta, trial_started=trial_started)


def checkpoint_profile(checkpoint_dir: Path, split: SplitArrays, *, repeats: int = 20) -> dict:
    """Size and speed of a checkpoint's model, for the documents' model comparisons: total and
    trainable parameters, and the median milliseconds to classify one image (batch of one,
    after a warm-up, on the local GPU when there is one)."""
    classifier, _ = checkpoint_model(checkpoint_dir)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    classifier = classifier.to(device)
    image = torch.from_numpy(split.images[:1]).to(device)
    timings = []
    with torch.no_grad():
        for attempt in range(repeats + 3):
            started = time.perf_counter()
            classifier(image)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if attempt >= 3:
                timings.append(time.perf_counter() - started)
    return {"parameters": float(sum(p.numel() for p in classifier.parameters())),
            "trainable_parameters": float(sum(p.numel() for p in classifier.parameters() if p.requires_grad)),
            "latency_ms": 1000 * float(np.median(timings)), "device": device.type}
