"""Benchmark: the training data path, per-sample loader against batched on the device; on a GPU
also the trainable's training throughput against a bare timm loop; and whole-sweep wall times.

    python benchmarks/gpu_throughput.py --device cpu --quick
    python benchmarks/gpu_throughput.py --device cuda [--batch-sizes 32 128] [--steps 40]
    python benchmarks/gpu_throughput.py --device cuda --sweep --gpus-per-trial 1 0.5 0.25 auto [--storage DIR]

Data: generated smooth 224 px uint8 images in the shape of BCCD's training split (2,804 patches,
classes 2381 / 214 / 209), no files needed.

Data path (every mode): images per second that each path delivers to the training loop with
the study's augmentation (``bccd_light``), no model: today's per-sample path (``ArrayDataset``
+ albumentations + ``DataLoader``, batch 32, moved to the device) against the device path
(``DeviceBatches`` with the pipeline's kornia twin). Repeats alternate between the two paths and the
medians are reported, as the machines are shared. The last line of a ``--device cpu`` run reads
``data path: per-sample N img/s, batched M img/s, speedup K.Kx``.

GPU (``--device cuda``): at each batch size, training images per second of
``classification_trainable``'s own loop (``fit``: the device data path, the engine's precision
and memory format; epochs after the first, validation excluded), without augmentation and with
``bccd_light``, against a bare ``timm`` EfficientNet-B0 + ``torch.autocast`` loop on the same
uint8 data in the same process (no augmentation); and each one's peak
``torch.cuda.max_memory_allocated`` (the trainable's includes the train split it holds on the
device).

``--sweep`` runs ``python -m sweeps.run bccd_imbalance --profile full --gpus-per-trial G`` once
per value given (numbers, or ``auto``) and prints each run's wall time, trial-epochs run (from
its ``summary.csv``) and trial-epochs per hour, and exit status.

Figures, not assertions: nothing here is compared with a threshold.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import cv2
import numpy as np
import torch

from trainables.datasets.base import ClassificationData, SplitArrays
from trainables.device_data import DeviceBatches, loader_batches

BCCD_TRAIN_COUNTS = (2381, 214, 209)   # RBC, WBC, platelets patches in BCCD's training split
IMAGE_SIZE = 224


def synthetic_split(counts=BCCD_TRAIN_COUNTS, size: int = IMAGE_SIZE, seed: int = 0) -> SplitArrays:
    """Smooth random colour patches (cubic upsampling of 28 x 28 noise), one label per class
    count; pixel content does not change the cost of any step timed here."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(counts)), counts)
    images = np.empty((len(labels), size, size, 3), np.uint8)
    for i in range(len(labels)):
        coarse = rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8)
        images[i] = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    return SplitArrays(images, labels, np.arange(len(labels)))


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def images_per_second(batches, device: torch.device, limit: int) -> float:
    """Images per second of the first ``limit`` batches of one epoch, delivered on ``device``."""
    count = 0
    synchronize(device)
    started = time.perf_counter()
    for number, (images, labels) in enumerate(batches()):
        images, labels = images.to(device), labels.to(device)
        count += len(images)
        if number + 1 == limit:
            break
    synchronize(device)
    return count / (time.perf_counter() - started)


def data_path_capacity(split: SplitArrays, device: torch.device, *, batch_size: int, batches: int,
                       repeats: int, augment: str = "bccd_light") -> tuple[float, float]:
    """Median images/s of the per-sample loader and of the device path, alternating."""
    samples = batch_size * batches
    loader = loader_batches(split, None, augment=augment, batch_size=batch_size, epoch_samples=samples, seed=0,
                            device=device, cpus=torch.get_num_threads())
    device_path = DeviceBatches(split, None, batch_size=batch_size, epoch_samples=samples, seed=0, device=device,
                                augment=augment)
    images_per_second(loader, device, 1)             # warm-up: first-call costs of both paths
    images_per_second(device_path, device, 2)
    per_sample, batched = [], []
    for _ in range(repeats):
        per_sample.append(images_per_second(loader, device, batches))
        batched.append(images_per_second(device_path, device, batches))
    return statistics.median(per_sample), statistics.median(batched)


# ---------------------------------------------------------------- GPU training throughput


