"""Benchmark: training epochs from the decoded-patch cache against a naive loop that re-reads,
re-parses and re-crops the JPEGs every epoch; and the time from trial start to first step.

    MEDSWEEP_DATA_DIR=../shared/data python benchmarks/patch_cache.py [--image-size 48] [--epochs 2]

Prints seconds per epoch for both paths (with the model step, and the data path alone) and the
ratios. Figures, not assertions: these machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from trainables.arrays import ArrayDataset
from trainables.augment import build_augmentation
from trainables.classification import ClassificationConfig, build_classifier
from trainables.datasets.bccd import CLASS_NAMES, locate_bccd, prepare_bccd
from trainables.datasets.images import crop_with_padding, decode_rgb, resize_square
from trainables.datasets.voc import parse_annotation, read_split_list


class NaiveJpegDataset(Dataset):
    """What a per-trial loader without the cache does: every item re-reads its JPEG and XML."""

    def __init__(self, root, split: str, image_size: int, padding: int, augment) -> None:
        self.root, self.size, self.padding, self.augment = root, image_size, padding, augment
        self.items = []
        for image_id in read_split_list(root, split):
            annotation = parse_annotation(root / "Annotations" / f"{image_id}.xml")
            self.items += [(image_id, n) for n, box in enumerate(annotation.boxes) if box.area > 0]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        image_id, number = self.items[index]
        box = parse_annotation(self.root / "Annotations" / f"{image_id}.xml").boxes[number]
        image = decode_rgb(self.root / "JPEGImages" / f"{image_id}.jpg")
        patch = resize_square(crop_with_padding(image, box.as_tuple(), self.padding), self.size)
        patch = self.augment(image=patch)["image"]
        return torch.from_numpy(np.array(patch)), CLASS_NAMES.index(box.class_name)


def epoch_seconds(dataset: Dataset, model: torch.nn.Module | None, batch_size: int) -> float:
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(0))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3) if model is not None else None
    started = time.perf_counter()
    for images, labels in loader:
        if model is not None:
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(images), labels).backward()
            optimizer.step()
    return time.perf_counter() - started


def trial_start_to_first_step(data) -> float:
    """One real Tune trial (one epoch of 32 samples) and its reported ``setup_seconds``."""
    import ray
    from ray import tune

    from trainables.classification import classification_trainable
    from trainables.engine import Monitor

    ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        trainable = tune.with_parameters(classification_trainable, data=data.only("train", "val"),
                                         monitor=Monitor("val_macro_f1", "max"))
        config = {"pretrained": False, "max_epochs": 1, "epoch_samples": 32, "eval_batch_size": 256}
        tuner = tune.Tuner(tune.with_resources(trainable, {"cpu": 1}), param_space=config,
                           run_config=tune.RunConfig(storage_path="/tmp/medsweep-bench", verbose=0))
        return float(tuner.fit()[0].metrics["setup_seconds"])
    finally:
        ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-size", type=int, default=48)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()
    data, _ = prepare_bccd(data_dir=args.data_dir, image_size=args.image_size, use_cache=False)
    decode_once = time.perf_counter() - started
    started = time.perf_counter()
    prepare_bccd(data_dir=args.data_dir, image_size=args.image_size)
    prepare_bccd(data_dir=args.data_dir, image_size=args.image_size)
    warm = time.perf_counter() - started
    print(f"decode all {sum(len(s) for s in data.splits.values())} patches once: {decode_once:.2f} s; "
          f"load from the on-disk cache: {warm / 2:.2f} s")

    augment = build_augmentation("bccd_light")
    cached = ArrayDataset(data.splits["train"], augment=augment)
    naive = NaiveJpegDataset(locate_bccd(args.data_dir), "train", args.image_size, 10, augment)
    model = build_classifier(ClassificationConfig(pretrained=False), num_classes=data.num_classes,
                             in_channels=data.channels, mean=data.mean, std=data.std)
    rows = []
    for label, use_model in (("data path only", False), ("epoch with EfficientNet-B0 step", True)):
        cached_s = np.median([epoch_seconds(cached, model if use_model else None, args.batch_size)
                              for _ in range(args.epochs)])
        naive_s = np.median([epoch_seconds(naive, model if use_model else None, args.batch_size)
                             for _ in range(args.epochs)])
        rows.append((label, cached_s, naive_s))
    print(f"\ntrain split: {len(cached)} patches at {args.image_size}px, batch {args.batch_size}, 1 thread, "
          f"median of {args.epochs} epoch(s)")
    print(f"{'':34}{'cached s':>10}{'naive s':>10}{'naive/cached':>14}")
    for label, cached_s, naive_s in rows:
        print(f"{label:34}{cached_s:10.2f}{naive_s:10.2f}{naive_s / cached_s:13.1f}x")
    print(f"\ntrial start to first training step (Ray Tune trial, data from the object store): "
          f"{trial_start_to_first_step(data):.2f} s")


if __name__ == "__main__":
    main()
