"""The model registry, which every model module imports to register its builders.

A builder takes keyword arguments only: ``num_classes``, ``pretrained`` and ``pretrained_path``,
and for classifiers also ``dropout`` and ``in_channels`` (see ``classifiers``).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from trainables.registries import Registry

ModelBuilder = Callable[..., nn.Module]
MODELS: Registry[ModelBuilder] = Registry("model")


def register_model(name: str) -> Callable[[ModelBuilder], ModelBuilder]:
    """Register the decorated builder as ``name``."""
    return MODELS.register(name)
