"""``--gpus-per-trial auto``: how many trials share one GPU.

A short calibration trains the heaviest configs of the grid for a few steps on a GPU, in a Ray
task of its own (the driver never holds a CUDA context), and measures one trial's peak GPU
memory; ``choose_gpus_per_trial`` then packs as many trials onto each GPU as fit with headroom,
as far as the node's CPUs can feed them.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sweeps.data import TRAINING_SPLITS, SweepData, on_variant
from sweeps.space import ResolvedSweep
from trainables.errors import MedsweepError
from trainables.registry import get_trainable

GIB = 1024 ** 3
# Ray counts resources in units of 1/10,000: a share rounded down to that fits n times.
RAY_RESOURCE_UNIT = 10_000
# Grid axes that change what a trial holds on the GPU besides its batch sizes: the network,
# whether its early layers train (pretrained detectors freeze them), the optimiser's moments.
MEMORY_AXES = ("model", "backbone", "base_channels", "pretrained", "optimizer")
CALIBRATION_STEPS = 3


class PackingError(MedsweepError, ValueError):
    """``--gpus-per-trial auto`` cannot place a trial: it needs more memory than a GPU has."""


@dataclass(frozen=True)
class PackingChoice:
    """The GPU share each trial asks Ray for, how many trials that puts on a GPU, and why."""

    gpus_per_trial: float
    trials_per_gpu: int
    reason: str


@dataclass(frozen=True)
class GpuMeasurement:
    """One trial's peak GPU memory (the heaviest calibrated config) and the GPU's size."""

    peak_bytes: int
    gpu_bytes: int


def choose_gpus_per_trial(*, peak_bytes: int, gpu_bytes: int, node_cpus: float, cpus_per_trial: float,
                          gpus_per_node: int = 1, headroom: float = 0.2) -> PackingChoice:
    """As many trials per GPU as fit in ``(1 - headroom)`` of its memory at ``peak_bytes`` each,
    no more than the node's CPUs feed at ``cpus_per_trial`` each (shared among its
    ``gpus_per_node`` GPUs), and at least one. A trial larger than the whole GPU is an error; one
    that fits only without the headroom gets a GPU to itself."""
    if peak_bytes <= 0 or gpu_bytes <= 0 or cpus_per_trial <= 0 or gpus_per_node < 1 or not 0 <= headroom < 1:
        raise ValueError(f"need positive sizes, CPUs and GPUs and 0 <= headroom < 1, got peak {peak_bytes}, "
                         f"GPU {gpu_bytes}, {cpus_per_trial} CPUs per trial, {gpus_per_node} GPUs, "
                         f"headroom {headroom}")
    measured = f"auto: one trial peaks at {peak_bytes / GIB:.1f} GiB of {gpu_bytes / GIB:.0f} GiB"
    if peak_bytes > gpu_bytes:
        raise PackingError(f"{measured}, more than the whole GPU; lower batch_size or eval_batch_size (--set), "
                           f"use a GPU with more memory, or give --gpus-per-trial explicitly")
    by_memory = math.floor(gpu_bytes * (1 - headroom) / peak_bytes)
    by_cpus = math.floor(node_cpus / cpus_per_trial / gpus_per_node)
    trials = max(1, min(by_memory, by_cpus))
    gpus_per_trial = 1.0 if trials == 1 else math.floor(RAY_RESOURCE_UNIT / trials) / RAY_RESOURCE_UNIT
    memory = (f"{by_memory} fit with {headroom:.0%} headroom" if by_memory else
              f"it fits only without the {headroom:.0%} headroom")
    cpus = f"{node_cpus:g} CPUs allow {math.floor(node_cpus / cpus_per_trial)} at {cpus_per_trial:g} CPUs each"
    if gpus_per_node > 1:
        cpus += f", {by_cpus} per GPU of {gpus_per_node}"
    return PackingChoice(gpus_per_trial=gpus_per_trial, trials_per_gpu=trials,
                         reason=f"{measured}; {memory}, {cpus} → {gpus_per_trial:g} GPU per trial")


def no_gpu_choice() -> PackingChoice:
    return PackingChoice(gpus_per_trial=0.0, trials_per_gpu=0,
                         reason="auto: no node has a GPU, so 0 GPUs per trial (trials train on CPUs)")


def calibration_configs(resolved: ResolvedSweep) -> list[dict[str, Any]]:
    """The grid's heaviest configs: one per combination of the ``MEMORY_AXES`` values it
    sweeps, each with the grid's largest ``batch_size`` and ``eval_batch_size``."""
    configs = list(resolved.configs())
    largest = {key: max(config[key] for config in configs) for key in ("batch_size", "eval_batch_size")
               if key in configs[0]}
    heaviest: dict[tuple, dict[str, Any]] = {}
    for config in configs:
        shape = tuple(config.get(key) for key in MEMORY_AXES)
        heaviest.setdefault(shape, {**config, **largest})
    return list(heaviest.values())


