"""``--plan``: the forecast's arithmetic (no Ray), its wording, and the command end to end on
the smoke sweep (a local Ray instance and a short calibration; no experiment written)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
from ray.tune.schedulers.async_hyperband import _Bracket

import sweeps.run
import sweeps.sweep
from sweeps.data import SweepData
from sweeps.packing import StepTiming, calibration_configs, memory_shape
from sweeps.plan import (
    Capacity,
    Forecast,
    Timing,
    asha_rungs,
    calibrated_timing,
    comparison,
    duration,
    epoch_seconds,
    expected_trial_epochs,
    forecast_for,
    sample_counts,
    trials_at_once,
)
from sweeps.ray_session import NodeCapacity
from sweeps.registry import get_sweep
from sweeps.run import main
from sweeps.space import SearchSpaceError, resolve
from sweeps.sweep import SweepOptions, sweep_forecast
from trainables.datasets.base import ClassificationData, SplitArrays

LOCAL_2_CPUS = Capacity(trials_at_once=2, by_accelerator=(), nodes="this machine: 2 CPU + 0 GPU")


@pytest.mark.parametrize("grace, rf, max_t", [(1, 2, 2), (2, 2, 14), (5, 3, 50), (10, 3, 100), (3, 4, 3), (1, 3, 10)])
def test_rungs_are_the_ones_rays_asha_bracket_uses(grace, rf, max_t):
    bracket = _Bracket(min_t=grace, max_t=max_t, reduction_factor=rf, s=0)
    assert asha_rungs(grace_period=grace, reduction_factor=rf, max_epochs=max_t) == \
        tuple(sorted(milestone for milestone, _ in bracket._rungs))


def test_expected_trial_epochs_keep_one_in_rf_at_each_rung():
    # 12 trials to epoch 1, half of them on to epoch 2 (the last rung is max epochs: nothing beyond).
    assert expected_trial_epochs(trials=12, rungs=(1, 2), reduction_factor=2, max_epochs=2) == 18
    # cpu profile: rungs 2, 4, 8 and max 14: 12×2 + 6×2 + 3×4 + 1.5×6.
    assert expected_trial_epochs(trials=12, rungs=(2, 4, 8), reduction_factor=2, max_epochs=14) == 57
    # One rung at max epochs: every trial runs to the end.
    assert expected_trial_epochs(trials=5, rungs=(3,), reduction_factor=4, max_epochs=3) == 15


def test_trials_at_once_take_the_scarcer_of_cpus_and_gpus_and_count_gpu_types():
    nodes = [NodeCapacity(cpus=2, gpus=0), NodeCapacity(cpus=32, gpus=4, accelerator="A100"),
             NodeCapacity(cpus=8, gpus=2, accelerator="T4")]
    quarter = trials_at_once(nodes, cpus=1, gpus=0.25, local=False)
    # A100 node: 32 CPUs allow 32, 4 GPUs at 0.25 allow 16; T4 node: 8 by CPUs, 8 by GPUs; CPU node: none.
    assert quarter.trials_at_once == 24 and quarter.by_accelerator == (("A100", 16), ("T4", 8))
    assert quarter.nodes == "the cluster's 3 node(s): 42 CPU + 6 GPU"
    # A third of a GPU: Ray's units fit it 3 times per GPU, not 2.
    assert trials_at_once(nodes[1:2], cpus=1, gpus=0.3333, local=False).trials_at_once == 12
    assert trials_at_once(nodes[:1], cpus=1, gpus=0, local=True) == Capacity(
        trials_at_once=2, by_accelerator=(), nodes="this machine: 2 CPU + 0 GPU")
    assert trials_at_once(nodes[:1], cpus=0, gpus=0, local=True).trials_at_once == -1


def test_an_epoch_counts_its_capped_or_whole_training_split_and_a_third_of_validation():
    assert sample_counts({"epoch_samples": 96, "batch_size": 32}, 2804, 1137) == (96, 1137)
    assert sample_counts({"epoch_samples": None, "batch_size": 32}, 2804, 1137) == (2804, 1137)
    assert sample_counts({"steps_per_epoch": 100, "batch_size": 4, "validation_steps": 200}, 300, 87) == (400, 87)
    assert sample_counts({"steps_per_epoch": 100, "batch_size": 4, "validation_steps": 50}, 300, 87) == (400, 50)
    assert epoch_seconds(sample_seconds=0.01, train_samples=100, val_samples=300) == pytest.approx(2.0)


def smoke_forecast(timing: Timing | None) -> Forecast:
    return Forecast(trials=12, max_epochs=2, rungs=(1, 2), reduction_factor=2, capacity=LOCAL_2_CPUS,
                    cpus_per_trial=1, gpus_per_trial=0, timing=timing)


def test_the_wall_time_spreads_epochs_and_each_trials_overhead_over_the_trials_at_once():
    forecast = smoke_forecast(Timing(epoch_seconds=2.0, trial_overhead_seconds=5.0, source="test"))
    assert forecast.wall_seconds(forecast.asha_trial_epochs) == pytest.approx((18 * 2.0 + 12 * 5.0) / 2)
    assert forecast.wall_seconds(forecast.grid_trial_epochs) == pytest.approx((24 * 2.0 + 12 * 5.0) / 2)
    lines = forecast.lines()
    assert lines[0] == ("Plan: 12 trial(s) × 2 max epochs = 24 trial-epochs for the whole grid; ASHA (rungs at "
                        "epochs 1, 2; 1 in 2 trials going on at each) is expected to run about 18 trial-epochs")
    assert lines[1] == "Trials at once: 2 (1 CPU + 0 GPU each; this machine: 2 CPU + 0 GPU)"
    assert lines[2] == ("Time: about 2.00 s per trial-epoch and 5.0 s per trial to start and set up (test) → about "
                        "48 s of wall time under ASHA, 54 s if every trial ran to the end")
    assert lines[3] == "Assuming the 2 trial(s) at once run side by side, each on its own CPUs"
    prepared = dataclasses.replace(forecast, preparation_seconds=30.4).lines()[2]
    assert prepared.endswith("if every trial ran to the end; plus 30 s before the first trial (starting Ray, the "
                             "data audit, the calibration: as long as they took here)")
    assert comparison(forecast, trial_epochs=20, wall_seconds=125) == (
        "Forecast vs run: about 18 trial-epochs forecast under ASHA (grid 24), 20 run; trials' wall time about 48 s "
        "forecast, 2 min 05 s taken")


def test_fewer_trials_than_slots_run_all_at_once_and_no_timing_means_no_time():
    forecast = Forecast(trials=1, max_epochs=4, rungs=(1, 2, 4), reduction_factor=2, capacity=LOCAL_2_CPUS,
                        cpus_per_trial=1, gpus_per_trial=0,
                        timing=Timing(epoch_seconds=1.0, trial_overhead_seconds=0.0, source="test"))
    assert forecast.running == 1 and forecast.wall_seconds(4) == 4
    untimed = smoke_forecast(None)
    assert untimed.wall_seconds(18) is None and untimed.lines()[-1].startswith("Time: no estimate")
    assert comparison(untimed, trial_epochs=18, wall_seconds=60) == (
        "Forecast vs run: about 18 trial-epochs forecast under ASHA (grid 24), 18 run")


@pytest.mark.parametrize("seconds, text", [(0.4, "0 s"), (42, "42 s"), (185, "3 min 05 s"), (3720, "1 h 02 min")])
def test_durations_read_as_hours_minutes_seconds(seconds, text):
    assert duration(seconds) == text


def test_seconds_per_epoch_given_by_hand_skip_the_calibration(monkeypatch):
    monkeypatch.setattr(sweeps.sweep, "node_capacities", lambda: [NodeCapacity(cpus=2, gpus=0)])
    monkeypatch.setattr(sweeps.sweep, "calibrate_step_time", lambda *a, **k: pytest.fail("calibrated"))
    resolved = resolve(get_sweep("bccd_imbalance"), profile="cpu", smoke=True)
    options = SweepOptions(name="bccd_imbalance", smoke=True, plan=True, plan_seconds_per_epoch=3.0, num_samples=2)
    forecast = sweep_forecast(resolved, object(), options)
    assert (forecast.trials, forecast.running, forecast.timing.source) == (24, 2, "--plan-seconds-per-epoch")
    assert forecast.wall_seconds(forecast.asha_trial_epochs) == pytest.approx(36 * 3.0 / 2)
    assert forecast.lines()[2].startswith("Time: about 3.00 s per trial-epoch (--plan-seconds-per-epoch) → about")


def test_a_calibration_that_fails_or_cannot_be_placed_leaves_the_forecast_without_a_time(monkeypatch):
    from ray.exceptions import RayTaskError

    resolved = resolve(get_sweep("bccd_imbalance"), profile="cpu", smoke=True)

    def trainable_raised(*args, **kwargs):
        raise RayTaskError("measure_step_time", "Traceback (most recent call last):\n  File x\n"
                           "TypeError: unsupported operand", TypeError("unsupported operand"))

    monkeypatch.setattr(sweeps.sweep, "calibrate_step_time", trainable_raised)
    assert sweeps.sweep.calibrated(resolved, object(), [NodeCapacity(cpus=2, gpus=0)]) == (
        None, "the calibration failed: TypeError: unsupported operand")
    monkeypatch.setattr(sweeps.sweep, "calibrate_step_time", lambda *a, **k: pytest.fail("calibrated"))
    timing, because = sweeps.sweep.calibrated(resolved, object(), [NodeCapacity(cpus=0.5, gpus=0)])
    assert timing is None and because.startswith("no node holds a trial yet")
    forecast = dataclasses.replace(smoke_forecast(None), untimed_because=because)
    assert forecast.lines()[-1] == f"Time: no estimate ({because})"


@pytest.mark.parametrize("args, message", [
    (["--plan", "--resume"], "--plan forecasts a new run; it cannot be combined with --resume"),
    (["--plan", "--plan-seconds-per-epoch", "0"], "--plan-seconds-per-epoch 0.0: must be a finite number"),
    (["--plan", "--plan-seconds-per-epoch", "inf"], "--plan-seconds-per-epoch inf: must be a finite number"),
])
def test_impossible_plan_options_exit_2_before_ray(args, message, monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(sweeps.sweep, "ensure_ray", lambda *a, **k: pytest.fail("Ray was asked to start"))
    assert main(["bccd_imbalance", "--smoke", *args, "--storage", str(tmp_path / "runs")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_plan_options_parse_into_the_sweep_options():
    args = sweeps.run.build_parser().parse_args(["bccd_imbalance", "--plan", "--plan-seconds-per-epoch", "2.5",
                                                 "--verbose"])
    options = sweeps.run.options_from_args(args)
    assert (options.plan, options.plan_seconds_per_epoch, options.verbose) == (True, 2.5, True)
    with pytest.raises(SearchSpaceError):
        SweepOptions(name="bccd_imbalance", plan_seconds_per_epoch=math.nan)


def test_plan_prints_the_forecast_and_writes_no_experiment(ray_session, shared_data_dir, tmp_path, capsys):
    """The issue's done-when: the smoke plan exits 0 with trial-epochs and a calibrated time."""
    storage = tmp_path / "runs"
    assert main(["bccd_imbalance", "--smoke", "--plan", "--data-dir", str(shared_data_dir),
                 "--storage", str(storage)]) == 0
    out = capsys.readouterr().out
    assert "24 trial-epochs for the whole grid" in out and "about 18 trial-epochs" in out
    assert "Trials at once: 2 (1 CPU + 0 GPU each; this machine: 2 CPU + 0 GPU)" in out
    time_line = next(line for line in out.splitlines() if line.startswith("Time: "))
    assert "calibrated here" in time_line and "of wall time under ASHA" in time_line
    assert not storage.exists()


