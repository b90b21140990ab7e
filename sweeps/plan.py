"""``--plan``: what a sweep will cost before it runs (trials, trial-epochs, trials at once, wall
time), and after it ran, the forecast against what happened.

The ASHA figure assumes what ASHA aims at: of the trials that reach a rung, 1/reduction_factor
continue. Early stopping and a small or lopsided grid move the real count (ASHA promotes the
first trials to reach a rung, with nothing yet to compare them with), so it is an estimate;
the grid's figure (every trial to its last epoch) is the upper bound.

Each trial stops at its own ``max_epochs`` at the latest: both figures average over the sweep's
``possible_configs`` (``epoch_caps``), while ASHA's rungs go up to the largest. Under
``--search grid`` that average is exact; under a sampler it is a uniform draw's expectation, so
the grid's figure is then an expected value rather than a bound (the bound: every trial to the
largest ``max_epochs``).

The wall time assumes trials sharing a GPU take turns on it: the step time is measured with one
trial alone on its GPU, and a trial that keeps a GPU busy leaves nothing of it to a second one,
so k trials packed on a GPU train no faster together than one (see ``Forecast.lanes``). Trials
on CPUs, or on GPUs of their own, run side by side.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sweeps.packing import RAY_RESOURCE_UNIT  # Ray counts resources in units of 1/10,000

# An evaluated sample costs about a third of a trained one (a forward pass, no backward).
EVAL_SAMPLE_COST = 1 / 3


def asha_rungs(*, grace_period: float, reduction_factor: float, max_epochs: int) -> tuple[float, ...]:
    """The epochs at which Ray's ASHA (one bracket) compares trials: ``grace_period ×
    reduction_factor**k`` up to ``max_epochs``, counted as Ray's ``_Bracket`` counts them."""
    grace = min(grace_period, max_epochs)
    count = int(math.log(max_epochs / grace) / math.log(reduction_factor) + 1)
    return tuple(grace * reduction_factor ** k for k in range(count))


def expected_trial_epochs(*, trials: int, rungs: Sequence[float], reduction_factor: float,
                          max_epochs: int, cap: float | None = None) -> float:
    """Trial-epochs run when every trial reaches the first rung and 1/``reduction_factor`` of
    those at each rung train on to the next (the last ones to ``max_epochs``); with ``cap``,
    trials whose own ``max_epochs`` is ``cap`` stop there however far ASHA would let them go."""
    cap = max_epochs if cap is None else min(cap, max_epochs)
    total = trials * min(rungs[0], cap)
    surviving = float(trials)
    for lower, upper in zip(rungs, (*rungs[1:], max_epochs)):
        surviving /= reduction_factor
        total += surviving * max(0.0, min(upper, cap) - min(lower, cap))
    return total


@dataclass(frozen=True)
class Capacity:
    """How many trials run at once, in total and per GPU type, and the nodes that says it for."""

    trials_at_once: int
    by_accelerator: tuple[tuple[str, int], ...]
    nodes: str


def trials_at_once(nodes: Sequence[Any], *, cpus: float, gpus: float, local: bool) -> Capacity:
    """Trials each node of ``nodes`` (``ray_session.NodeCapacity``) holds at ``cpus`` and
    ``gpus`` per trial, summed (a request of neither is bounded by nothing: -1)."""
    per_type: dict[str, int] = {}
    total = 0
    for node in nodes:
        fits = [math.floor(node.cpus / cpus + 1e-9)] if cpus > 0 else []
        if gpus > 0:
            fits.append(math.floor(node.gpus * RAY_RESOURCE_UNIT / round(gpus * RAY_RESOURCE_UNIT)))
        count = min(fits) if fits else -1
        if count < 0:
            return Capacity(trials_at_once=-1, by_accelerator=(), nodes=describe_nodes(nodes, local=local))
        total += count
        if gpus > 0 and count:
            kind = node.accelerator or "GPU"
            per_type[kind] = per_type.get(kind, 0) + count
    return Capacity(trials_at_once=total, by_accelerator=tuple(sorted(per_type.items())),
                    nodes=describe_nodes(nodes, local=local))


