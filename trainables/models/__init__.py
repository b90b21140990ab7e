"""Model registry: each name maps to a builder taking keyword arguments only.

Builders receive ``num_classes``, ``pretrained`` and ``pretrained_path``; classifiers also
``dropout`` and ``in_channels`` (see ``classifiers``). A model that the document trained from
ImageNet weights fails with a clear message when the weights cannot be had, saying how to
disable pretraining or point at a local file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import timm
from torch import nn

from trainables.models.unet import unet, unet_fpn, unet_fpn_gelu
from trainables.errors import MedsweepError, UnknownNameError

ModelBuilder = Callable[..., nn.Module]
MODELS: dict[str, ModelBuilder] = {}


class PretrainedWeightsError(MedsweepError, RuntimeError):
    """Pretrained weights were asked for and could not be loaded."""


def register_model(name: str) -> Callable[[ModelBuilder], ModelBuilder]:
    def decorator(builder: ModelBuilder) -> ModelBuilder:
        if name in MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        MODELS[name] = builder
        return builder
    return decorator


def build_model(name: str, *, num_classes: int, pretrained: bool = False,
                pretrained_path: str | None = None, **kwargs) -> nn.Module:
    """Build the registered model ``name``; unknown names list the valid ones."""
    if name not in MODELS:
        raise UnknownNameError(f"unknown model {name!r}; valid models: {', '.join(sorted(MODELS))}")
    return MODELS[name](num_classes=num_classes, pretrained=pretrained,
                        pretrained_path=pretrained_path, **kwargs)


def timm_model(timm_name: str, *, num_classes: int, pretrained: bool,
               pretrained_path: str | None, **kwargs) -> nn.Module:
    """A timm model, with ImageNet weights from the hub or from a local file."""
    if pretrained_path:
        path = Path(pretrained_path).expanduser()
        if not path.is_file():
            raise PretrainedWeightsError(
                f"pretrained_path {path} does not exist; set pretrained_path to a timm "
                f"checkpoint of {timm_name} (.pth or .safetensors) or set pretrained=false")
        return timm.create_model(timm_name, pretrained=True, num_classes=num_classes,
                                 pretrained_cfg_overlay={"file": str(path)}, **kwargs)
    if not pretrained:
        return timm.create_model(timm_name, pretrained=False, num_classes=num_classes, **kwargs)
    try:
        return timm.create_model(timm_name, pretrained=True, num_classes=num_classes, **kwargs)
    except Exception as exc:
        raise PretrainedWeightsError(
            f"could not load ImageNet weights for {timm_name} ({type(exc).__name__}: {exc}). "
            f"Either point at a local weights file with --set pretrained_path=/path/to/"
            f"{timm_name}.safetensors, or train from scratch with --set pretrained=false "
            f"(the cpu profile does)") from exc


@register_model("efficientnet_b0")
def efficientnet_b0(*, num_classes: int, pretrained: bool, pretrained_path: str | None,
                    dropout: float = 0.0, in_channels: int = 3) -> nn.Module:
    """timm EfficientNet-B0, all layers trainable (seed 000 §3); ``dropout`` is timm's
    ``drop_rate`` before the classifier (the document added none: timm's default 0),
    ``in_channels`` its ``in_chans``."""
    return timm_model("efficientnet_b0", num_classes=num_classes, pretrained=pretrained,
                      pretrained_path=pretrained_path, drop_rate=dropout, in_chans=in_channels)



def trained_from_scratch(name: str, builder: Callable[..., nn.Module]) -> ModelBuilder:
    """A builder for a model the document trained from scratch: no pretrained weights exist."""
    def build(*, num_classes: int, pretrained: bool, pretrained_path: str | None, dropout: float = 0.0,
              base_channels: int = 32) -> nn.Module:
        if pretrained or pretrained_path:
            raise PretrainedWeightsError(f"{name} has no pretrained weights (seed 004 trains it from scratch); "
                                         f"set pretrained=false and leave pretrained_path unset")
        return builder(num_classes=num_classes, dropout=dropout, base_channels=base_channels)
    build.__doc__ = builder.__doc__
    return build


for _name, _builder in (("unet", unet), ("unet_fpn", unet_fpn), ("unet_fpn_gelu", unet_fpn_gelu)):
    register_model(_name)(trained_from_scratch(_name, _builder))

# Last: classifiers.py registers its models with register_model and uses timm_model from above.
from trainables.models import classifiers  # noqa: E402

__all__ = ["MODELS", "ModelBuilder", "PretrainedWeightsError", "build_model", "classifiers",
           "register_model", "timm_model", "trained_from_scratch"]
