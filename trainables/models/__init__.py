"""Model registry: each name maps to a builder taking keyword arguments only.

Builders receive ``num_classes``, ``pretrained`` and ``pretrained_path``; classifiers also
``dropout`` and ``in_channels`` (see ``classifiers``). A model that the document trained from
ImageNet weights fails with a clear message when the weights cannot be had, saying how to
disable pretraining or point at a local file. Each model module registers its builders with
``_registry.register_model``; importing them here fills ``MODELS``. The detection trainable's
R-CNNs (``rcnn``) take its config (``rcnn.DetectorSettings``) rather than registry keywords and
are not registered.
"""

from __future__ import annotations

from torch import nn

from trainables.errors import PretrainedWeightsError
from trainables.models import classifiers, unet
from trainables.models._registry import MODELS, ModelBuilder, register_model
from trainables.models.classifiers import timm_model
from trainables.models.unet import trained_from_scratch


def build_model(name: str, *, num_classes: int, pretrained: bool = False,
                pretrained_path: str | None = None, **kwargs) -> nn.Module:
    """Build the registered model ``name``; unknown names list the valid ones."""
    return MODELS.get(name)(num_classes=num_classes, pretrained=pretrained,
                            pretrained_path=pretrained_path, **kwargs)


__all__ = ["MODELS", "ModelBuilder", "PretrainedWeightsError", "build_model", "classifiers", "register_model",
           "timm_model", "trained_from_scratch", "unet"]
