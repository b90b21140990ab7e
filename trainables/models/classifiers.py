"""Image classifiers of studies 2, 3 and 5 (seeds 001, 002, 004; STUDIES.md §2, §3, §5).

Every builder takes the keyword-only ``num_classes`` (output units; 1 for a binary task's single
logit), ``pretrained``, ``pretrained_path``, ``dropout`` and ``in_channels``, and returns a model
mapping float N x in_channels x H x W input (already normalised) to N x num_classes logits.

Weights: ``pretrained_path`` (a local state dict) wins over ``pretrained`` (ImageNet weights
from the hub), as in ``timm_model``; either failing raises ``PretrainedWeightsError`` saying how
to fix it. Where a first convolution must take other than three channels, pretrained RGB filters
are converted by summing over RGB and dividing by ``in_channels``: an image with the same value
in every channel then gets the response the RGB filters give the same grey image in RGB (for one
channel this is the RGB sum, as timm's ``in_chans`` does).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import timm
import torch
import torchvision
from torch import nn
from torchvision.models import (
    DenseNet121_Weights,
    EfficientNet_B0_Weights,
    MobileNet_V3_Large_Weights,
    VGG16_Weights,
    WeightsEnum,
)

from trainables.checkpoints import UnsafeCheckpointError, load_error, load_tensors
from trainables.errors import PretrainedWeightsError
from trainables.models._registry import register_model
from trainables.models.hub import hub_offline_unless_reachable

# Index of block 5's first conv in torchvision's ``vgg16().features`` (block 5 = ``features[24:]``).
VGG16_BLOCK5 = 24


def timm_model(timm_name: str, *, num_classes: int, pretrained: bool,
               pretrained_path: str | None, **kwargs) -> nn.Module:
    """A timm model, with ImageNet weights from the hub or from a local file."""
    if pretrained_path:
        path = Path(pretrained_path).expanduser()
        fix = f"set pretrained_path to a timm checkpoint of {timm_name} (.pth or .safetensors) or set pretrained=false"
        if not path.is_file():
            raise PretrainedWeightsError(f"pretrained_path {path} does not exist; {fix}")
        try:
            return timm.create_model(timm_name, pretrained=True, num_classes=num_classes,
                                     pretrained_cfg_overlay={"file": str(path)}, **kwargs)
        except Exception as exc:  # timm loads with weights_only=True: a refused file is refused here too
            error = load_error(path, exc, what="pretrained_path", fix=fix)
            if isinstance(error, UnsafeCheckpointError):
                raise error from exc
            reason = (str(exc).strip().splitlines() or [""])[0][:200]
            raise PretrainedWeightsError(f"pretrained_path {path} is not a timm checkpoint of {timm_name} "
                                         f"({type(exc).__name__}: {reason}); {fix}") from exc
    if not pretrained:
        return timm.create_model(timm_name, pretrained=False, num_classes=num_classes, **kwargs)
    try:
        with hub_offline_unless_reachable():
            return timm.create_model(timm_name, pretrained=True, num_classes=num_classes, **kwargs)
    except Exception as exc:
        raise PretrainedWeightsError(
            f"could not load ImageNet weights for {timm_name} ({type(exc).__name__}: {exc}). "
            f"Either point at a local weights file with --set pretrained_path=/path/to/"
            f"{timm_name}.safetensors, or train from scratch with --set pretrained=false "
            f"(the cpu profile does)") from exc


def is_timm_model(name: object) -> bool:
    """Whether timm has a model called ``name`` (a ``timm.list_models()`` name, optionally with a
    pretrained tag such as ``resnet18.a1_in1k``)."""
    return isinstance(name, str) and timm.is_model(name)


def timm_classifier(timm_name: str, *, num_classes: int, pretrained: bool, pretrained_path: str | None,
                    dropout: float = 0.0, in_channels: int = 3) -> nn.Module:
    """timm's ``timm_name`` as a classifier with the registry's keywords: ``dropout`` is timm's
    ``drop_rate`` before the classifier, ``in_channels`` its ``in_chans``; weights as
    ``timm_model`` loads them. Any timm model a study names builds through this."""
    return timm_model(timm_name, num_classes=num_classes, pretrained=pretrained,
                      pretrained_path=pretrained_path, drop_rate=dropout, in_chans=in_channels)


def torchvision_model(builder: Callable[..., nn.Module], weights: WeightsEnum, *, pretrained: bool,
                      pretrained_path: str | None) -> nn.Module:
    """``builder`` (a torchvision model function) with ``weights`` from the hub, with a local
    state dict from ``pretrained_path``, or untrained when neither is asked for."""
    name = builder.__name__
    if pretrained_path:
        return _with_local_weights(builder, Path(pretrained_path).expanduser())
    if not pretrained:
        return builder(weights=None)
    try:
        return builder(weights=weights, progress=False)
    except Exception as exc:
        raise PretrainedWeightsError(
            f"could not load ImageNet weights {weights} for torchvision {name} "
            f"({type(exc).__name__}: {exc}). Either point at a local state dict with --set "
            f"pretrained_path=/path/to/{name}.pth (torch.save of torchvision.models.{name}"
            f"(weights='{weights}').state_dict()), put {weights.url.rsplit('/', 1)[-1]} into "
            f"$TORCH_HOME/hub/checkpoints, or train from scratch with --set pretrained=false "
            f"(the cpu profile does)") from exc


def _with_local_weights(builder: Callable[..., nn.Module], path: Path) -> nn.Module:
    """``builder``'s model with the state dict saved at ``path``."""
    name = builder.__name__
    fix = (f"set pretrained_path to a torchvision {name} state dict (torch.save of "
           f"torchvision.models.{name}(weights=...).state_dict()) or set pretrained=false")
    if not path.is_file():
        raise PretrainedWeightsError(f"pretrained_path {path} does not exist; {fix}")
    state = load_tensors(path, what="pretrained_path", fix=fix)
    model = builder(weights=None)
    try:
        model.load_state_dict(state)
    except Exception as exc:
        reason = (str(exc).strip().splitlines() or [""])[0][:200]
        raise PretrainedWeightsError(f"pretrained_path {path} is not a torchvision {name} state "
                                     f"dict ({type(exc).__name__}: {reason}); {fix}") from exc
    return model


