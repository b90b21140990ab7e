"""Short calibrations of a sweep's trainable: ``--gpus-per-trial auto`` (how many trials share
one GPU) and the time of a training step (for ``--plan``'s forecast).

A calibration trains the heaviest configs any trial can get for a few steps (the grid's, or
under a sampler its ranges' top ends: ``calibration_configs``), in a Ray task of its own holding
a trial's resources (the driver never holds a CUDA context). For packing it measures one trial's
peak GPU memory; ``choose_gpus_per_trial`` then packs as many trials onto each GPU as fit with
headroom, on the smallest GPU of the nodes that can run trials, as far as the node's CPUs can
feed them. For timing it measures how long a worker takes to start, a trial to set up, and a
training step to run.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tempfile
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sweeps.data import TRAINING_SPLITS, SweepData, on_variant
from sweeps.ray_session import accelerator_of
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
# Timing runs this many steps and twice as many: their difference is the steps' own time.
TIMING_STEPS = 4


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
                          gpus_per_node: int = 1, headroom: float = 0.2, gpu_note: str = "") -> PackingChoice:
    """As many trials per GPU as fit in ``(1 - headroom)`` of its memory at ``peak_bytes`` each,
    no more than the node's CPUs feed at ``cpus_per_trial`` each (shared among its
    ``gpus_per_node`` GPUs), and at least one. A trial larger than the whole GPU is an error; one
    that fits only without the headroom gets a GPU to itself. ``gpu_note`` follows the GPU's
    size in the reason (which GPU it is)."""
    if peak_bytes <= 0 or gpu_bytes <= 0 or cpus_per_trial <= 0 or gpus_per_node < 1 or not 0 <= headroom < 1:
        raise ValueError(f"need positive sizes, CPUs and GPUs and 0 <= headroom < 1, got peak {peak_bytes}, "
                         f"GPU {gpu_bytes}, {cpus_per_trial} CPUs per trial, {gpus_per_node} GPUs, "
                         f"headroom {headroom}")
    measured = f"auto: one trial peaks at {peak_bytes / GIB:.1f} GiB of {gpu_bytes / GIB:.0f} GiB{gpu_note}"
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
    """The heaviest configs any trial can get: one per combination of the ``MEMORY_AXES``
    values it searches, each with the largest ``batch_size`` and ``eval_batch_size`` of the
    ``possible_configs`` (the grid's values, or under a sampler up to its ranges' top ends, so
    a trial drawn there does not outgrow the share sized here)."""
    configs = list(resolved.possible_configs())
    largest = {key: max(config[key] for config in configs) for key in ("batch_size", "eval_batch_size")
               if key in configs[0]}
    heaviest: dict[tuple, dict[str, Any]] = {}
    for config in configs:
        heaviest.setdefault(memory_shape(config), {**config, **largest})
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
        run_outside_tune(function, config, data=data, monitor=monitor)
        free, total = torch.cuda.mem_get_info()
        beside_allocator = (total - free) - torch.cuda.memory_reserved()
        peak = max(peak, beside_allocator + torch.cuda.max_memory_reserved())
    return GpuMeasurement(peak_bytes=int(peak), gpu_bytes=int(total))


def run_outside_tune(function, config: dict[str, Any], *, data: SweepData, monitor) -> float:
    """Run a trainable ``function`` on ``config`` outside Tune (its reports are dropped) in a
    scratch working directory; the seconds it took."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is meant to only be called inside a function")
        previous = os.getcwd()
        os.chdir(scratch)  # fit stages its checkpoint in the working directory
        try:
            function(config, data=data, monitor=monitor)
        finally:
            os.chdir(previous)
    return time.perf_counter() - started


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
    has a GPU; otherwise calibrated, then chosen for the smallest GPU among the nodes that can
    run a trial (``smallest_gpu``) and the GPU node with the fewest CPUs per GPU."""
    gpu_nodes = [node for node in nodes if node.gpus >= 1]
    if not gpu_nodes:
        return no_gpu_choice()
    measurement = calibrate_peak_memory(resolved, data)
    gpu_bytes, gpu_note = smallest_gpu(measurement, cpus=resolved.resources.cpus)
    tightest = min(gpu_nodes, key=lambda node: node.cpus / node.gpus)
    return choose_gpus_per_trial(peak_bytes=measurement.peak_bytes, gpu_bytes=gpu_bytes,
                                 node_cpus=tightest.cpus, cpus_per_trial=resolved.resources.cpus,
                                 gpus_per_node=int(tightest.gpus), headroom=headroom, gpu_note=gpu_note)


def smallest_gpu(measurement: GpuMeasurement, *, cpus: float) -> tuple[int, str]:
    """The GPU memory to pack for, and words saying which GPU that is. Trials land on any node
    that holds them, and a cluster can mix GPU types, so with several nodes able to run a trial
    (``trial_gpu_nodes`` of ``ray.nodes()``) each one's GPUs are read (``node_gpu_memory``) and
    the smallest counts; with one, it is the GPU the calibration measured."""
    import ray

    nodes = trial_gpu_nodes(ray.nodes(), cpus=cpus)
    if len(nodes) < 2:
        return measurement.gpu_bytes, ""
    memory = node_gpu_memory(nodes)
    node = min(nodes, key=lambda node: memory[node["NodeID"]])
    smallest = memory[node["NodeID"]]
    if smallest >= measurement.gpu_bytes:
        return measurement.gpu_bytes, ""
    kind = accelerator_of(node["Resources"]) or "GPU"
    return smallest, (f" (the smallest GPU of the {len(nodes)} nodes that can run a trial: a {kind} on node "
                      f"{node['NodeID'][:8]}; calibrated on a GPU of {measurement.gpu_bytes / GIB:.0f} GiB)")


def trial_gpu_nodes(ray_nodes: Sequence[Mapping[str, Any]], *, cpus: float) -> list[Mapping[str, Any]]:
    """The alive nodes of ``ray_nodes`` (``ray.nodes()``'s entries) that can run a trial on a
    GPU: at least one whole GPU and the trial's ``cpus``."""
    return [node for node in ray_nodes if node.get("Alive") and node["Resources"].get("GPU", 0) >= 1
            and node["Resources"].get("CPU", 0) >= cpus]


def node_gpu_memory(nodes: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Each node's smallest GPU memory in bytes, by node id, read by a Ray task pinned to the
    node (``NodeAffinitySchedulingStrategy``) holding its whole GPUs, so it sees every one."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    task = ray.remote(num_cpus=0, max_calls=1)(smallest_visible_gpu_bytes)
    pending = {node["NodeID"]: task.options(
        num_gpus=math.floor(node["Resources"]["GPU"]),
        scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)).remote() for node in nodes}
    return dict(zip(pending, ray.get(list(pending.values()))))


def smallest_visible_gpu_bytes() -> int:
    """The memory of the smallest GPU this process sees. Runs in a Ray task, never in the driver."""
    import torch

    if not torch.cuda.device_count():
        raise PackingError("--gpus-per-trial auto: Ray gave this task GPUs, but PyTorch on its node sees none "
                           "(torch.cuda.device_count() is 0); check that node's CUDA driver and PyTorch build, or "
                           "give --gpus-per-trial explicitly")
    return min(torch.cuda.get_device_properties(index).total_memory for index in range(torch.cuda.device_count()))


@dataclass(frozen=True)
class StepTiming:
    """What one calibrated config costs a trial on a trial's resources.

    ``startup_seconds``: from asking Ray for the task to its first line (a worker process
    starting, importing, fetching the data). ``setup_seconds``: the first, cold run's time beyond
    its training steps (building the model and loaders, a short validation). ``step_seconds``:
    one warm training step of ``batch_size`` samples.
    """

    startup_seconds: float
    setup_seconds: float
    step_seconds: float
    batch_size: int

    @property
    def sample_seconds(self) -> float:
        return self.step_seconds / self.batch_size


def measure_step_time(*, trainable: str, configs: Sequence[tuple[dict[str, Any], dict[str, Any]]],
                      data: SweepData, monitor, submitted: float) -> list[StepTiming]:
    """For each pair of the same config ``shortened`` to ``TIMING_STEPS`` and twice as many
    steps: a cold run of the shorter (setup), a warm one, and the longer; the step time is the
    difference of the warm runs per extra step. ``submitted`` is the driver's ``time.time()``
    when it asked for this task. Runs in the calibration task, never in the driver."""
    startup = max(0.0, time.time() - submitted)
    entry = get_trainable(trainable)
    function = on_variant(entry.function)
    timings = []
    for short, long in configs:
        cold = run_outside_tune(function, short, data=data, monitor=monitor)
        warm = run_outside_tune(function, short, data=data, monitor=monitor)
        longer = run_outside_tune(function, long, data=data, monitor=monitor)
        step = max(0.0, (longer - warm) / TIMING_STEPS)
        timings.append(StepTiming(startup_seconds=startup, setup_seconds=max(0.0, cold - TIMING_STEPS * step),
                                  step_seconds=step,
                                  batch_size=int(with_defaults(short, entry.config_class).get("batch_size", 1))))
        startup = 0.0  # the worker started once, for the first config
    return timings


def calibrate_step_time(resolved: ResolvedSweep, data: SweepData) -> dict[tuple, StepTiming]:
    """``StepTiming`` of each of the grid's heaviest configs (``calibration_configs``), keyed by
    its values of ``MEMORY_AXES`` (``memory_shape``), measured in one Ray task holding a trial's
    CPUs and GPUs, so its threads and device are a trial's. Needs Ray started; fetch pretrained
    weights first (``preflight_pretrained``)."""
    import ray

    from trainables.engine import Monitor

    config_class = get_trainable(resolved.spec.trainable).config_class
    heaviest = calibration_configs(resolved)
    pairs = [(shortened(config, config_class, steps=TIMING_STEPS),
              shortened(config, config_class, steps=2 * TIMING_STEPS)) for config in heaviest]
    largest_eval = max(int(with_defaults(config, config_class).get("eval_batch_size", 1)) for config in heaviest)
    task = ray.remote(num_gpus=resolved.resources.gpus, num_cpus=resolved.resources.cpus,
                      max_calls=1)(measure_step_time)
    timings = ray.get(task.remote(trainable=resolved.spec.trainable, configs=pairs,
                                  data=small_validation(data, 2 * largest_eval),
                                  monitor=Monitor(resolved.spec.metric, resolved.spec.mode), submitted=time.time()))
    return {memory_shape(config): timing for config, timing in zip(heaviest, timings)}


def memory_shape(config: dict[str, Any]) -> tuple:
    """A config's values of ``MEMORY_AXES``: which calibrated config stands for it."""
    return tuple(config.get(key) for key in MEMORY_AXES)