def describe_nodes(nodes: Sequence[Any], *, local: bool) -> str:
    cpus = sum(node.cpus for node in nodes)
    gpus = sum(node.gpus for node in nodes)
    where = "this machine" if local else f"the cluster's {len(nodes)} node(s)"
    return f"{where}: {cpus:g} CPU + {gpus:g} GPU"


@dataclass(frozen=True)
class Timing:
    """Seconds one epoch takes on average over the grid's configs, seconds before a trial's
    first epoch (a worker starting, the trial setting up), and where the figures come from."""

    epoch_seconds: float
    trial_overhead_seconds: float
    source: str


def sample_counts(config: Mapping[str, Any], train_size: int, val_size: int) -> tuple[int, int]:
    """Training and validation samples of one epoch of a trial config (with its trainable's
    defaults): ``epoch_samples`` or ``steps_per_epoch`` batches when the config caps an epoch,
    else the whole training split; ``validation_steps`` images when the config caps validation."""
    if config.get("epoch_samples"):
        train = int(config["epoch_samples"])
    elif config.get("steps_per_epoch"):
        train = int(config["steps_per_epoch"]) * int(config.get("batch_size", 1))
    else:
        train = train_size
    val = min(val_size, int(config["validation_steps"])) if config.get("validation_steps") else val_size
    return train, val


def epoch_seconds(*, sample_seconds: float, train_samples: int, val_samples: int) -> float:
    return sample_seconds * (train_samples + EVAL_SAMPLE_COST * val_samples)