def _adapted_conv(conv: nn.Conv2d, in_channels: int, stride: tuple[int, int], *,
                  pretrained: bool) -> nn.Conv2d:
    """``conv`` taking ``in_channels`` with ``stride``: its filters are kept where the channel
    count stays, converted as the module docstring says where it changes and they are
    pretrained, freshly initialised otherwise."""
    if (in_channels, stride) == (conv.in_channels, conv.stride):
        return conv
    new = nn.Conv2d(in_channels, conv.out_channels, conv.kernel_size, stride=stride,
                    padding=conv.padding, dilation=conv.dilation, bias=conv.bias is not None)
    if in_channels == conv.in_channels:
        weight = conv.weight
    elif pretrained:
        weight = conv.weight.sum(dim=1, keepdim=True).expand(-1, in_channels, -1, -1) / in_channels
    else:
        return new
    with torch.no_grad():
        new.weight.copy_(weight)
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    return new


def _torchvision_backbone(builder: Callable[..., nn.Module], weights: WeightsEnum, *,
                          first_conv: str, in_channels: int, stride: tuple[int, int] | None,
                          pretrained: bool, pretrained_path: str | None) -> nn.Module:
    """``torchvision_model`` with its first convolution (the submodule named ``first_conv``)
    taking ``in_channels`` and, unless ``stride`` is None, that stride."""
    model = torchvision_model(builder, weights, pretrained=pretrained,
                              pretrained_path=pretrained_path)
    parent_name, _, child = first_conv.rpartition(".")
    parent = model.get_submodule(parent_name)
    conv = getattr(parent, child)
    setattr(parent, child, _adapted_conv(conv, in_channels, stride or conv.stride,
                                         pretrained=pretrained or bool(pretrained_path)))
    return model


def _swish_head(in_features: int, dropout: float, num_classes: int) -> list[nn.Module]:
    """Dense 256 (swish) -> Dropout -> Dense: the head seed 001 puts on all three of its models."""
    return [nn.Linear(in_features, 256), nn.SiLU(), nn.Dropout(dropout),
            nn.Linear(256, num_classes)]