RANGES_YAML = Path(__file__).resolve().parent / "spaces" / "bccd_ranges.yaml"
ONE_CPU_NODE = [NodeCapacity(cpus=2, gpus=0)]


def ranged(*overrides: str, search: str = "grid"):
    """bccd_imbalance's smoke sweep with the test ranges (tests/spaces/bccd_ranges.yaml)."""
    resolved = resolve(get_sweep("bccd_imbalance"), profile="cpu", smoke=True, path=RANGES_YAML,
                       overrides=("oversampling=[false]", *overrides))
    return dataclasses.replace(resolved, search=search)


def test_a_trial_stopping_at_its_own_max_epochs_runs_asha_only_that_far():
    # 10 trials capped at 2: all to rung 1, half of them on to 2, then they stop: 10 + 5.
    assert expected_trial_epochs(trials=10, rungs=(1, 2, 4, 8, 16), reduction_factor=2, max_epochs=20, cap=2) == 15
    # Capped at max_epochs: 10 + 5×1 + 2.5×2 + 1.25×4 + 0.625×8 + 0.3125×4.
    assert expected_trial_epochs(trials=10, rungs=(1, 2, 4, 8, 16), reduction_factor=2, max_epochs=20) == 31.25


def test_a_max_epochs_range_sizes_the_forecast_by_the_epochs_trials_can_get():
    """Issue #19 point 1: max_epochs lists 2 and 6 for the grid and ranges over 2..20 for a sampler.
    The grid runs half its points to 2 epochs and half to 6; a sampler's trials to 11 on average
    (a uniform draw over 2..20), with ASHA's rungs up to 20."""
    axis = "max_epochs={values: [2, 6], int: [2, 20]}"
    grid = forecast_for(ranged(axis), trials=24, nodes=ONE_CPU_NODE, local=True, timing=None)
    assert (grid.max_epochs, grid.grid_trial_epochs) == (6, 24 * 4)
    assert grid.lines()[0].startswith("Plan: 24 trial(s) × 4 epochs on average (max_epochs 2 to 6) = 96 trial-epochs")
    sampled = forecast_for(ranged(axis, search="optuna"), trials=10, nodes=ONE_CPU_NODE, local=True, timing=None)
    assert (sampled.max_epochs, sampled.rungs) == (20, (1, 2, 4, 8, 16))
    assert sampled.grid_trial_epochs == 10 * 11
    assert sampled.asha_trial_epochs == pytest.approx((15 + 31.25) / 2)