class Counted:
    """An epoch's batches, counting the samples that went through."""

    def __init__(self, batches) -> None:
        self.batches, self.samples = batches, 0

    def __iter__(self):
        for batch in self.batches:
            self.samples += len(batch[0])
            yield batch


@contextlib.contextmanager
def timed_epochs(device: torch.device, timings: list):
    """Time every ``train_one_epoch`` of ``fit`` (synchronised at both ends), whatever its
    signature: (samples, seconds) per epoch into ``timings``."""
    from trainables import engine
    original = engine.train_one_epoch

    def timed(model, batches, *args, **kwargs):
        counted = Counted(batches)
        synchronize(device)
        started = time.perf_counter()
        result = original(model, counted, *args, **kwargs)
        synchronize(device)
        timings.append((counted.samples, time.perf_counter() - started))
        return result

    engine.train_one_epoch = timed
    try:
        yield
    finally:
        engine.train_one_epoch = original


def trainable_throughput(data: ClassificationData, device: torch.device, *, batch_size: int, steps: int,
                         epochs: int, augment: str) -> tuple[float, int]:
    """Training images/s of ``classification_trainable``'s loop after its first epoch, and its
    peak allocated memory; run outside Tune (its reports are dropped)."""
    from trainables.classification import classification_trainable
    from trainables.engine import Monitor

    config = {"model": "efficientnet_b0", "pretrained": False, "batch_size": batch_size,
              "epoch_samples": batch_size * steps, "max_epochs": epochs, "eval_batch_size": 64,
              "augment": augment, "early_stopping_patience": epochs + 1, "plateau_patience": epochs + 1}
    timings: list[tuple[int, float]] = []
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    previous = os.getcwd()
    with tempfile.TemporaryDirectory() as scratch, warnings.catch_warnings(), timed_epochs(device, timings):
        warnings.filterwarnings("ignore", message=".*is meant to only be called inside a function")
        os.chdir(scratch)   # fit stages its checkpoints in the working directory
        try:
            classification_trainable(config, data=data, monitor=Monitor("val_macro_f1", "max"))
        finally:
            os.chdir(previous)
    peak = torch.cuda.max_memory_allocated(device)
    measured = timings[1:] or timings
    return sum(s for s, _ in measured) / sum(t for _, t in measured), peak