@register_model("efficientnet_b0")
def efficientnet_b0(*, num_classes: int, pretrained: bool, pretrained_path: str | None,
                    dropout: float = 0.0, in_channels: int = 3) -> nn.Module:
    """timm EfficientNet-B0, all layers trainable (seed 000 §3); ``dropout`` is timm's
    ``drop_rate`` before the classifier (the document added none: timm's default 0),
    ``in_channels`` its ``in_chans``."""
    return timm_classifier("efficientnet_b0", num_classes=num_classes, pretrained=pretrained,
                           pretrained_path=pretrained_path, dropout=dropout, in_channels=in_channels)


@register_model("custom_cnn")
def custom_cnn(*, num_classes: int, pretrained: bool, pretrained_path: str | None,
               dropout: float = 0.0, in_channels: int = 3) -> nn.Sequential:
    """Seed 001's small CNN (STUDIES.md §2a): three unpadded 3x3 conv + ReLU + 2x2 max-pool
    blocks of 32, 64 and 128 filters, global average pool, Dense 256 swish, Dropout, Dense.
    127,300 parameters for 3 input channels and 4 classes, the document's count.

    No ImageNet weights exist for it: it always trains from scratch, as seed 001 does, also
    when ``pretrained`` is true (study 2 sweeps it beside pretrained VGG16s with one setting).
    A ``pretrained_path`` is an error, since there is nothing it could hold."""
    if pretrained_path:
        raise PretrainedWeightsError("custom_cnn has no pretrained weights (seed 001 trains it "
                                     "from scratch); leave pretrained_path unset")
    blocks = [layer for c_in, c_out in pairwise((in_channels, 32, 64, 128))
              for layer in (nn.Conv2d(c_in, c_out, 3), nn.ReLU(), nn.MaxPool2d(2))]
    return nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         *_swish_head(128, dropout, num_classes))


def _vgg16(*, first_trainable: int | None, num_classes: int, pretrained: bool,
           pretrained_path: str | None, dropout: float, in_channels: int) -> nn.Sequential:
    """torchvision VGG16 ``features`` (``features[:first_trainable]`` frozen, all of them when
    None) under seed 001's head; ``model.features`` and ``model.head``."""
    features = _torchvision_backbone(
        torchvision.models.vgg16, VGG16_Weights.IMAGENET1K_V1, first_conv="features.0",
        in_channels=in_channels, stride=None, pretrained=pretrained,
        pretrained_path=pretrained_path).features
    features[:first_trainable].requires_grad_(False)
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         *_swish_head(512, dropout, num_classes))
    return nn.Sequential(OrderedDict(features=features, head=head))


@register_model("vgg16_frozen")
def vgg16_frozen(*, num_classes: int, pretrained: bool, pretrained_path: str | None,
                 dropout: float = 0.0, in_channels: int = 3) -> nn.Sequential:
    """Seed 001's VGG16 baseline (STUDIES.md §2b): ImageNet VGG16 convolutional base, every
    layer frozen, under GAP -> Dense 256 swish -> Dropout -> Dense. Only the head trains; the
    base has no BatchNorm, so ``train()`` changes nothing in it."""
    return _vgg16(first_trainable=None, num_classes=num_classes, pretrained=pretrained,
                  pretrained_path=pretrained_path, dropout=dropout, in_channels=in_channels)


@register_model("vgg16_finetune")
def vgg16_finetune(*, num_classes: int, pretrained: bool, pretrained_path: str | None,
                   dropout: float = 0.0, in_channels: int = 3) -> nn.Sequential:
    """Seed 001's VGG16 fine-tune (STUDIES.md §2c): as ``vgg16_frozen`` but with block 5 (the
    last three convs, ``features[24:]``) trainable; blocks 1-4 stay frozen."""
    return _vgg16(first_trainable=VGG16_BLOCK5, num_classes=num_classes, pretrained=pretrained,
                  pretrained_path=pretrained_path, dropout=dropout, in_channels=in_channels)


