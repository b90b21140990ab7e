"""A trial's training batches: drawn on the device from the train split held there, or (the
fallback) from the per-sample loader.

The device path copies the decoded uint8 train split (images, and labels or masks) to the
trial's device once, then draws each batch by index there and augments it as a whole with the
kornia twin of the trial's pipeline (``trainables.augment``). The samples and their order are
the loader path's: the same positions from a ``RandomSampler`` over the (oversampled or
balanced) training indices, seeded with the trial's seed, ``epoch_samples`` per epoch. The
augmentation draws its random parameters from a stream of its own, seeded from the trial's
seed, so the same seed gives the same batches and the model's own random draws (dropout,
initialisation) do not shift them.

The loader path is ``ArrayDataset`` + ``DataLoader`` with the albumentations pipeline, one
sample at a time on the CPU, with worker processes from the trial's CPUs and pinned memory on a
GPU.

Which one a trial uses is its ``data_path`` setting: ``loader``; ``device``; or ``auto`` (the
default): on a GPU the device path unless the pipeline has no kornia twin or the train split
takes more than ``DEVICE_MEMORY_FRACTION`` of the GPU's memory; on the CPU the loader, because
there albumentations (OpenCV, one image at a time) is several times faster than kornia's batched
tensor ops (``benchmarks/gpu_throughput.py --device cpu`` measures both).

A sweep decides ``auto`` once, in the driver, before any trial starts (``resolve_data_path``, on
the GPU memory free then), and hands every trial the concrete path: deciding per trial on the
memory free when it starts sent packed trials that started later down the other path, with
another augmentation stream. A trial handed ``auto`` anyway (a trainable called outside a sweep)
decides on the GPU's total memory, never on what other trials hold at that moment, so the same
config on the same machine always takes the same path.

Both paths save and restore their random streams (``state_dict``, ``load_state_dict``): a
checkpoint carries them, so a resumed trial draws the batches an uninterrupted one would have.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from albumentations.core.composition import BaseCompose
from torch.utils.data import DataLoader, RandomSampler

from trainables.arrays import ArrayDataset, shared_tensor
from trainables.augment import build_augmentation, build_device_augmentation, get_augmentation
from trainables.datasets.base import SplitArrays

DATA_PATHS = ("auto", "device", "loader")
# The share of a GPU's memory (free when the sweep starts; total for a trial deciding alone) the
# train split may take on the device path under ``data_path=auto``; a larger split trains through
# the loader. The model, its activations and the batches need the rest; packed trials are sized
# by their measured peak memory, which includes the split they hold.
DEVICE_MEMORY_FRACTION = 0.25
# The augmentation stream's seed is the trial's seed mixed with this, so it is not the sampler's.
AUGMENT_STREAM = 0x5EED_A06

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataPathChoice:
    """The path a trial trains through (``device`` or ``loader``) and why."""

    path: str
    reason: str


def split_bytes(split: SplitArrays) -> int:
    """What the device path holds on the device: the images, and the labels as int64 or the
    masks as stored."""
    labels = split.labels.nbytes if split.labels.ndim == 3 else len(split.labels) * 8
    return int(split.images.nbytes + labels)


def choose_data_path(setting: str, *, split: SplitArrays, device: torch.device, augment: str,
                     free_bytes: int | None = None,
                     memory_fraction: float = DEVICE_MEMORY_FRACTION) -> DataPathChoice:
    """Where ``setting`` (one of ``DATA_PATHS``) sends a trial's training batches. A sweep's
    trials get ``device`` or ``loader`` (``resolve_data_path``); ``auto`` here is a trial's own
    decision, made on the GPU's total memory (``free_bytes`` stands in for it in tests), never on
    what is free at that moment. ``device`` with a pipeline that has no kornia twin is an error."""
    require_data_path(setting)
    if setting == "loader":
        return DataPathChoice("loader", "data_path=loader")
    if get_augmentation(augment).device is None:
        if setting == "device":
            raise ValueError(f"data_path=device, but augmentation {augment!r} has no device version; "
                             f"use data_path=loader or auto")
        return DataPathChoice("loader", f"augmentation {augment!r} has no device version")
    if setting == "device":
        return DataPathChoice("device", "data_path=device")
    if device.type == "cpu":
        return DataPathChoice("loader", "on the CPU albumentations per sample outruns kornia's batched ops")
    memory = total_device_bytes(device) if free_bytes is None else free_bytes
    return device_path_budget(split_bytes(split), memory, memory_fraction, "total")


def resolve_data_path(setting: str, *, augments: Iterable[str], needed_bytes: int, trials_use_gpu: bool,
                      free_bytes: int | None = None,
                      memory_fraction: float = DEVICE_MEMORY_FRACTION) -> DataPathChoice:
    """The one path every trial of a sweep trains through, decided by the driver once, before
    any trial starts, for a sweep whose trials get ``setting`` (``device`` and ``loader`` stay as
    they are). ``auto`` is the loader when trials get no GPU or an augmentation the sweep can
    take (``augments``) has no device version, else the device path when the largest train
    split (``needed_bytes``, as ``split_bytes`` counts) fits ``memory_fraction`` of the GPU
    memory free now (``free_bytes``; by default read with nvidia-smi, the least of this
    machine's GPUs). A driver that sees no GPU (a cluster's CPU head node) cannot tell, and
    chooses the loader; ``--set data_path=device`` forces the device path there."""
    require_data_path(setting)
    if setting != "auto":
        return DataPathChoice(setting, f"data_path={setting}")
    if not trials_use_gpu:
        return DataPathChoice("loader", "trials get no GPU, and on the CPU albumentations per sample outruns "
                                        "kornia's batched ops")
    without = sorted({name for name in augments if get_augmentation(name).device is None})
    if without:
        return DataPathChoice("loader", f"augmentation {', '.join(without)} has no device version")
    free = driver_free_gpu_bytes() if free_bytes is None else free_bytes
    return device_path_budget(needed_bytes, free, memory_fraction, "free")


def require_data_path(setting: str) -> None:
    """``setting`` must be one of ``DATA_PATHS``."""
    if setting not in DATA_PATHS:
        raise ValueError(f"data_path must be one of {', '.join(DATA_PATHS)}, got {setting!r}")


def device_path_budget(needed: int, memory: int | None, memory_fraction: float,
                       memory_kind: str) -> DataPathChoice:
    """``auto``'s verdict on a GPU for a split of ``needed`` bytes against ``memory`` bytes of
    its ``memory_kind`` ("free", "total") memory; unknown memory (None) means the loader, which
    needs none."""
    if memory is None or needed > memory_fraction * memory:
        held = "unknown" if memory is None else f"{memory / 2**30:.2f} GiB"
        return DataPathChoice("loader", f"the train split ({needed / 2**30:.2f} GiB) exceeds {memory_fraction:.0%} "
                                        f"of the GPU's {memory_kind} memory ({held})")
    return DataPathChoice("device", f"the train split ({needed / 2**30:.2f} GiB) fits {memory_fraction:.0%} of "
                                    f"the GPU's {memory_kind} memory ({memory / 2**30:.2f} GiB)")


def total_device_bytes(device: torch.device) -> int | None:
    """A CUDA device's total memory (None elsewhere): fixed for the machine, so a trial that
    decides ``auto`` itself always decides it the same way."""
    if device.type != "cuda":
        return None
    return int(torch.cuda.get_device_properties(device).total_memory)


def driver_free_gpu_bytes() -> int | None:
    """The least free memory of this machine's GPUs now, read with nvidia-smi so the driver
    opens no CUDA context; None without nvidia-smi or a GPU (a cluster's driver node)."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        listed = subprocess.run(["nvidia-smi", "--query-gpu=memory.free", "--format=csv,noheader,nounits"],
                                capture_output=True, text=True, check=True, timeout=20).stdout
        free_mib = [int(line) for line in listed.split()]
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    return min(free_mib) * 2**20 if free_mib else None