def bare_throughput(split: SplitArrays, device: torch.device, *, batch_size: int, steps: int,
                    mean, std) -> tuple[float, int]:
    """Training images/s of a plain timm EfficientNet-B0 loop under ``torch.autocast`` (bf16
    where supported, else fp16 with a ``GradScaler``), channels_last, on the same uint8 images
    held on the device and normalised per batch; no augmentation. And its peak memory."""
    import timm
    from torch.nn import functional as F

    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    images = torch.from_numpy(split.images).to(device)
    labels = torch.from_numpy(split.labels).long().to(device)
    mean = torch.tensor(mean, device=device).view(1, 3, 1, 1) * 255
    std = torch.tensor(std, device=device).view(1, 3, 1, 1) * 255
    model = timm.create_model("efficientnet_b0", pretrained=False, num_classes=int(labels.max()) + 1)
    model = model.to(device).to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-4)
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    generator = torch.Generator(device=device).manual_seed(0)

    def step() -> None:
        rows = torch.randint(0, len(images), (batch_size,), device=device, generator=generator)
        x = (images.index_select(0, rows).permute(0, 3, 1, 2).float() - mean) / std
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=dtype):
            loss = F.cross_entropy(model(x), labels.index_select(0, rows))
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    torch.backends.cudnn.benchmark = True
    for _ in range(max(5, steps // 4)):       # warm-up: cuDNN's choice of kernels, the allocator
        step()
    synchronize(device)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    seconds = time.perf_counter() - started
    return batch_size * steps / seconds, torch.cuda.max_memory_allocated(device)


def gpu_report(split: SplitArrays, device: torch.device, args) -> None:
    val = split.take(np.arange(64))
    data = ClassificationData(name="synthetic-bccd", class_names=("RBC", "WBC", "Platelets"),
                              splits={"train": split, "val": val})
    print(f"\n{torch.cuda.get_device_name(device)}; training images/s, epochs after the first "
          f"({args.steps} steps each); peak = torch.cuda.max_memory_allocated")
    print(f"{'batch':>6}  {'loop':44}{'img/s':>10}{'peak GiB':>10}")
    for batch_size in args.batch_sizes:
        rows = []
        bare, bare_peak = bare_throughput(split, device, batch_size=batch_size, steps=args.steps,
                                          mean=data.mean, std=data.std)
        rows.append(("bare timm + torch.autocast, no augmentation", bare, bare_peak))
        for augment in ("none", "bccd_light"):
            speed, peak = trainable_throughput(data, device, batch_size=batch_size, steps=args.steps,
                                               epochs=args.epochs, augment=augment)
            rows.append((f"classification_trainable, augment={augment}", speed, peak))
        for label, speed, peak in rows:
            print(f"{batch_size:>6}  {label:44}{speed:10.0f}{peak / 2**30:10.2f}")
        print(f"{'':>6}  trainable (no augmentation) / bare: {rows[1][1] / rows[0][1]:.2f}")


def trial_epochs(storage: str, name: str) -> int | None:
    """Epochs run by all trials of a finished experiment, from its ``summary.csv``."""
    import pandas as pd

    summary = os.path.join(storage, name, "summary.csv")
    return int(pd.read_csv(summary)["epochs"].fillna(0).sum()) if os.path.exists(summary) else None


def run_sweeps(args) -> None:
    """Wall time and trial-epochs per hour of the full bccd_imbalance sweep at each
    ``--gpus-per-trial`` value."""
    storage = args.storage or tempfile.mkdtemp(prefix="gpu_throughput_")
    results = []
    for number, gpus in enumerate(args.gpus_per_trial):
        name = f"bench_gpus_{number}_{str(gpus).replace('.', '_')}"
        command = [sys.executable, "-m", "sweeps.run", "bccd_imbalance", "--profile", "full",
                   "--gpus-per-trial", str(gpus), "--storage", storage, "--name", name]
        print(f"\n$ {' '.join(command)}", flush=True)
        started = time.perf_counter()
        status = subprocess.run(command).returncode
        results.append((gpus, time.perf_counter() - started, trial_epochs(storage, name), status))
    print("\nfull bccd_imbalance sweep")
    for gpus, seconds, epochs, status in results:
        rate = "n/a" if not epochs else f"{epochs / (seconds / 3600):.0f} trial-epochs/h"
        print(f"--gpus-per-trial {gpus}: {seconds / 60:.1f} min wall time, {epochs} trial-epochs, {rate} "
              f"(exit status {status})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--quick", action="store_true", help="fewer repeats (under 3 minutes on 2 CPU cores)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: a CPU-profile trial's one CPU)")
    parser.add_argument("--batch-size", type=int, default=32, help="batch size of the data-path comparison")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128], help="GPU training batch sizes")
    parser.add_argument("--steps", type=int, default=40, help="GPU training steps per epoch")
    parser.add_argument("--epochs", type=int, default=3, help="GPU training epochs (the first is warm-up)")
    parser.add_argument("--sweep", action="store_true", help="time full bccd_imbalance sweeps instead")
    parser.add_argument("--gpus-per-trial", nargs="+", default=["1"], help="values for --sweep")
    parser.add_argument("--storage", help="--storage for --sweep's runs")
    args = parser.parse_args()
    if args.sweep:
        run_sweeps(args)
        return
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda, but PyTorch sees no CUDA device")
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    split = synthetic_split()
    print(f"{len(split)} generated {IMAGE_SIZE} px patches ({split.images.nbytes / 2**20:.0f} MiB) in "
          f"{time.perf_counter() - started:.1f} s; device {device}, {torch.get_num_threads()} torch thread(s), "
          f"PyTorch {torch.__version__}")
    batches, repeats = (8, 3) if args.quick else (16, 7)
    per_sample, batched = data_path_capacity(split, device, batch_size=args.batch_size, batches=batches,
                                             repeats=repeats)
    if device.type == "cuda":
        gpu_report(split, device, args)
    print(f"\naugment=bccd_light, batch {args.batch_size}, {batches} batches per measurement, "
          f"median of {repeats} alternating repeats")
    print(f"data path: per-sample {per_sample:.0f} img/s, batched {batched:.0f} img/s, "
          f"speedup {batched / per_sample:.1f}×")


if __name__ == "__main__":
    main()