@register_model("inception_resnet_v2")
def inception_resnet_v2(*, num_classes: int, pretrained: bool, pretrained_path: str | None,
                        dropout: float = 0.0, in_channels: int = 3) -> nn.Module:
    """timm InceptionResNetV2, all layers trainable, ``dropout`` before the classifier (seed
    004, STUDIES.md §5). Needs inputs of at least 75x75."""
    return timm_classifier("inception_resnet_v2", num_classes=num_classes, pretrained=pretrained,
                           pretrained_path=pretrained_path, dropout=dropout, in_channels=in_channels)


@register_model("nasnetalarge")
def nasnetalarge(*, num_classes: int, pretrained: bool, pretrained_path: str | None,
                 dropout: float = 0.0, in_channels: int = 3) -> nn.Module:
    """timm NASNet-A Large, all layers trainable, ``dropout`` before the classifier (seed 004,
    STUDIES.md §5)."""
    return timm_classifier("nasnetalarge", num_classes=num_classes, pretrained=pretrained,
                           pretrained_path=pretrained_path, dropout=dropout, in_channels=in_channels)


# Seed 002 (STUDIES.md §3) adapts three ImageNet models to 1-channel 28x28 ChestMNIST: the first
# convolution takes ``in_channels`` with stride 1, everything else is the standard model. They
# are torchvision's because the document's code edits torchvision's MobileNetV3
# (``features[0][0]``, ``classifier``), so torchvision rebuilds its models layer for layer.

@register_model("densenet121_medmnist")
def densenet121_medmnist(*, num_classes: int, pretrained: bool, pretrained_path: str | None,
                         dropout: float = 0.0, in_channels: int = 3) -> nn.Module:
    """torchvision DenseNet-121 for 28x28 input (seed 002, STUDIES.md §3): ``conv0`` with stride
    1, Dropout before the final Linear."""
    model = _torchvision_backbone(
        torchvision.models.densenet121, DenseNet121_Weights.IMAGENET1K_V1,
        first_conv="features.conv0", in_channels=in_channels, stride=(1, 1),
        pretrained=pretrained, pretrained_path=pretrained_path)
    model.classifier = nn.Sequential(nn.Dropout(dropout),
                                     nn.Linear(model.classifier.in_features, num_classes))
    return model


@register_model("efficientnet_b0_medmnist")
def efficientnet_b0_medmnist(*, num_classes: int, pretrained: bool, pretrained_path: str | None,
                             dropout: float = 0.0, in_channels: int = 3) -> nn.Module:
    """torchvision EfficientNet-B0 for 28x28 input (seed 002, STUDIES.md §3): stem conv with
    stride 1, ``dropout`` replacing the standard 0.2 before the final Linear."""
    model = _torchvision_backbone(
        torchvision.models.efficientnet_b0, EfficientNet_B0_Weights.IMAGENET1K_V1,
        first_conv="features.0.0", in_channels=in_channels, stride=(1, 1),
        pretrained=pretrained, pretrained_path=pretrained_path)
    model.classifier = nn.Sequential(nn.Dropout(dropout),
                                     nn.Linear(model.classifier[-1].in_features, num_classes))
    return model


@register_model("mobilenetv3_large_medmnist")
def mobilenetv3_large_medmnist(*, num_classes: int, pretrained: bool,
                               pretrained_path: str | None, dropout: float = 0.0,
                               in_channels: int = 3) -> nn.Module:
    """torchvision MobileNetV3-Large for 28x28 input (seed 002 ``mobilenet_v3.py``, STUDIES.md
    §3): stem conv with stride 1 and the document's head Linear(960, 512) -> Hardswish ->
    Dropout(``dropout``) -> Linear(512, 256) -> ReLU -> Dropout(0.3) -> Linear(256,
    num_classes). The document used 0.4 and 0.3; the first is the swept ``dropout``, the
    second stays fixed at the document's 0.3."""
    model = _torchvision_backbone(
        torchvision.models.mobilenet_v3_large, MobileNet_V3_Large_Weights.IMAGENET1K_V1,
        first_conv="features.0.0", in_channels=in_channels, stride=(1, 1),
        pretrained=pretrained, pretrained_path=pretrained_path)
    model.classifier = nn.Sequential(
        nn.Linear(model.classifier[0].in_features, 512), nn.Hardswish(), nn.Dropout(dropout),
        nn.Linear(512, 256), nn.ReLU(), nn.Dropout(0.3), nn.Linear(256, num_classes))
    return model
