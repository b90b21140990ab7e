"""Trainable registry: one entry per task kind, with the config dataclass it accepts and how
the analysis evaluates its checkpoints."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from trainables import classification, detection, segmentation
from trainables.classification import ClassificationConfig, checkpoint_probabilities, classification_trainable
from trainables.detection import (
    DetectionConfig,
    checkpoint_instance_candidates,
    detection_trainable,
    fetch_detector_weights,
)
from trainables.detection_inference import candidate_scores, detection_truth, tune_detection_inference
from trainables.metrics import probability_metrics
from trainables.models import build_model
from trainables.registries import Registry
from trainables.segmentation import (
    SegmentationConfig,
    checkpoint_mask_probabilities,
    mask_scores,
    segmentation_trainable,
    tune_inference,
)


def fetch_model_weights(config: dict, *, data=None) -> None:
    """Build the config's registered model with its pretrained weights (downloaded once)."""
    build_model(config["model"], num_classes=2, pretrained=True, pretrained_path=config.get("pretrained_path"))


def labels_of(split) -> object:
    """A classification or segmentation split's truth: its labels (classes or masks)."""
    return split.labels


@dataclass(frozen=True)
class TrainableEntry:
    """A task kind: its Tune function, the config it accepts, and for the analysis how a
    checkpoint predicts a split (``predict``), what predictions are scored against (``truth`` of
    a split), how they are scored (``score(truth, outputs, class_names[, weights], **settings)``,
    optionally on B x n resampling weights) and, where inference has settings of its own, how
    they are tuned on validation outputs (``tune_inference(truth, outputs, class_names)`` gives
    the settings ``score`` takes as keywords, and the grid of settings it chose them from).
    ``fetch_weights(config, data=...)`` gets the pretrained weights a trial would start from;
    ``checkpoint_model(checkpoint_dir) -> (model, meta)`` rebuilds a trial's model from its
    checkpoint alone (no pretrained weights file read, nothing downloaded)."""

    name: str
    function: Callable[..., None]
    config_class: type
    predict: Callable[..., object]
    score: Callable[..., dict]
    checkpoint_model: Callable[[Path], tuple[nn.Module, dict]]
    tune_inference: Callable[..., tuple[dict, list[dict]]] | None = None
    truth: Callable[..., object] = labels_of
    fetch_weights: Callable[..., None] = fetch_model_weights


TRAINABLES: Registry[TrainableEntry] = Registry("trainable", entries={
    "classification": TrainableEntry("classification", classification_trainable, ClassificationConfig,
                                      predict=checkpoint_probabilities, score=probability_metrics,
                                      checkpoint_model=classification.checkpoint_model),
    "segmentation": TrainableEntry("segmentation", segmentation_trainable, SegmentationConfig,
                                    predict=checkpoint_mask_probabilities, score=mask_scores,
                                    checkpoint_model=segmentation.checkpoint_model, tune_inference=tune_inference),
    "detection": TrainableEntry("detection", detection_trainable, DetectionConfig,
                                predict=checkpoint_instance_candidates, score=candidate_scores,
                                checkpoint_model=detection.checkpoint_model, tune_inference=tune_detection_inference,
                                truth=detection_truth, fetch_weights=fetch_detector_weights),
})


def get_trainable(name: str) -> TrainableEntry:
    """The entry registered as ``name``; unknown names list the valid ones."""
    return TRAINABLES.get(name)
