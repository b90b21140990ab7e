"""The three segmentation models of the ``all_unet`` study (seed 004, STUDIES.md §6).

* ``unet``: a classic U-Net (double 3x3 conv + BatchNorm + ReLU blocks, 2x2 max-pool,
  transposed-conv upsampling, skip concatenation, 1x1 conv to logits).
* ``unet_fpn``: the same U-Net with a Feature Pyramid Network built into the encoder: 1x1
  lateral convs on every encoder level and the bottleneck, a top-down pathway, and a 3x3
  smoothing conv per level whose outputs replace the encoder features as the decoder's skips.
* ``unet_fpn_gelu``: ``unet_fpn`` with GELU inside the FPN blocks; the U-Net blocks keep ReLU.

The three differ only in the ``fpn`` submodule: every parameter outside ``fpn.`` has the same
name and shape in all three, so U-Net weights load into either FPN variant. ``dropout`` is a
``Dropout2d`` at the end of every encoder, bottleneck and decoder block. Every builder takes
``in_channels`` (3 for colour images, 1 for grey ones) and ``num_classes`` output channels (one
logit per pixel for binary masks, one per class for multi-class masks).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from trainables.errors import PretrainedWeightsError
from trainables.models._registry import ModelBuilder, register_model

FPN_ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU}


def _conv_block(in_channels: int, out_channels: int, dropout: float) -> nn.Sequential:
    """Two 3x3 conv + BatchNorm + ReLU layers followed by ``Dropout2d(dropout)``."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Dropout2d(dropout),
    )


class FeaturePyramid(nn.Module):
    """Lateral connections, top-down pathway and per-level smoothing over the encoder features.

    ``channels`` lists the encoder levels' channel counts (finest first); ``bottleneck_channels``
    is the bottleneck's. Each output level keeps its encoder level's shape.
    """

    def __init__(self, channels: list[int], bottleneck_channels: int, activation: str) -> None:
        super().__init__()
        act = FPN_ACTIVATIONS[activation]
        above = channels[1:] + [bottleneck_channels]
        self.lateral = nn.ModuleList(nn.Conv2d(c, c, 1) for c in channels)
        self.lateral_bottleneck = nn.Conv2d(bottleneck_channels, bottleneck_channels, 1)
        self.match = nn.ModuleList(nn.Conv2d(a, c, 1) for a, c in zip(above, channels))
        self.smooth = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), act())
            for c in channels)

    def forward(self, features: list[torch.Tensor], bottleneck: torch.Tensor) -> list[torch.Tensor]:
        """Smoothed pyramid levels P_1..P_depth for encoder features C_1..C_depth and C_b."""
        top = self.lateral_bottleneck(bottleneck)
        pyramid = []
        for level in reversed(range(len(features))):
            feature = features[level]
            top_down = F.interpolate(self.match[level](top), size=feature.shape[-2:],
                                     mode="nearest")
            top = self.lateral[level](feature) + top_down
            pyramid.append(self.smooth[level](top))
        return pyramid[::-1]


class UNet(nn.Module):
    """U-Net with ``depth`` down levels, optionally with a Feature Pyramid Network (``fpn``).

    Input N x in_channels x H x W with H and W divisible by ``2**depth``; output
    N x out_channels x H x W logits.
    """

    def __init__(self, *, in_channels: int = 3, out_channels: int = 1, base_channels: int = 32,
                 depth: int = 4, dropout: float = 0.0, fpn: bool = False,
                 fpn_activation: str = "relu") -> None:
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if fpn_activation not in FPN_ACTIVATIONS:
            raise ValueError(f"unknown fpn_activation {fpn_activation!r}; valid: "
                             f"{', '.join(FPN_ACTIVATIONS)}")
        if depth < 1 or base_channels < 1 or in_channels < 1 or out_channels < 1:
            raise ValueError(f"depth, base_channels, in_channels and out_channels must be "
                             f"positive, got {depth}, {base_channels}, {in_channels}, "
                             f"{out_channels}")
        self.depth = depth
        channels = [base_channels * 2**level for level in range(depth)]
        bottleneck_channels = base_channels * 2**depth
        self.encoder = nn.ModuleList(
            _conv_block(c_in, c_out, dropout)
            for c_in, c_out in zip([in_channels] + channels[:-1], channels))
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = _conv_block(channels[-1], bottleneck_channels, dropout)
        self.fpn = (FeaturePyramid(channels, bottleneck_channels, fpn_activation)
                    if fpn else None)
        above = channels[1:] + [bottleneck_channels]
        self.up = nn.ModuleList(nn.ConvTranspose2d(a, c, 2, stride=2)
                                for a, c in zip(above, channels))
        self.decoder = nn.ModuleList(_conv_block(2 * c, c, dropout) for c in channels)
        self.head = nn.Conv2d(channels[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Per-pixel logits of the same spatial size as ``x``."""
        multiple = 2**self.depth
        if x.dim() != 4 or x.shape[-2] % multiple or x.shape[-1] % multiple:
            raise ValueError(f"UNet of depth {self.depth} needs N x C x H x W input with H and W "
                             f"divisible by {multiple}, got shape {tuple(x.shape)}")
        skips = []
        for block in self.encoder:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        if self.fpn is not None:
            skips = self.fpn(skips, x)
        for level in reversed(range(self.depth)):
            x = self.up[level](x)
            x = self.decoder[level](torch.cat([x, skips[level]], dim=1))
        return self.head(x)


def unet(*, num_classes: int = 1, in_channels: int = 3, dropout: float = 0.0, base_channels: int = 32) -> UNet:
    """Plain U-Net (seed 004, STUDIES.md §6)."""
    return UNet(in_channels=in_channels, out_channels=num_classes, dropout=dropout, base_channels=base_channels)


def unet_fpn(*, num_classes: int = 1, in_channels: int = 3, dropout: float = 0.0,
             base_channels: int = 32) -> UNet:
    """U-Net with an FPN in the encoder, ReLU throughout (seed 004, STUDIES.md §6)."""
    return UNet(in_channels=in_channels, out_channels=num_classes, dropout=dropout, base_channels=base_channels,
                fpn=True, fpn_activation="relu")


def unet_fpn_gelu(*, num_classes: int = 1, in_channels: int = 3, dropout: float = 0.0,
                  base_channels: int = 32) -> UNet:
    """U-Net + FPN with GELU in the FPN blocks, ReLU in the U-Net blocks (seed 004, §6)."""
    return UNet(in_channels=in_channels, out_channels=num_classes, dropout=dropout, base_channels=base_channels,
                fpn=True, fpn_activation="gelu")


def trained_from_scratch(name: str, builder: Callable[..., nn.Module]) -> ModelBuilder:
    """A registry builder for a model the document trained from scratch: no pretrained weights
    exist."""
    def build(*, num_classes: int, pretrained: bool, pretrained_path: str | None, in_channels: int = 3,
              dropout: float = 0.0, base_channels: int = 32) -> nn.Module:
        if pretrained or pretrained_path:
            raise PretrainedWeightsError(f"{name} has no pretrained weights (seed 004 trains it from scratch); "
                                         f"set pretrained=false and leave pretrained_path unset")
        return builder(num_classes=num_classes, in_channels=in_channels, dropout=dropout,
                       base_channels=base_channels)
    build.__doc__ = builder.__doc__
    return build


for _name, _builder in (("unet", unet), ("unet_fpn", unet_fpn), ("unet_fpn_gelu", unet_fpn_gelu)):
    register_model(_name)(trained_from_scratch(_name, _builder))
