"""The semantic-segmentation trainable: every segmentation study runs through this one function,
configured by ``SegmentationConfig``, sharing the training loop of ``trainables.engine``.

The data's ``class_names`` decide the kind (index 0 is the background):

* two classes are binary: one logit per pixel, sigmoid probabilities (N x H x W float32), masks
  by a threshold the analysis tunes, BCE and soft Dice of the foreground;
* K > 2 classes are multi-class: K logits per pixel, softmax probabilities (N x K x H x W,
  float16 to halve what the analysis caches), masks by argmax (nothing to tune), and the
  losses generalised: ``bce`` is softmax cross-entropy, ``dice`` one minus the mean soft Dice of
  the foreground classes, ``bce_dice`` their sum.
"""

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
from trainables.metrics import (
    binarize,
    mask_counts,
    multiclass_segmentation_metrics,
    scores_from_counts,
    segmentation_metrics,
)
from trainables.models import build_model, check_model_name

LOSSES = ("bce", "dice", "bce_dice")


@dataclass(frozen=True)
class SegmentationConfig(LoopConfig):
    """Everything a segmentation trial can be told. Defaults are study 6's fixed settings.

    ``threshold`` turns binary probabilities into masks for the validation metrics; the analysis
    tunes it again on validation outputs. Multi-class masks are the argmax and ignore it.
    ``epoch_samples`` caps an epoch at that many random training images (None: one pass).
    ``data_path`` says where training batches come from, as for classification
    (``trainables.device_data``); masks follow their images' geometric augmentation on either
    path. ``loss`` names the binary losses; with K > 2 classes ``bce`` is softmax cross-entropy,
    ``dice`` the soft Dice of the foreground classes and ``bce_dice`` their sum
    (``segmentation_loss``).
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
        check_model_name("segmentation", self.model)
        require_choice("optimizer", self.optimizer, engine.OPTIMIZERS)
        require_choice("loss", self.loss, LOSSES)
        require_choice("data_path", self.data_path, DATA_PATHS)
        require_epoch_samples(self.epoch_samples)
        if not 0 <= self.dropout < 1 or not 0 < self.threshold < 1:
            raise ConfigError(f"dropout must be in [0, 1) and threshold in (0, 1); "
                              f"got {self.dropout}, {self.threshold}")
        require_positive(self, ("base_channels",))


def is_multiclass(num_classes: int) -> bool:
    """Whether masks of ``num_classes`` classes are multi-class (more than background and one
    class)."""
    return num_classes > 2


def output_channels(num_classes: int) -> int:
    """Logits per pixel of a segmenter of ``num_classes`` classes: one for binary masks (the
    foreground's), one per class otherwise."""
    if num_classes < 2:
        raise ValueError(f"segmentation needs a background and at least one class, got {num_classes} class(es)")
    return num_classes if num_classes > 2 else 1


def soft_dice(intersection: torch.Tensor, total: torch.Tensor) -> torch.Tensor:
    """1 − the mean over classes of soft Dice from per-class sums of probability x truth
    (``intersection``) and of probability + truth (``total``), smoothed by 1 pixel."""
    return 1 - ((2 * intersection + 1) / (total + 1)).mean()


def soft_dice_loss(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """1 − the soft Dice of the batch's foreground probabilities (N x H x W logits and masks)."""
    probabilities = torch.sigmoid(logits)
    return soft_dice((probabilities * masks).sum(), probabilities.sum() + masks.sum())


def soft_multiclass_dice_loss(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """1 − the mean over foreground classes of each class's soft Dice over the batch, from
    N x K x H x W logits and N x H x W class-index masks; the background is left out, as the
    binary loss leaves it out."""
    probabilities = logits.softmax(dim=1)[:, 1:]
    truth = nn.functional.one_hot(masks, logits.shape[1]).permute(0, 3, 1, 2)[:, 1:].to(probabilities.dtype)
    dims = (0, 2, 3)
    return soft_dice((probabilities * truth).sum(dims), probabilities.sum(dims) + truth.sum(dims))


def segmentation_loss(name: str, num_classes: int):
    """The training loss ``name`` of a segmenter's N x C x H x W logits against N x H x W masks:
    for binary masks BCE, soft Dice or their sum on the one foreground logit; for K > 2
    classes softmax cross-entropy (what ``bce`` means there), soft multi-class Dice or their
    sum."""
    if is_multiclass(num_classes):
        cross_entropy = nn.CrossEntropyLoss()

        def pixel_loss(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
            return cross_entropy(logits, masks.long())

        def dice_loss(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
            return soft_multiclass_dice_loss(logits, masks.long())
    else:
        bce = nn.BCEWithLogitsLoss()

        def pixel_loss(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
            return bce(logits[:, 0], masks.float())

        def dice_loss(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
            return soft_dice_loss(logits[:, 0], masks.float())
    if name == "bce":
        return pixel_loss
    if name == "dice":
        return dice_loss
    return lambda logits, masks: pixel_loss(logits, masks) + dice_loss(logits, masks)


def build_segmenter(config: SegmentationConfig, *, num_classes: int, in_channels: int, mean, std) -> nn.Sequential:
    """Normalisation followed by the registered model, with ``output_channels(num_classes)``
    logits per pixel for ``in_channels``-channel images (``mean`` and ``std`` one per channel)."""
    if not len(mean) == len(std) == in_channels:
        raise ValueError(f"the data's mean and std need one value per image channel ({in_channels}); "
                         f"got {len(mean)} and {len(std)}")
    model = build_model(config.model, num_classes=output_channels(num_classes), in_channels=in_channels,
                        pretrained=config.pretrained, dropout=config.dropout, base_channels=config.base_channels)
    return nn.Sequential(Normalize(mean, std), model)


def predict_masks(model: nn.Module, split: SplitArrays, *, num_classes: int, batch_size: int,
                  device: torch.device) -> np.ndarray:
    """A whole split's probabilities, in order: of the foreground (n x H x W float32) for binary
    masks, of every class (n x K x H x W float16, softmax) for K > 2 classes."""
    multiclass = is_multiclass(num_classes)
    model.eval()
    outputs = []
    with torch.no_grad():
        for images, _ in in_order(split, batch_size):
            logits = model(images.to(device)).float()
            outputs.append((logits.softmax(dim=1).half() if multiclass else torch.sigmoid(logits[:, 0])).cpu())
    if outputs:
        return torch.cat(outputs).numpy()
    return np.zeros((0, *((num_classes,) if multiclass else ()), *split.images.shape[1:3]),
                    np.float16 if multiclass else np.float32)


def checkpoint_model(checkpoint_dir: Path) -> tuple[nn.Sequential, dict]:
    """The segmenter a checkpoint of this trainable holds (on the CPU, in eval mode) and its
    metadata, built with pretraining off and given the checkpoint's weights: the checkpoint is
    all it needs."""
    config, meta = checkpoints.read_checkpoint_config(checkpoint_dir, SegmentationConfig)
    model = build_segmenter(config, num_classes=len(meta["class_names"]), in_channels=len(meta["mean"]),
                            mean=meta["mean"], std=meta["std"])
    checkpoints.load_checkpoint_model(checkpoint_dir, model)
    return model.eval(), meta


def checkpoint_mask_probabilities(checkpoint_dir: Path, split: SplitArrays, *, batch_size: int = 16) -> np.ndarray:
    """A split's probabilities (``predict_masks``) from a checkpoint this trainable wrote
    (``checkpoint_model``)."""
    model, meta = checkpoint_model(checkpoint_dir)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return predict_masks(model.to(device), split, num_classes=len(meta["class_names"]), batch_size=batch_size,
                         device=device)


# The inference-time grid tuned on validation outputs: probability threshold x smallest kept
# connected component (pixels). medsweep's choice; seed 004 used Keras' fixed 0.5.
THRESHOLDS = tuple(round(t, 2) for t in np.arange(0.1, 0.91, 0.05))
MIN_SIZES = (0, 4, 16, 64)


def mask_scores(labels: np.ndarray, outputs: np.ndarray, class_names: tuple[str, ...],
                weights: np.ndarray | None = None, *, threshold: float = 0.5, min_size: int = 0) -> dict:
    """The scores of a split's probabilities (``predict_masks``), for the trainable's validation
    and the analysis: ``segmentation_metrics`` at ``threshold`` and ``min_size`` for binary
    masks (two ``class_names``, or none), ``multiclass_segmentation_metrics`` of the argmax for
    more (where ``threshold`` and ``min_size`` do not apply)."""
    if is_multiclass(len(class_names)):
        return multiclass_segmentation_metrics(labels, outputs, tuple(class_names), weights=weights)
    return segmentation_metrics(labels, outputs, threshold=threshold, min_size=min_size, weights=weights)


def tune_inference(labels: np.ndarray, outputs: np.ndarray,
                   class_names: tuple[str, ...] = ()) -> tuple[dict, list[dict]]:
    """The threshold and minimum component size that maximise the mean per-image Dice (the
    sweep's metric) on validation outputs (ties go to the earlier grid point), and the grid of
    settings with their Dice. Multi-class masks (more than two ``class_names``) are the argmax:
    no settings, no grid."""
    if is_multiclass(len(class_names)):
        return {}, []
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
    """Ray Tune function trainable for binary or multi-class segmentation (train and val splits
    only), as many classes as ``data.class_names``, as many input channels as its images."""
    cfg = from_config(SegmentationConfig, config)
    trial_started, device = engine.start_trial(cfg.seed)
    model = build_segmenter(cfg, num_classes=data.num_classes, in_channels=data.channels, mean=data.mean,
                            std=data.std).to(device)
    batches = training_batches(data.splits["train"], None, augment=cfg.augment, batch_size=cfg.batch_size,
                               epoch_samples=cfg.epoch_samples, seed=cfg.seed, device=device,
                               data_path=cfg.data_path, cpus=engine.assigned_cpus())
    loss_fn = segmentation_loss(cfg.loss, data.num_classes)

    def batch_loss(net: nn.Module, batch) -> tuple[torch.Tensor, None]:
        images, masks = batch
        images, masks = images.to(device, non_blocking=True), masks.to(device, non_blocking=True)
        return loss_fn(net(images), masks), None

    def evaluate(net: nn.Module) -> dict:
        val = data.splits["val"]
        probabilities = predict_masks(net, val, num_classes=data.num_classes, batch_size=cfg.eval_batch_size,
                                      device=device)
        metrics = mask_scores(val.labels, probabilities, data.class_names, threshold=cfg.threshold)
        return {k: float(v) for k, v in metrics.items()}

    optimizer = engine.OPTIMIZERS[cfg.optimizer](model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    settings = engine.LoopSettings.of(cfg, baseline_loss=math.log(data.num_classes), monitor=monitor,
                                      channels_last=True)
    meta = {"task": "segmentation", "dataset": data.name, "class_names": list(data.class_names),
            "image_size": data.image_size, "mean": list(data.mean), "std": list(data.std), "config": asdict(cfg),
            "data_path": batches.path}
    engine.fit(model=model, optimizer=optimizer, train_batches=batches, batch_loss=batch_loss,
        evaluate=evaluate, settings=settings, meta=meta, trial_started=trial_started)