def split_of(images: int) -> SplitArrays:
    return SplitArrays(np.zeros((images, 4, 4, 3), np.uint8), np.zeros(images, np.int64),
                       np.arange(images).astype(str))


def test_a_sampled_epoch_length_times_the_epochs_of_the_configs_a_sampler_draws():
    """Issue #19 point 1: epoch_samples only as a range (96..960) reaches no grid config, so the
    grid's configs train a whole 2,000-image split per epoch; a sampler's trials average 528."""
    data = SweepData(axis=None, variants={None: ClassificationData("d", ("a", "b"), {
        "train": split_of(2000), "val": split_of(300)})}, audits={None: None})
    resolved = ranged("epoch_samples={int: [96, 960]}", search="optuna")
    [shape] = {memory_shape(config) for config in calibration_configs(resolved)}
    timing = StepTiming(startup_seconds=2.0, setup_seconds=3.0, step_seconds=0.32, batch_size=32)
    calibrated = calibrated_timing(resolved, data, {shape: timing})
    assert calibrated.epoch_seconds == pytest.approx(0.01 * ((96 + 960) / 2 + 300 / 3))
    assert calibrated.trial_overhead_seconds == 5.0


def gpu_forecast(*, trials: int, gpus_per_trial: float, at_once: int) -> Forecast:
    return Forecast(trials=trials, max_epochs=2, rungs=(1, 2), reduction_factor=2, cpus_per_trial=4,
                    gpus_per_trial=gpus_per_trial, timing=Timing(epoch_seconds=10.0, trial_overhead_seconds=0.0,
                                                                 source="test"),
                    capacity=Capacity(trials_at_once=at_once, by_accelerator=(("H100", at_once),), nodes="2 GPUs"))