@dataclass(frozen=True)
class Forecast:
    """What a sweep is expected to cost: its trials, their trial-epochs for the whole grid and
    under ASHA, how many run at once, and (with a ``Timing``) the wall time."""

    trials: int
    max_epochs: int
    rungs: tuple[float, ...]
    reduction_factor: float
    capacity: Capacity
    cpus_per_trial: float
    gpus_per_trial: float
    timing: Timing | None = None
    # Why there is no ``timing``, when there is none.
    untimed_because: str = "a resumed run is partly done; give --plan-seconds-per-epoch for a time"
    # Seconds the command took before its trials could start (Ray, data audit, calibration).
    preparation_seconds: float | None = None
    # The possible configs' ``max_epochs``, each with how many configs have it (``epoch_caps``);
    # empty: every trial's is ``max_epochs``.
    epoch_caps: tuple[tuple[float, int], ...] = ()

    @property
    def caps(self) -> tuple[tuple[float, int], ...]:
        return self.epoch_caps or ((self.max_epochs, 1),)

    def average(self, epochs_of: Callable[[float], float]) -> float:
        """``epochs_of`` a trial whose ``max_epochs`` is a cap, averaged over the ``caps``."""
        return sum(epochs_of(cap) * count for cap, count in self.caps) / sum(count for _, count in self.caps)

    @property
    def mean_epochs(self) -> float:
        """Epochs a trial trains when nothing stops it early, on average over ``caps``."""
        return self.average(lambda cap: cap)

    @property
    def grid_trial_epochs(self) -> float:
        return self.trials * self.mean_epochs

    @property
    def asha_trial_epochs(self) -> float:
        return self.average(lambda cap: expected_trial_epochs(
            trials=self.trials, rungs=self.rungs, reduction_factor=self.reduction_factor, max_epochs=self.max_epochs,
            cap=cap))

    @property
    def running(self) -> int:
        """Trials that run together: what the nodes hold, never more than there are trials."""
        at_once = self.capacity.trials_at_once
        return self.trials if at_once < 0 else max(1, min(at_once, self.trials))

    @property
    def lanes(self) -> int:
        """Trials' worth of training that goes on at once: the ``running`` trials, except that
        trials sharing a GPU (less than one GPU each) count once per GPU they fill, packed as
        Ray packs fractional GPUs (one GPU's shares before the next): they take turns on it."""
        if not 0 < self.gpus_per_trial < 1:
            return self.running
        return max(1, min(self.running, math.ceil(self.running * self.gpus_per_trial - 1e-6)))

    def wall_seconds(self, trial_epochs: float) -> float | None:
        """Wall time of ``trial_epochs`` spread over the ``lanes``, each trial paying its
        overhead once; None without a ``Timing``."""
        if self.timing is None:
            return None
        work = trial_epochs * self.timing.epoch_seconds + self.trials * self.timing.trial_overhead_seconds
        return work / self.lanes

    def epochs_text(self) -> str:
        """``12 trial(s) × 2 max epochs``, or with epochs varying by config, their average."""
        caps = [cap for cap, _ in self.caps]
        if len(caps) == 1:
            return f"{self.trials} trial(s) × {caps[0]:g} max epochs"
        return (f"{self.trials} trial(s) × {self.mean_epochs:.3g} epochs on average (max_epochs {min(caps):g} "
                f"to {max(caps):g})")

    def concurrency_text(self) -> str:
        """The assumption behind dividing the work by ``lanes``."""
        if 0 < self.gpus_per_trial < 1:
            return (f"Assuming trials sharing a GPU take turns on it (the step time was measured with one trial "
                    f"alone on its GPU): the {self.running} trial(s) at once on {self.lanes} GPU(s) train as fast "
                    f"as {self.lanes} alone")
        own = "CPUs" if self.gpus_per_trial == 0 else "GPU(s)"
        return f"Assuming the {self.running} trial(s) at once run side by side, each on its own {own}"

    def lines(self) -> list[str]:
        """The forecast as printed by ``--plan`` and at the start of a run."""
        rungs = ", ".join(f"{rung:g}" for rung in self.rungs)
        lines = [f"Plan: {self.epochs_text()} = {self.grid_trial_epochs:.0f} "
                 f"trial-epochs for the whole grid; ASHA (rungs at epochs {rungs}; 1 in {self.reduction_factor:g} "
                 f"trials going on at each) is expected to run about {self.asha_trial_epochs:.0f} trial-epochs"]
        at_once = "no limit" if self.capacity.trials_at_once < 0 else str(self.capacity.trials_at_once)
        lines.append(f"Trials at once: {at_once} ({self.cpus_per_trial:g} CPU + {self.gpus_per_trial:g} GPU each; "
                     f"{self.capacity.nodes})"
                     + "".join(f"; {count} on {kind}" for kind, count in self.capacity.by_accelerator))
        if self.timing is None:
            lines.append(f"Time: no estimate ({self.untimed_because})")
            return lines
        overhead = (f" and {self.timing.trial_overhead_seconds:.1f} s per trial to start and set up"
                    if self.timing.trial_overhead_seconds else "")
        lines.append(f"Time: about {self.timing.epoch_seconds:.2f} s per trial-epoch{overhead} "
                     f"({self.timing.source}) → about {duration(self.wall_seconds(self.asha_trial_epochs))} "
                     f"of wall time under ASHA, {duration(self.wall_seconds(self.grid_trial_epochs))} "
                     f"if every trial ran to the end"
                     + ("" if self.preparation_seconds is None else
                        f"; plus {duration(self.preparation_seconds)} before the first trial (starting Ray, the "
                        f"data audit, the calibration: as long as they took here)"))
        lines.append(self.concurrency_text())
        return lines


# A sweep forecast to run longer than this (under ASHA), or holding more trials than MANY_TRIALS,
# gets a warning with its forecast: most likely a digit too many in --num-samples.
LONG_SWEEP_SECONDS = 7 * 24 * 3600
MANY_TRIALS = 10_000


def size_warning(forecast: Forecast, *, num_samples: int | None) -> str | None:
    """A warning line when ``forecast`` is of a sweep longer than ``LONG_SWEEP_SECONDS`` or
    with more than ``MANY_TRIALS`` trials, naming the ``--num-samples`` given; else None."""
    wall = forecast.wall_seconds(forecast.asha_trial_epochs)
    if (wall is None or wall <= LONG_SWEEP_SECONDS) and forecast.trials <= MANY_TRIALS:
        return None
    cause = "the grid" if num_samples is None else f"--num-samples {num_samples}"
    length = "" if wall is None else f", about {duration(wall)} of wall time under ASHA"
    return (f"warning: {cause} makes {forecast.trials:,} trial(s){length}; check --num-samples and the grid "
            f"(--set) before running it")


