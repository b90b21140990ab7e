"""Trainable registry: one entry per task kind, with the config dataclass it accepts and how
the analysis evaluates its checkpoints."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from trainables.classification import ClassificationConfig, checkpoint_probabilities, classification_trainable
from trainables.metrics import probability_metrics
from trainables.segmentation import (SegmentationConfig, checkpoint_mask_probabilities, mask_scores,
                                     segmentation_trainable, tune_inference)


@dataclass(frozen=True)
class TrainableEntry:
    """A task kind: its Tune function, the config it accepts, and for the analysis how a
    checkpoint predicts a split (``predict``), how predictions are scored (``score``, optionally
    on B x n resampling weights) and, where inference has settings of its own, how they are
    tuned on validation outputs (``tune_inference``, whose result ``score`` takes as keywords)."""

    name: str
    function: Callable[..., None]
    config_class: type
    predict: Callable[..., object]
    score: Callable[..., dict]
    tune_inference: Callable[..., dict] | None = None


TRAINABLES: dict[str, TrainableEntry] = {
    "classification": TrainableEntry("classification", classification_trainable, ClassificationConfig,
                                      predict=checkpoint_probabilities, score=probability_metrics),
    "segmentation": TrainableEntry("segmentation", segmentation_trainable, SegmentationConfig,
                                    predict=checkpoint_mask_probabilities, score=mask_scores,
                                    tune_inference=tune_inference),
}


def get_trainable(name: str) -> TrainableEntry:
    """The entry registered as ``name``; unknown names list the valid ones."""
    try:
        return TRAINABLES[name]
    except KeyError:
        raise KeyError(f"unknown trainable {name!r}; valid trainables: {', '.join(sorted(TRAINABLES))}") from None
