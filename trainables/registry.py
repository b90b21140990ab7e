"""Trainable registry: one entry per task kind, with the config dataclass it accepts and how
the analysis evaluates its checkpoints."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from trainables.classification import ClassificationConfig, checkpoint_probabilities, classification_trainable
from trainables.metrics import probability_metrics


@dataclass(frozen=True)
class TrainableEntry:
    """A task kind: its Tune function, the config it accepts, and for the analysis how a
    checkpoint predicts a split (``predict``) and how predictions are scored (``score``,
    optionally on B x n resampling weights)."""

    name: str
    function: Callable[..., None]
    config_class: type
    predict: Callable[..., object]
    score: Callable[..., dict]


TRAINABLES: dict[str, TrainableEntry] = {
    "classification": TrainableEntry("classification", classification_trainable, ClassificationConfig,
                                      predict=checkpoint_probabilities, score=probability_metrics),
}


def get_trainable(name: str) -> TrainableEntry:
    """The entry registered as ``name``; unknown names list the valid ones."""
    try:
        return TRAINABLES[name]
    except KeyError:
        raise KeyError(f"unknown trainable {name!r}; valid trainables: {', '.join(sorted(TRAINABLES))}") from None
