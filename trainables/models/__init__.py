"""Model registry, and which model names each task accepts.

A registered builder takes keyword arguments only: ``num_classes``, ``pretrained`` and
``pretrained_path``; classifiers also ``dropout`` and ``in_channels`` (see ``classifiers``). A
model that the document trained from ImageNet weights fails with a clear message when the
weights cannot be had, saying how to disable pretraining or point at a local file. Each model
module registers its builders with ``_registry.register_model``; importing them here fills
``MODELS``. ``build_model`` builds a name that is not registered as timm's model of that name
(``classifiers.timm_classifier``): registered names come first.

Each task names its model with one config key (``MODEL_KEYS``): a classification study any
registered classifier or any timm model, a segmentation study one of the U-Nets, a detection
study one of the R-CNN backbones (``rcnn.BACKBONES``; the R-CNNs take the detection trainable's
config rather than registry keywords and are not registered). ``model_names``,
``is_model_name`` and ``check_model_name`` answer it for every task, so the trainables' configs
and the study-file reader check names the same way, before Ray starts.
"""

from __future__ import annotations

from functools import partial

import timm
from torch import nn

from trainables.config import ConfigError
from trainables.errors import PretrainedWeightsError, UnknownNameError
from trainables.models import classifiers, rcnn, unet
from trainables.models._registry import MODELS, ModelBuilder, register_model
from trainables.models.classifiers import is_timm_model, timm_classifier, timm_model
from trainables.models.unet import trained_from_scratch
from trainables.registries import Registry, unknown_name_message

# The config key naming each task's model.
MODEL_KEYS: Registry[str] = Registry("task", entries={
    "classification": "model", "segmentation": "model", "detection": "backbone"})
# The module whose registered builders are a task's models (detection's backbones are rcnn's).
TASK_MODULES = {"classification": classifiers.__name__, "segmentation": unet.__name__}
TIMM_NAMES = "any timm model name (timm.list_models())"


class UnknownModelError(ConfigError, UnknownNameError):
    """A model name its task does not know: a config error naming its key (so a sweep says which
    ``--set`` item or file set it) and an unknown name, as every registry raises."""


def registered_models(task: str) -> list[str]:
    """The names medsweep itself defines for ``task``'s model key, in registration order."""
    if MODEL_KEYS.get(task) == "backbone":  # detection, whose R-CNNs are not registered
        return list(rcnn.BACKBONES)
    return [name for name, builder in MODELS.items() if builder.__module__ == TASK_MODULES[task]]


def model_names(task: str) -> list[str]:
    """Every name ``task``'s model key accepts: the registered ones, and for classification then
    timm's (``timm.list_models()``; a timm name with a pretrained tag is accepted too)."""
    names = registered_models(task)
    if task == "classification":
        names += [name for name in timm.list_models() if name not in names]
    return names


def is_model_name(task: str, name: object) -> bool:
    """Whether ``task``'s model key accepts ``name``, without listing timm's models."""
    return name in registered_models(task) or (task == "classification" and is_timm_model(name))


def unknown_model_message(task: str, name: object) -> str:
    """Why ``task`` refuses ``name``: its near matches, then the valid names (for classification
    any timm name or a registered one); a classifier named for another task is said to be one."""
    kind = f"{task} {MODEL_KEYS.get(task)}"
    registered = ", ".join(registered_models(task))
    valid = f"{TIMM_NAMES} or one of: {registered}" if task == "classification" else registered
    message = unknown_name_message(kind, name, model_names(task), valid=valid)
    if task != "classification" and is_model_name("classification", name):
        message += f" ({name!r} is a classification model)"
    return message


def check_model_name(task: str, name: object) -> None:
    """Refuse a ``name`` that ``task``'s model key does not accept, with an ``UnknownModelError``
    naming the key, the value, its near matches and the valid names."""
    if not is_model_name(task, name):
        key = MODEL_KEYS.get(task)
        raise UnknownModelError(f"config key {key!r}: {unknown_model_message(task, name)}", key=key)


def model_builder(name: str) -> ModelBuilder:
    """The builder registered as ``name``, else timm's model ``name`` as a classifier; an unknown
    name lists its near matches and the valid names."""
    if name in MODELS:
        return MODELS.get(name)
    if is_timm_model(name):
        return partial(timm_classifier, name)
    names = dict.fromkeys([*MODELS, *timm.list_models()])
    raise UnknownNameError(unknown_name_message("model", name, names,
                                                valid=f"{TIMM_NAMES} or one of: {', '.join(MODELS)}"))


def build_model(name: str, *, num_classes: int, pretrained: bool = False,
                pretrained_path: str | None = None, **kwargs) -> nn.Module:
    """Build the model ``name`` (``model_builder``)."""
    return model_builder(name)(num_classes=num_classes, pretrained=pretrained,
                               pretrained_path=pretrained_path, **kwargs)


__all__ = ["MODELS", "MODEL_KEYS", "ModelBuilder", "PretrainedWeightsError", "UnknownModelError", "build_model",
           "check_model_name", "classifiers", "is_model_name", "model_builder", "model_names", "register_model",
           "registered_models", "timm_classifier", "timm_model", "trained_from_scratch", "unet",
           "unknown_model_message"]
