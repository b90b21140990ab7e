"""The detection trainable: Mask R-CNN (Faster R-CNN for box-only data) on a ResNet-FPN, as
study 4 trains it, configured by ``DetectionConfig`` and sharing the loop of ``trainables.engine``.

Images go to the model as float tensors in [0, 1]; torchvision's ``GeneralizedRCNNTransform``
normalises them with ImageNet statistics. Class indices are 0..C-1 in the data and in the
packed detections (image, x1, y1, x2, y2, score, label), 1..C inside the model (0: background).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision.models.detection.generalized_rcnn import GeneralizedRCNN

from trainables import checkpoints, engine
from trainables.config import ConfigError, LoopConfig, from_config, require_choice, require_positive
from trainables.datasets.detection import FLIP_MODES, DetectionData, DetectionSplit, flip_sample
from trainables.detection_inference import candidate_settings, instance_candidates
from trainables.device_data import loader_workers
from trainables.metrics import coco_average_precision, detection_scores, encode_masks
from trainables.models.rcnn import BACKBONES, build_detector, default_weights, read_weights, starts_pretrained

OPTIMIZER_NAMES = ("sgd", *engine.OPTIMIZERS)
SGD_MOMENTUM = 0.9  # Matterport's LEARNING_MOMENTUM
# Mask probabilities above this are the instance (Matterport's and torchvision's 0.5).
MASK_THRESHOLD = 0.5


@dataclass(frozen=True)
class DetectionConfig(LoopConfig):
    """Everything a detection trial can be told. Defaults are study 4's (seed 003, Matterport's
    Mask R-CNN configuration where the document names none).

    ``pretrained``: COCO Mask/Faster R-CNN weights for ``resnet50`` (torchvision's); torchvision
    has no COCO detection weights for ResNet-101, so ``resnet101`` starts its backbone from
    ImageNet ResNet-101 weights and its FPN and heads from scratch. ``pretrained_path`` instead
    names the file torchvision would download for the backbone (``resnet50``: the COCO detector's
    state dict, Mask or Faster R-CNN; ``resnet101``: the ImageNet ResNet-101 state dict). With
    weights the backbone's batch norm is frozen and its stem and first stage are not trained
    (torchvision's defaults); from scratch every layer trains with ordinary batch norm.

    ``optimizer`` ``sgd`` is SGD with momentum 0.9, as Matterport trains; ``gradient_clip_norm``
    clips each parameter's gradient to that norm before every step, as Matterport's
    ``GRADIENT_CLIP_NORM`` (Keras ``clipnorm``) does; None disables it.

    An epoch is ``steps_per_epoch`` optimiser steps of ``batch_size`` training images, drawn at
    random with replacement; each drawn image is flipped (none, x, y or both at random) when
    ``flips``. ``balance_classes`` draws images by class rather than uniformly: see
    ``sampling_weights``. Validation evaluates the first ``validation_steps`` images of the
    validation split (all when fewer) in batches of ``eval_batch_size``.

    ``detection_min_confidence`` and ``detection_nms`` are the model's box score threshold and
    per-class NMS IoU while validating (the mAP is of the boxes that survive them, as Matterport
    computes it), and the confidence from which validation precision, recall, F1 and accuracy
    count a detection; ``rpn_nms`` is the RPN's NMS IoU; ``max_detections`` the boxes kept per
    image.
    """

    backbone: str = "resnet101"
    pretrained: bool = True
    pretrained_path: str | None = None
    optimizer: str = "sgd"
    lr: float = 0.001
    weight_decay: float = 1e-4
    gradient_clip_norm: float | None = 5.0
    batch_size: int = 1
    eval_batch_size: int = 2
    steps_per_epoch: int = 100
    validation_steps: int = 200
    max_epochs: int = 20
    detection_min_confidence: float = 0.7
    detection_nms: float = 0.3
    rpn_nms: float = 0.7
    max_detections: int = 100
    flips: bool = True
    balance_classes: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        require_choice("backbone", self.backbone, BACKBONES)
        require_choice("optimizer", self.optimizer, OPTIMIZER_NAMES)
        require_positive(self, ("steps_per_epoch", "validation_steps", "max_detections"))
        if self.gradient_clip_norm is not None and self.gradient_clip_norm <= 0:
            raise ConfigError(f"config key 'gradient_clip_norm' must be positive or null, "
                              f"got {self.gradient_clip_norm!r}")
        for key in ("detection_min_confidence", "detection_nms", "rpn_nms"):
            if not 0.0 < getattr(self, key) < 1.0:
                raise ConfigError(f"config key {key!r} must be in (0, 1), got {getattr(self, key)!r}")


def fetch_detector_weights(config: dict, *, data: DetectionData) -> None:
    """Read (downloading once) the weights a trial of ``config`` starts from, so a missing
    download fails in the driver before any trial starts."""
    cfg = from_config(DetectionConfig, config)
    if starts_pretrained(cfg):
        read_weights(cfg, default_weights(cfg, masks=data.has_masks))


def build_optimizer(config: DetectionConfig, model: nn.Module) -> torch.optim.Optimizer:
    """SGD with momentum 0.9 (``sgd``) or one of the engine's OPTIMIZERS, over the trainable
    parameters, with each gradient clipped to ``gradient_clip_norm`` before every step."""
    parameters = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        optimizer = torch.optim.SGD(parameters, lr=config.lr, momentum=SGD_MOMENTUM,
                                    weight_decay=config.weight_decay)
    else:
        optimizer = engine.OPTIMIZERS[config.optimizer](parameters, lr=config.lr, weight_decay=config.weight_decay)
    if config.gradient_clip_norm is not None:
        optimizer.register_step_pre_hook(clip_each_gradient(config.gradient_clip_norm))
    return optimizer


def clip_each_gradient(max_norm: float):
    """An optimiser step pre-hook scaling every parameter's gradient down to ``max_norm`` (its
    own norm, as Keras' ``clipnorm`` does, not the global norm)."""
    def hook(optimizer: torch.optim.Optimizer, args, kwargs) -> None:
        for group in optimizer.param_groups:
            for parameter in group["params"]:
                if parameter.grad is not None:
                    nn.utils.clip_grad_norm_(parameter, max_norm)
    return hook


def sampling_weights(labels: Sequence[np.ndarray], num_classes: int, *, balance: bool) -> np.ndarray:
    """The probability of drawing each training image at every draw (sums to 1).

    Without ``balance``: uniform. With it, images without annotations keep their uniform share
    (1 / n each), and the rest of the probability goes to the annotated images as if each draw
    first chose one of the classes present in the split uniformly, then one instance of that
    class uniformly, and took the image holding it: image i gets
    (1 - empty / n) × (1 / P) × Σ_c k_ic / N_c, with k_ic its instances of class c, N_c the
    split's and P the number of present classes. Every class then anchors an equal share of the
    draws: an image holding only the majority class is drawn less often than uniformly, one
    holding a minority instance more often (its other instances come along).
    """
    count = len(labels)
    if not balance:
        return np.full(count, 1.0 / count)
    per_image = np.stack([np.bincount(np.asarray(lab, dtype=np.int64), minlength=num_classes) for lab in labels])
    totals = per_image.sum(axis=0)
    inverse = np.divide(1.0, totals, out=np.zeros(num_classes), where=totals > 0)
    empty = per_image.sum(axis=1) == 0
    weights = (per_image @ inverse) / max(1, int((totals > 0).sum())) * (1 - empty.sum() / count)
    weights[empty] = 1.0 / count
    return weights / weights.sum()


def image_tensor(image: np.ndarray) -> torch.Tensor:
    """A uint8 H x W x 3 image as the float 3 x H x W tensor in [0, 1] torchvision expects."""
    return torch.tensor(image, dtype=torch.float32).permute(2, 0, 1).div(255.0)


def target(boxes: np.ndarray, labels: np.ndarray, masks: np.ndarray | None) -> dict[str, torch.Tensor]:
    """One image's annotations in torchvision's form (labels shifted past background; an image
    without annotations gets 0 x 4 boxes, which torchvision trains on as all background)."""
    annotations = {"boxes": torch.as_tensor(np.asarray(boxes, dtype=np.float32).reshape(-1, 4)),
                   "labels": torch.as_tensor(np.asarray(labels, dtype=np.int64).reshape(-1) + 1)}
    if masks is not None:
        annotations["masks"] = torch.as_tensor(np.ascontiguousarray(masks, dtype=np.uint8))
    return annotations


def image_sample(split: DetectionSplit, index: int, mode: str = "none") -> tuple[torch.Tensor, dict]:
    """Image ``index`` of ``split``, flipped by ``mode``, with its annotations."""
    masks = None if split.masks is None else split.masks[index]
    image, boxes, masks = flip_sample(split.images[index], split.boxes[index], masks, mode)
    return image_tensor(image), target(boxes, split.labels[index], masks)


class DrawnSamples(Dataset):
    """An epoch's drawn (image, flip) pairs of a detection split, each read and flipped when
    the loader asks for it (in worker processes on a GPU)."""

    def __init__(self, split: DetectionSplit, indices: np.ndarray, modes: np.ndarray) -> None:
        self.split, self.indices, self.modes = split, indices, modes

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> tuple[torch.Tensor, dict]:
        return image_sample(self.split, int(self.indices[position]), str(self.modes[position]))


def as_lists(samples: list[tuple[torch.Tensor, dict]]) -> tuple[list[torch.Tensor], list[dict]]:
    """A batch as the R-CNN takes it: a list of images and a list of their targets."""
    return [image for image, _ in samples], [annotations for _, annotations in samples]


def epoch_draws(split: DetectionSplit, config: DetectionConfig, weights: np.ndarray,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One epoch's images (drawn with ``weights``) and flips (at random when ``flips``), batch
    by batch from ``rng``, which carries on across epochs."""
    indices, modes = [], []
    for _ in range(config.steps_per_epoch):
        drawn = rng.choice(len(split.images), size=config.batch_size, p=weights)
        indices.append(drawn)
        modes.append(rng.choice(FLIP_MODES, size=len(drawn)) if config.flips else np.full(len(drawn), "none"))
    return np.concatenate(indices), np.concatenate(modes)


def training_batches(split: DetectionSplit, config: DetectionConfig, weights: np.ndarray,
                     rng: np.random.Generator, *, workers: int = 0,
                     pin_memory: bool = False) -> DataLoader:
    """One epoch: ``steps_per_epoch`` batches of ``batch_size`` images. The draws happen here,
    in the trial's process, so the batches are the same whatever ``workers`` read them."""
    indices, modes = epoch_draws(split, config, weights, rng)
    return DataLoader(DrawnSamples(split, indices, modes), batch_size=config.batch_size, collate_fn=as_lists,
                      num_workers=workers, pin_memory=pin_memory)


def to_device(images: list[torch.Tensor], targets: list[dict], device: torch.device) -> tuple[list, list]:
    """A batch on ``device``; from pinned memory the copies do not block."""
    return ([image.to(device, non_blocking=True) for image in images],
            [{key: value.to(device, non_blocking=True) for key, value in annotations.items()}
             for annotations in targets])


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


def longest_side(data: DetectionData) -> int:
    """The longest image side over every split: the scale ``build_detector`` keeps (the data
    scales every image's longer side to its ``image_size``, so this is that size)."""
    return max(max(image.shape[:2]) for split in data.splits.values() for image in split.images)


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
