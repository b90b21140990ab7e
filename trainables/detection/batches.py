"""Training batches: which images an epoch draws (``sampling_weights``, ``epoch_draws``), each
image and its annotations as torchvision takes them (flipped as drawn), the loader that reads
them and the copy of a batch to the device."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from trainables.datasets.detection import FLIP_MODES, DetectionSplit, flip_sample
from trainables.detection.config import DetectionConfig


def sampling_weights(labels: Sequence[np.ndarray], num_classes: int, *, balance: bool) -> np.ndarray:
    """The probability of drawing each training image at every draw (sums to 1).

    Without ``balance``: uniform. With it, images without annotations keep their uniform share
    (1 / n each), and the rest of the probability goes to the annotated images as if each draw
    first chose one of the classes present in the split uniformly, then one instance of that
    class uniformly, and took the image holding it: image i gets
    (1 - empty / n) × (1 / P) × Σ_c k_ic / N_c, with k_ic its instances of class c, N_c the
    split's and P the number of present classes. Every class then anchors an equal share of the
    draws: an image holding only the majority class is drawn less often than uniformly, one
    holding a minority instance more often (its other instances come along).
    """
    count = len(labels)
    if not balance:
        return np.full(count, 1.0 / count)
    per_image = np.stack([np.bincount(np.asarray(lab, dtype=np.int64), minlength=num_classes) for lab in labels])
    totals = per_image.sum(axis=0)
    inverse = np.divide(1.0, totals, out=np.zeros(num_classes), where=totals > 0)
    empty = per_image.sum(axis=1) == 0
    weights = (per_image @ inverse) / max(1, int((totals > 0).sum())) * (1 - empty.sum() / count)
    weights[empty] = 1.0 / count
    return weights / weights.sum()


def image_tensor(image: np.ndarray) -> torch.Tensor:
    """A uint8 H x W x 3 image as the float 3 x H x W tensor in [0, 1] torchvision expects."""
    return torch.tensor(image, dtype=torch.float32).permute(2, 0, 1).div(255.0)


def target(boxes: np.ndarray, labels: np.ndarray, masks: np.ndarray | None) -> dict[str, torch.Tensor]:
    """One image's annotations in torchvision's form (labels shifted past background; an image
    without annotations gets 0 x 4 boxes, which torchvision trains on as all background)."""
    annotations = {"boxes": torch.as_tensor(np.asarray(boxes, dtype=np.float32).reshape(-1, 4)),
                   "labels": torch.as_tensor(np.asarray(labels, dtype=np.int64).reshape(-1) + 1)}
    if masks is not None:
        annotations["masks"] = torch.as_tensor(np.ascontiguousarray(masks, dtype=np.uint8))
    return annotations


def image_sample(split: DetectionSplit, index: int, mode: str = "none") -> tuple[torch.Tensor, dict]:
    """Image ``index`` of ``split``, flipped by ``mode``, with its annotations."""
    masks = None if split.masks is None else split.masks[index]
    image, boxes, masks = flip_sample(split.images[index], split.boxes[index], masks, mode)
    return image_tensor(image), target(boxes, split.labels[index], masks)


class DrawnSamples(Dataset):
    """An epoch's drawn (image, flip) pairs of a detection split, each read and flipped when
    the loader asks for it (in worker processes on a GPU)."""

    def __init__(self, split: DetectionSplit, indices: np.ndarray, modes: np.ndarray) -> None:
        self.split, self.indices, self.modes = split, indices, modes

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> tuple[torch.Tensor, dict]:
        return image_sample(self.split, int(self.indices[position]), str(self.modes[position]))


def as_lists(samples: list[tuple[torch.Tensor, dict]]) -> tuple[list[torch.Tensor], list[dict]]:
    """A batch as the R-CNN takes it: a list of images and a list of their targets."""
    return [image for image, _ in samples], [annotations for _, annotations in samples]


def epoch_draws(split: DetectionSplit, config: DetectionConfig, weights: np.ndarray,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One epoch's images (drawn with ``weights``) and flips (at random when ``flips``), batch
    by batch from ``rng``, which carries on across epochs."""
    indices, modes = [], []
    for _ in range(config.steps_per_epoch):
        drawn = rng.choice(len(split.images), size=config.batch_size, p=weights)
        indices.append(drawn)
        modes.append(rng.choice(FLIP_MODES, size=len(drawn)) if config.flips else np.full(len(drawn), "none"))
    return np.concatenate(indices), np.concatenate(modes)


def training_batches(split: DetectionSplit, config: DetectionConfig, weights: np.ndarray,
                     rng: np.random.Generator, *, workers: int = 0,
                     pin_memory: bool = False) -> DataLoader:
    """One epoch: ``steps_per_epoch`` batches of ``batch_size`` images. The draws happen here,
    in the trial's process, so the batches are the same whatever ``workers`` read them."""
    indices, modes = epoch_draws(split, config, weights, rng)
    return DataLoader(DrawnSamples(split, indices, modes), batch_size=config.batch_size, collate_fn=as_lists,
                      num_workers=workers, pin_memory=pin_memory)


def to_device(images: list[torch.Tensor], targets: list[dict], device: torch.device) -> tuple[list, list]:
    """A batch on ``device``; from pinned memory the copies do not block."""
    return ([image.to(device, non_blocking=True) for image in images],
            [{key: value.to(device, non_blocking=True) for key, value in annotations.items()}
             for annotations in targets])
