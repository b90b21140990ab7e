"""``DetectionConfig``: everything a detection trial can be told, with its checks."""

from __future__ import annotations

from dataclasses import dataclass

from trainables import engine
from trainables.config import ConfigError, LoopConfig, require_choice, require_positive
from trainables.models import check_model_name

OPTIMIZER_NAMES = ("sgd", *engine.OPTIMIZERS)


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
        check_model_name("detection", self.backbone)
        require_choice("optimizer", self.optimizer, OPTIMIZER_NAMES)
        require_positive(self, ("steps_per_epoch", "validation_steps", "max_detections"))
        if self.gradient_clip_norm is not None and self.gradient_clip_norm <= 0:
            raise ConfigError(f"config key 'gradient_clip_norm' must be positive or null, "
                              f"got {self.gradient_clip_norm!r}")
        for key in ("detection_min_confidence", "detection_nms", "rpn_nms"):
            if not 0.0 < getattr(self, key) < 1.0:
                raise ConfigError(f"config key {key!r} must be in (0, 1), got {getattr(self, key)!r}")
