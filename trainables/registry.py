"""Trainable registry: one entry per task kind, with the config dataclass it accepts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from trainables.classification import ClassificationConfig, classification_trainable


@dataclass(frozen=True)
class TrainableEntry:
    name: str
    function: Callable[..., None]
    config_class: type


TRAINABLES: dict[str, TrainableEntry] = {
    "classification": TrainableEntry("classification", classification_trainable, ClassificationConfig),
}


def get_trainable(name: str) -> TrainableEntry:
    try:
        return TRAINABLES[name]
    except KeyError:
        raise KeyError(f"unknown trainable {name!r}; valid trainables: {', '.join(sorted(TRAINABLES))}") from None
