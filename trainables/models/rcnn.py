"""torchvision's Mask R-CNN (Faster R-CNN for box-only data) on a ResNet-FPN, as the detection
trainable builds it from its config (any object with ``DetectorSettings``' fields, such as the
trainable's ``DetectionConfig``), with the weights it starts from: COCO detector weights for
``resnet50``, ImageNet ResNet-101 weights for the ``resnet101`` backbone's body, or a local copy
of either (``pretrained_path``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import torch
from torch import nn
from torchvision.models import ResNet101_Weights
from torchvision.models.detection import (
    FasterRCNN,
    FasterRCNN_ResNet50_FPN_Weights,
    MaskRCNN,
    MaskRCNN_ResNet50_FPN_Weights,
)
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
from torchvision.models.detection.generalized_rcnn import GeneralizedRCNN
from torchvision.ops.misc import FrozenBatchNorm2d

from trainables.checkpoints import load_tensors
from trainables.errors import PretrainedWeightsError

BACKBONES = ("resnet50", "resnet101")
# The heads replaced for the data's classes when starting from COCO weights (torchvision's
# fine-tuning tutorial): their shapes are COCO's 91 classes.
CLASS_HEADS = ("roi_heads.box_predictor.", "roi_heads.mask_predictor.")


class DetectorSettings(Protocol):
    """The detector's part of the detection trainable's config: declared here, below the
    trainable, so this module never imports it (``trainables.detection.DetectionConfig`` has
    these fields)."""

    backbone: str
    pretrained: bool
    pretrained_path: str | None
    detection_min_confidence: float
    detection_nms: float
    rpn_nms: float
    max_detections: int


def starts_pretrained(config: DetectorSettings) -> bool:
    """Whether the trial starts from downloaded or local weights (``pretrained_path`` alone
    counts, as for the classifiers)."""
    return config.pretrained or config.pretrained_path is not None


def build_detector(config: DetectorSettings, *, num_classes: int, masks: bool, image_side: int,
                   load_weights: bool = True) -> GeneralizedRCNN:
    """Mask R-CNN (``masks``) or Faster R-CNN on an FPN over the configured ResNet, with
    ``num_classes`` + 1 outputs (background first) and the config's score, NMS and detection
    limits.

    ``min_size`` = ``max_size`` = ``image_side`` (the data's longest image side) makes
    torchvision's transform scale every image by min(side / shorter, side / longer) = 1 when
    the images are that size, so the model sees them at the data's own scale; smaller images are
    scaled up to it. ``load_weights=False`` builds the same network (the same norm layers) without
    fetching any weights, for a checkpoint's own weights to be loaded into.
    """
    pretrained = starts_pretrained(config)
    backbone = resnet_fpn_backbone(backbone_name=config.backbone, weights=None,
                                   norm_layer=FrozenBatchNorm2d if pretrained else nn.BatchNorm2d,
                                   trainable_layers=3 if pretrained else 5)
    detector = MaskRCNN if masks else FasterRCNN
    model = detector(backbone, num_classes=num_classes + 1, min_size=image_side, max_size=image_side,
                     box_score_thresh=config.detection_min_confidence, box_nms_thresh=config.detection_nms,
                     rpn_nms_thresh=config.rpn_nms, box_detections_per_img=config.max_detections)
    if pretrained and config.backbone == "resnet50":
        # torchvision sets batch-norm eps 0 for its COCO_V1 detectors (trained so); set here even
        # without loading, so a checkpoint's rebuilt model computes what the trial's did.
        for module in model.modules():
            if isinstance(module, FrozenBatchNorm2d):
                module.eps = 0.0
    if pretrained and load_weights:
        load_pretrained(model, config, masks=masks)
    return model


def default_weights(config: DetectorSettings, *, masks: bool):
    """torchvision's weights enum the backbone starts from when no ``pretrained_path`` is given."""
    if config.backbone == "resnet101":
        return ResNet101_Weights.IMAGENET1K_V1
    return MaskRCNN_ResNet50_FPN_Weights.COCO_V1 if masks else FasterRCNN_ResNet50_FPN_Weights.COCO_V1


def load_pretrained(model: GeneralizedRCNN, config: DetectorSettings, *, masks: bool) -> None:
    """Load the starting weights: a COCO detector's into everything but the class heads
    (``resnet50``), or ImageNet ResNet weights into the backbone's body (``resnet101``)."""
    weights = default_weights(config, masks=masks)
    state = read_weights(config, weights)
    if config.backbone == "resnet101":
        load_matching(model.backbone.body, state, skip=(), source=config.pretrained_path or weights.url)
    else:
        load_matching(model, state, skip=CLASS_HEADS, source=config.pretrained_path or weights.url)


def read_weights(config: DetectorSettings, weights) -> dict[str, torch.Tensor]:
    """The state dict at ``pretrained_path``, or torchvision's download of ``weights``."""
    expected = Path(weights.url).name
    advice = (f"Either point at a local copy of {expected} with --set pretrained_path=/path/to/{expected}, "
              f"or train from scratch with --set pretrained=false")
    if config.pretrained_path:
        path = Path(config.pretrained_path).expanduser()
        if not path.is_file():
            raise PretrainedWeightsError(f"pretrained_path {path} does not exist. {advice}")
        return load_tensors(path, what="pretrained_path", fix=advice)
    try:
        return weights.get_state_dict(progress=False, weights_only=True)
    except Exception as exc:
        raise PretrainedWeightsError(f"could not load torchvision's {weights} weights for the {config.backbone} "
                                     f"detector ({type(exc).__name__}: {exc}). {advice}") from exc


def load_matching(module: nn.Module, state: dict[str, torch.Tensor], *, skip: tuple[str, ...], source: str) -> None:
    """Load ``state`` into every entry of ``module`` outside the ``skip`` prefixes; entries of
    ``state`` the module lacks (a classifier's fc, a Mask R-CNN's mask head) are ignored, but an
    entry the module needs and ``state`` lacks, or a shape mismatch, is an error."""
    wanted = [key for key in module.state_dict() if not key.startswith(skip)]
    missing = [key for key in wanted if key not in state]
    if missing:
        raise PretrainedWeightsError(f"weights from {source} lack {len(missing)} entries the model needs "
                                     f"(first: {', '.join(missing[:3])}); is it the file for this backbone?")
    try:
        module.load_state_dict({key: state[key] for key in wanted}, strict=False)
    except RuntimeError as exc:
        raise PretrainedWeightsError(f"weights from {source} do not fit the model: {exc}") from exc
