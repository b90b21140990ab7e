"""The detection datasets' cache: one npz per (data checksum, settings), read through by
``cached_detection_data``. Images of different sizes cannot be stacked, so each split stores its
images flattened end to end with their shapes, and its instances' boxes, labels and bit-packed
masks end to end with the instance count of each image."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from trainables.datasets.audit import DataAudit
from trainables.datasets.cache import fingerprint_of_digests, read_through_cache, save_npz_atomically
from trainables.datasets.detection.types import DetectionData, DetectionSplit
from trainables.datasets.download import cache_dir


def cached_detection_data(dataset: str, class_names: tuple[str, ...], root: Path, digests: dict[Path, str],
              params: dict, read: Callable[[], tuple[dict[str, DetectionSplit], DataAudit]],
              use_cache: bool) -> tuple[DetectionData, DataAudit]:
    """The cached (or freshly ``read``) splits and audit of data whose files' SHA-256 digests
    are ``digests``, read with ``params`` (part of the cache key)."""
    params = {**params, "dataset": dataset}
    key = fingerprint_of_digests(digests, root, params)
    path = cache_dir() / "detection" / f"{dataset}-{key[:20]}.npz"
    splits, audit = read_through_cache(path, params, read, use_cache=use_cache, load=load_detection_splits,
                                       save=save_detection_splits)
    return DetectionData(name=dataset, class_names=class_names, splits=splits, fingerprint=key), audit


def save_detection_splits(path: Path, splits: dict[str, DetectionSplit], meta: dict) -> None:
    arrays = {"meta": np.array(json.dumps({**meta, "splits": list(splits),
                                           "masks": {n: s.masks is not None for n, s in splits.items()}}))}
    for name, split in splits.items():
        arrays |= {f"{name}/{key}": value for key, value in _packed(split).items()}
    save_npz_atomically(path, arrays)


def _end_to_end(parts: tuple[np.ndarray, ...], dtype) -> np.ndarray:
    """The arrays flattened and joined into one 1-D array of ``dtype``."""
    return np.concatenate([np.ravel(p) for p in parts]).astype(dtype, copy=False) if parts else np.zeros(0, dtype)


def _packed(split: DetectionSplit) -> dict[str, np.ndarray]:
    packed = {"pixels": _end_to_end(split.images, np.uint8),
              "shapes": np.array([image.shape[:2] for image in split.images], np.int64).reshape(-1, 2),
              "counts": np.array([len(labels) for labels in split.labels], np.int64),
              "boxes": _end_to_end(split.boxes, np.float32).reshape(-1, 4),
              "labels": _end_to_end(split.labels, np.int64), "sources": split.sources.astype(str)}
    if split.masks is not None:
        packed["masks"] = np.packbits(_end_to_end(split.masks, np.uint8))
    return packed


def load_detection_splits(path: Path) -> tuple[dict[str, DetectionSplit], dict] | None:
    """The cached splits and metadata at ``path``, or None when absent or unreadable."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            meta = json.loads(str(stored["meta"]))
            splits = {name: _unpacked(stored, name, meta["masks"][name]) for name in meta["splits"]}
        return splits, meta
    except (OSError, KeyError, ValueError):
        return None


def _unpacked(stored, name: str, with_masks: bool) -> DetectionSplit:
    shapes, counts = stored[f"{name}/shapes"], stored[f"{name}/counts"]
    image_ends = np.cumsum(shapes[:, 0] * shapes[:, 1] * 3)
    pixels = stored[f"{name}/pixels"]
    images = tuple(pixels[end - h * w * 3:end].reshape(h, w, 3) for (h, w), end in zip(shapes, image_ends))
    instance_ends = np.cumsum(counts)
    boxes, labels = stored[f"{name}/boxes"], stored[f"{name}/labels"]
    masks = None
    if with_masks:
        mask_ends = np.cumsum(counts * shapes[:, 0] * shapes[:, 1])
        bits = np.unpackbits(stored[f"{name}/masks"], count=int(mask_ends[-1]) if len(mask_ends) else 0)
        masks = tuple(bits[end - n * h * w:end].reshape(n, h, w)
                      for n, (h, w), end in zip(counts, shapes, mask_ends))
    return DetectionSplit(images=images, boxes=tuple(boxes[end - n:end] for n, end in zip(counts, instance_ends)),
                          labels=tuple(labels[end - n:end] for n, end in zip(counts, instance_ends)),
                          masks=masks, sources=stored[f"{name}/sources"])