def shortened(config: dict[str, Any], config_class: type, *, steps: int = CALIBRATION_STEPS) -> dict[str, Any]:
    """``config`` cut to one epoch of ``steps`` training batches and about two validation
    batches, whichever of those budgets its trainable's config has."""
    full = with_defaults(config, config_class)
    budget = {"max_epochs": 1, "epoch_samples": full.get("batch_size", 1) * steps, "steps_per_epoch": steps,
              "validation_steps": 2 * full.get("eval_batch_size", 1)}
    return {**config, **{key: value for key, value in budget.items() if key in full}}


def with_defaults(config: dict[str, Any], config_class: type) -> dict[str, Any]:
    """``config`` with the config class's defaults for the keys the sweep leaves unset."""
    defaults = {field.name: field.default for field in dataclasses.fields(config_class)
                if field.default is not dataclasses.MISSING}
    return {**defaults, **config}


def small_validation(data: SweepData, images: int) -> SweepData:
    """The training splits, with the validation split cut to its first ``images``: enough
    for the largest evaluation batch, so calibration's evaluation is quick."""
    data = data.only(*TRAINING_SPLITS)
    variants = {key: dataclasses.replace(variant, splits={**variant.splits,
                                                           "val": variant.splits["val"].take(slice(0, images))})
                for key, variant in data.variants.items()}
    return dataclasses.replace(data, variants=variants)


def measure_peak_memory(*, trainable: str, configs: Sequence[dict[str, Any]], data: SweepData,
                        monitor) -> GpuMeasurement:
    """Run each config's trainable (already ``shortened``) on this process's GPU, outside Tune
    (its reports are dropped), and return the largest peak: the memory PyTorch's allocator held
    at its highest plus what the process holds beside it (CUDA context, kernels), read from
    the device. Runs in the calibration task, never in the driver."""
    import torch

    function = on_variant(get_trainable(trainable).function)
    peak, total = 0, 0
    for config in configs:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        with tempfile.TemporaryDirectory() as scratch, warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*is meant to only be called inside a function")
            previous = os.getcwd()
            os.chdir(scratch)  # fit stages its checkpoint in the working directory
            try:
                function(config, data=data, monitor=monitor)
            finally:
                os.chdir(previous)
        free, total = torch.cuda.mem_get_info()
        beside_allocator = (total - free) - torch.cuda.memory_reserved()
        peak = max(peak, beside_allocator + torch.cuda.max_memory_reserved())
    return GpuMeasurement(peak_bytes=int(peak), gpu_bytes=int(total))


def calibrate_peak_memory(resolved: ResolvedSweep, data: SweepData, *,
                          steps: int = CALIBRATION_STEPS) -> GpuMeasurement:
    """One trial's peak GPU memory: ``steps`` training steps and a short validation of each of
    the grid's heaviest configs (``calibration_configs``), in a Ray task holding one whole GPU
    and the trial's CPUs. The task's worker exits afterwards, so its CUDA context and cached
    memory are gone before the sweep's trials start. Needs Ray started and a GPU node; fetch
    pretrained weights first (``preflight_pretrained``), as trials do."""
    import ray

    from trainables.engine import Monitor

    config_class = get_trainable(resolved.spec.trainable).config_class
    configs = [shortened(config, config_class, steps=steps) for config in calibration_configs(resolved)]
    largest_eval = max(int(with_defaults(config, config_class).get("eval_batch_size", 1)) for config in configs)
    task = ray.remote(num_gpus=1, num_cpus=resolved.resources.cpus, max_calls=1)(measure_peak_memory)
    return ray.get(task.remote(trainable=resolved.spec.trainable, configs=configs,
                               data=small_validation(data, 2 * largest_eval),
                               monitor=Monitor(resolved.spec.metric, resolved.spec.mode)))


def auto_gpus_per_trial(resolved: ResolvedSweep, data: SweepData, *, nodes: Sequence[Any],
                        headroom: float = 0.2) -> PackingChoice:
    """``--gpus-per-trial auto``: 0 when no node of ``nodes`` (``ray_session.node_capacities()``)
    has a GPU; otherwise calibrated, then chosen for the GPU node with the fewest CPUs per GPU."""
    gpu_nodes = [node for node in nodes if node.gpus >= 1]
    if not gpu_nodes:
        return no_gpu_choice()
    measurement = calibrate_peak_memory(resolved, data)
    tightest = min(gpu_nodes, key=lambda node: node.cpus / node.gpus)
    return choose_gpus_per_trial(peak_bytes=measurement.peak_bytes, gpu_bytes=measurement.gpu_bytes,
                                 node_cpus=tightest.cpus, cpus_per_trial=resolved.resources.cpus,
                                 gpus_per_node=int(tightest.gpus), headroom=headroom)
