"""Decoded arrays as torch data: the dataset every trainable samples from, and the
normalisation layer that lets checkpoints take raw uint8 images."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from trainables.datasets.base import SplitArrays


class ArrayDataset(Dataset):
    """Samples of one split, optionally augmented, as (uint8 HxWx3 tensor, target).

    The target is the integer label of a classification sample, or the uint8 HxW mask of a
    segmentation sample; masks go through the same augmentation as their image.
    """

    def __init__(self, split: SplitArrays, indices: np.ndarray | None = None, augment=None) -> None:
        self.split = split
        self.indices = np.arange(len(split)) if indices is None else indices
        self.augment = augment
        self.masks = split.labels.ndim == 3

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int):
        index = self.indices[position]
        image, target = self.split.images[index], self.split.labels[index]
        if self.augment is not None:
            if self.masks:
                out = self.augment(image=image, mask=target)
                image, target = out["image"], out["mask"]
            else:
                image = self.augment(image=image)["image"]
        image = torch.from_numpy(np.array(image, copy=True))
        return (image, torch.from_numpy(np.array(target, copy=True))) if self.masks else (image, int(target))


def shared_tensor(array: np.ndarray) -> torch.Tensor:
    """``array`` as a tensor sharing its memory (copied only if not contiguous). Arrays from
    Ray's object store are read-only, which torch warns about; nothing writes to these."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(np.ascontiguousarray(array))


def in_order(split: SplitArrays, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """A split's (uint8 N x H x W x C images, int64 labels or uint8 masks), in order,
    ``batch_size`` at a time, without augmentation: tensors over slices of the split's arrays,
    with no per-sample copy or collation."""
    masks = split.labels.ndim == 3
    for start in range(0, len(split), batch_size):
        images = shared_tensor(split.images[start:start + batch_size])
        targets = shared_tensor(split.labels[start:start + batch_size])
        yield images, targets if masks else targets.long()


class Normalize(nn.Module):
    """uint8 NHWC batches → normalised float NCHW, on the model's device; one mean and std per
    channel."""

    def __init__(self, mean, std) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1) * 255)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1) * 255)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return (images.permute(0, 3, 1, 2).float() - self.mean) / self.std