def test_trials_sharing_a_gpu_take_turns_on_it_in_the_wall_time():
    """Issue #19 6c: 4 trials per GPU on 2 GPUs run 8 at once, but the step time was measured with
    one trial alone on its GPU, so the 8 go as fast as 2 (one per GPU), not 8."""
    packed = gpu_forecast(trials=16, gpus_per_trial=0.25, at_once=8)
    assert (packed.running, packed.lanes) == (8, 2)
    assert packed.wall_seconds(packed.grid_trial_epochs) == pytest.approx(16 * 2 * 10.0 / 2)
    assert packed.lines()[-1] == ("Assuming trials sharing a GPU take turns on it (the step time was measured "
                                  "with one trial alone on its GPU): the 8 trial(s) at once on 2 GPU(s) train as "
                                  "fast as 2 alone")
    # Fewer trials than shares: 3 trials at a quarter GPU fill one GPU; 12 at 0.0833 fill one too.
    assert gpu_forecast(trials=3, gpus_per_trial=0.25, at_once=8).lanes == 1
    assert gpu_forecast(trials=24, gpus_per_trial=0.0833, at_once=24).lanes == 2
    whole = gpu_forecast(trials=16, gpus_per_trial=1.0, at_once=2)
    assert whole.lanes == 2 and whole.lines()[-1] == "Assuming the 2 trial(s) at once run side by side, each on " \
                                                     "its own GPU(s)"
