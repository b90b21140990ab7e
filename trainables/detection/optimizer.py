"""The detector's optimiser: SGD with momentum (Matterport's) or one of the engine's, with each
parameter's gradient clipped before every step."""

from __future__ import annotations

import torch
from torch import nn

from trainables import engine
from trainables.detection.config import DetectionConfig

SGD_MOMENTUM = 0.9  # Matterport's LEARNING_MOMENTUM


def build_optimizer(config: DetectionConfig, model: nn.Module) -> torch.optim.Optimizer:
    """SGD with momentum 0.9 (``sgd``) or one of the engine's OPTIMIZERS, over the trainable
    parameters, with each gradient clipped to ``gradient_clip_norm`` before every step."""
    parameters = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        optimizer = torch.optim.SGD(parameters, lr=config.lr, momentum=SGD_MOMENTUM,
                                    weight_decay=config.weight_decay)
    else:
        optimizer = engine.OPTIMIZERS[config.optimizer](parameters, lr=config.lr, weight_decay=config.weight_decay)
    if config.gradient_clip_norm is not None:
        optimizer.register_step_pre_hook(clip_each_gradient(config.gradient_clip_norm))
    return optimizer


def clip_each_gradient(max_norm: float):
    """An optimiser step pre-hook scaling every parameter's gradient down to ``max_norm`` (its
    own norm, as Keras' ``clipnorm`` does, not the global norm)."""
    def hook(optimizer: torch.optim.Optimizer, args, kwargs) -> None:
        for group in optimizer.param_groups:
            for parameter in group["params"]:
                if parameter.grad is not None:
                    nn.utils.clip_grad_norm_(parameter, max_norm)
    return hook