def comparison(forecast: Forecast, *, trial_epochs: int, wall_seconds: float) -> str:
    """The forecast against what the run did: trial-epochs run, and the wall time of its
    trials (``wall_seconds``: Tune's run, from the first trial to the last)."""
    expected = forecast.wall_seconds(forecast.asha_trial_epochs)
    time_part = ("" if expected is None else
                 f"; trials' wall time about {duration(expected)} forecast, {duration(wall_seconds)} taken")
    return (f"Forecast vs run: about {forecast.asha_trial_epochs:.0f} trial-epochs forecast under ASHA "
            f"(grid {forecast.grid_trial_epochs:.0f}), {trial_epochs} run{time_part}")


def duration(seconds: float) -> str:
    """``seconds`` as ``1 h 02 min``, ``3 min 05 s`` or ``42 s``."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def calibrated_timing(resolved, data, timings: Mapping[tuple, Any]) -> Timing:
    """A ``Timing`` from ``packing.calibrate_step_time``'s measurements: each possible config's
    epoch (``possible_configs``: the grid's points, or under a sampler every combination of its
    choices and ranges' endpoints, as the calibration took them) at the per-sample time of the
    calibrated config standing for it, averaged; the overhead is the slowest calibrated worker
    start and setup."""
    from sweeps.packing import memory_shape, with_defaults
    from trainables.registry import get_trainable

    config_class = get_trainable(resolved.spec.trainable).config_class
    epochs = []
    for config in resolved.possible_configs():
        variant, trial_config = data.for_config(config)
        train, val = sample_counts(with_defaults(trial_config, config_class), len(variant.splits["train"]),
                                   len(variant.splits["val"]))
        epochs.append(epoch_seconds(sample_seconds=timings[memory_shape(config)].sample_seconds,
                                    train_samples=train, val_samples=val))
    overhead = max(timing.startup_seconds + timing.setup_seconds for timing in timings.values())
    steps = sum(timing.step_seconds for timing in timings.values()) / len(timings)
    return Timing(epoch_seconds=sum(epochs) / len(epochs), trial_overhead_seconds=overhead,
                  source=f"calibrated here: {steps:.2f} s per training step of the heaviest config"
                         f"{'s' if len(timings) > 1 else ''}")


def forecast_for(resolved, *, trials: int, nodes: Sequence[Any], local: bool, timing: Timing | None,
                 untimed_because: str = Forecast.untimed_because,
                 preparation_seconds: float | None = None) -> Forecast:
    """The ``Forecast`` of ``trials`` trials of ``resolved`` on ``nodes`` at its resources."""
    return Forecast(trials=trials, max_epochs=resolved.max_epochs, epoch_caps=epoch_caps(resolved),
                    rungs=asha_rungs(grace_period=resolved.asha.grace_period,
                                     reduction_factor=resolved.asha.reduction_factor,
                                     max_epochs=resolved.max_epochs),
                    reduction_factor=resolved.asha.reduction_factor,
                    capacity=trials_at_once(nodes, cpus=resolved.resources.cpus, gpus=resolved.resources.gpus,
                                            local=local),
                    cpus_per_trial=resolved.resources.cpus, gpus_per_trial=resolved.resources.gpus, timing=timing,
                    untimed_because=untimed_because, preparation_seconds=preparation_seconds)


def epoch_caps(resolved) -> tuple[tuple[float, int], ...]:
    """The ``max_epochs`` of ``resolved.possible_configs()`` (1 where unset, as
    ``ResolvedSweep.max_epochs`` reads it), each with how many configs have it.

    Under ``--search grid`` the configs are the grid's points, each run once per repeat, so
    their average times the trials is exact. Under a sampler they are every combination of each
    axis's choices and ranges' endpoints, so the average is a uniform draw's expected epochs:
    exact for a choice or a uniform ``int``/``uniform`` range, a little high for a log-scale
    one; a sampler that favours long trials can run more, up to ``max_epochs`` each."""
    counts = Counter(float(config.get("max_epochs", 1)) for config in resolved.possible_configs())
    return tuple(sorted(counts.items()))