def augment_generator(seed: int) -> torch.Generator:
    """The CPU generator a trial's batched augmentation draws its per-batch seeds from."""
    return torch.Generator().manual_seed((int(seed) * 1_000_003 + AUGMENT_STREAM) % 2**63)


class BatchAugmenter:
    """A kornia pipeline over uint8 N x H x W x C batches (and uint8 N x H x W masks, which
    follow the geometric steps), returning float images on the 0-255 scale that ``Normalize``
    takes. kornia draws its parameters from torch's global CPU generator; each batch forks it,
    seeded from this augmenter's own stream, so the draws repeat for a seed and leave the
    trial's other random state alone."""

    def __init__(self, pipeline, *, seed: int) -> None:
        self.pipeline = pipeline
        self.generator = augment_generator(seed)

    def __call__(self, images: torch.Tensor,
                 masks: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        draw = int(torch.randint(0, 2**62, (1,), generator=self.generator))
        with torch.no_grad(), torch.autocast(images.device.type, enabled=False), \
                torch.random.fork_rng(devices=[]):
            torch.random.default_generator.manual_seed(draw)
            batch = images.permute(0, 3, 1, 2).float().div_(255)
            if masks is None:
                batch = self.pipeline(batch)
            else:
                batch, moved = self.pipeline(batch, masks[:, None].float(), data_keys=["input", "mask"])
                masks = moved[:, 0].round_().to(masks.dtype)
        return batch.mul_(255).permute(0, 2, 3, 1), masks


def epoch_positions(length: int, epoch_samples: int | None, generator: torch.Generator) -> torch.Tensor:
    """One epoch's positions in the training indices, exactly as ``DataLoader`` draws them
    through ``RandomSampler(num_samples=epoch_samples, generator=generator)``."""
    sampler = RandomSampler(range(length), num_samples=epoch_samples, generator=generator)
    return torch.tensor(list(sampler), dtype=torch.int64)


class DeviceBatches:
    """A trial's training split on its device; calling it yields one epoch of (images, int64
    labels or uint8 N x H x W masks) batches on the device: uint8 N x H x W x C images without
    augmentation, float 0-255 ones through ``BatchAugmenter``."""

    def __init__(self, split: SplitArrays, indices: np.ndarray | None, *, batch_size: int,
                 epoch_samples: int | None, seed: int, device: torch.device, augment: str) -> None:
        self.device = torch.device(device)
        self.masks = split.labels.ndim == 3
        self.images = shared_tensor(split.images).to(self.device)
        targets = shared_tensor(split.labels)
        self.targets = targets.to(self.device, dtype=targets.dtype if self.masks else torch.int64)
        self.indices = torch.as_tensor(np.arange(len(split)) if indices is None else np.asarray(indices),
                                       dtype=torch.int64)
        self.batch_size = int(batch_size)
        self.epoch_samples = epoch_samples
        self.order = torch.Generator().manual_seed(int(seed))      # as the loader's RandomSampler
        pipeline = build_device_augmentation(augment)
        self.augment = None if pipeline is None else BatchAugmenter(pipeline, seed=seed)

    def state_dict(self) -> dict:
        """Where the order's and the augmentation's streams stand (after an epoch: the next
        epoch's draws), for a checkpoint."""
        return {"order": self.order.get_state(),
                "augment": None if self.augment is None else self.augment.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        """Continue the streams from ``state_dict``'s point."""
        self.order.set_state(state["order"])
        if self.augment is not None and state["augment"] is not None:
            self.augment.generator.set_state(state["augment"])

    def __len__(self) -> int:
        """Batches per epoch."""
        samples = len(self.indices) if self.epoch_samples is None else self.epoch_samples
        return -(-samples // self.batch_size)

    def epoch_rows(self) -> torch.Tensor:
        """The split's rows of the next epoch, in order (CPU)."""
        return self.indices[epoch_positions(len(self.indices), self.epoch_samples, self.order)]

    def __call__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self._batches(self.epoch_rows().to(self.device, non_blocking=True))

    def _batches(self, rows: torch.Tensor) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for start in range(0, len(rows), self.batch_size):
            chosen = rows[start:start + self.batch_size]
            images = self.images.index_select(0, chosen)
            targets = self.targets.index_select(0, chosen)
            if self.augment is not None:
                images, moved = self.augment(images, targets if self.masks else None)
                targets = moved if self.masks else targets
            yield images, targets


def loader_workers(cpus: int, device: torch.device) -> int:
    """Worker processes for the per-sample loader: on a GPU every CPU the trial holds but the
    one that drives the GPU; on the CPU none (the model needs the CPUs itself)."""
    return max(0, cpus - 1) if device.type == "cuda" else 0


def pipeline_parts(pipeline) -> list:
    """An albumentations pipeline and every transform in it, depth first: each holds random
    generators of its own (seeded alike from the pipeline's seed)."""
    if not isinstance(pipeline, BaseCompose):
        return [pipeline]
    return [pipeline, *(part for transform in pipeline.transforms for part in pipeline_parts(transform))]


def pipeline_state(pipeline) -> list[dict]:
    """Where every generator of an albumentations pipeline stands, as plain data."""
    return [{"numpy": part.random_generator.bit_generator.state, "python": part.py_random.getstate()}
            for part in pipeline_parts(pipeline)]


def load_pipeline_state(pipeline, state: list[dict]) -> None:
    """Continue every generator of ``pipeline`` from ``pipeline_state``'s point."""
    for part, saved in zip(pipeline_parts(pipeline), state, strict=True):
        part.random_generator.bit_generator.state = saved["numpy"]
        part.py_random.setstate(saved["python"])


class LoaderBatches:
    """The per-sample path's ``DataLoader``; calling it yields one epoch. Its streams are the
    sampler's order and, without workers (the CPU), the pipeline's draws, both of which
    ``state_dict`` saves. Workers (on a GPU) each hold a reseeded copy of the pipeline that the
    trial's process cannot read, so a resumed trial's workers start their draws afresh."""

    def __init__(self, loader: DataLoader, order: torch.Generator) -> None:
        self.loader = loader
        self.order = order

    def __call__(self) -> DataLoader:
        return self.loader

    @property
    def _pipeline(self):
        """The pipeline whose draws this process makes (None with workers or without one)."""
        return None if self.loader.num_workers else self.loader.dataset.augment

    def state_dict(self) -> dict:
        """Where the order's and the pipeline's streams stand, for a checkpoint."""
        return {"order": self.order.get_state(),
                "augment": None if self._pipeline is None else pipeline_state(self._pipeline)}

    def load_state_dict(self, state: dict) -> None:
        """Continue the streams from ``state_dict``'s point."""
        self.order.set_state(state["order"])
        if self._pipeline is not None and state["augment"] is not None:
            load_pipeline_state(self._pipeline, state["augment"])


def loader_batches(split: SplitArrays, indices: np.ndarray | None, *, augment: str, batch_size: int,
                   epoch_samples: int | None, seed: int, device: torch.device,
                   cpus: int = 1) -> LoaderBatches:
    """The per-sample path: ``ArrayDataset`` with the albumentations pipeline, drawn by a
    seeded ``RandomSampler``; each worker reseeds its copy of the pipeline (seed + worker id),
    so workers do not repeat each other's draws. Batches stay on the CPU, pinned on a GPU
    (the trainable copies them without blocking)."""
    dataset = ArrayDataset(split, indices, build_augmentation(augment, seed=seed))
    order = torch.Generator().manual_seed(seed)
    sampler = RandomSampler(dataset, num_samples=epoch_samples, generator=order)
    workers = loader_workers(cpus, torch.device(device))

    def reseed(worker: int) -> None:
        if dataset.augment is not None:
            dataset.augment.set_random_seed(seed + worker + 1)

    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                        worker_init_fn=reseed if workers else None, persistent_workers=workers > 0,
                        pin_memory=torch.device(device).type == "cuda")
    return LoaderBatches(loader, order)


@dataclass(frozen=True)
class TrainingBatches:
    """Calling it yields one epoch of batches; ``choice`` says which path and why. Its random
    streams are the path's (``state_dict``, ``load_state_dict``)."""

    batches: DeviceBatches | LoaderBatches
    choice: DataPathChoice

    def __call__(self) -> Iterable:
        return self.batches()

    def state_dict(self) -> dict:
        return self.batches.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.batches.load_state_dict(state)

    @property
    def path(self) -> str:
        return self.choice.path


def training_batches(split: SplitArrays, indices: np.ndarray | None, *, augment: str, batch_size: int,
                     epoch_samples: int | None, seed: int, device: torch.device, data_path: str = "auto",
                     cpus: int = 1) -> TrainingBatches:
    """A trial's training batches through the path ``data_path`` chooses (``choose_data_path``)."""
    choice = choose_data_path(data_path, split=split, device=torch.device(device), augment=augment)
    log.info("training data: %s path (%s)", choice.path, choice.reason)
    if choice.path == "device":
        batches = DeviceBatches(split, indices, batch_size=batch_size, epoch_samples=epoch_samples, seed=seed,
                                device=device, augment=augment)
    else:
        batches = loader_batches(split, indices, augment=augment, batch_size=batch_size,
                                 epoch_samples=epoch_samples, seed=seed, device=device, cpus=cpus)
    return TrainingBatches(batches, choice)
