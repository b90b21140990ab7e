"""Continuous search spaces: YAML ranges, their checks, and an Optuna sweep that draws from one."""

from __future__ import annotations

import json
import math
from pathlib import Path

import optuna
import pytest
from ray.tune.search.optuna import OptunaSearch

from sweeps.ranges import Range
from sweeps.registry import get_sweep
from sweeps.space import SearchSpaceError, from_saved, resolve
from sweeps.sweep import SweepOptions, run_sweep

SPEC = get_sweep("bccd_imbalance")
RANGES_YAML = Path(__file__).resolve().parent / "spaces" / "bccd_ranges.yaml"
LR_RANGE = (1e-5, 1e-2)


def _resolved(*overrides: str):
    return resolve(SPEC, profile="cpu", smoke=True, overrides=overrides, path=RANGES_YAML)


def test_an_axis_keeps_its_values_for_the_grid_and_its_range_for_samplers():
    resolved = _resolved("oversampling=[false]", "dropout=0.1")
    assert resolved.grid == {"weighted_loss": [False, True], "lr": [1e-4, 3e-4, 1e-3], "batch_size": [16, 32],
                             "oversampling": [False]}
    assert resolved.grid_size == 12 and "oversampling" not in resolved.ranges
    assert resolved.ranges["lr"] == Range(axis="lr", kind="loguniform", bounds=LR_RANGE, source=str(RANGES_YAML))
    assert resolved.param_space()["lr"] == {"grid_search": [1e-4, 3e-4, 1e-3]}
    space = resolved.sampler_space()
    assert (space["lr"].lower, space["lr"].upper) == LR_RANGE
    assert (space["batch_size"].lower, space["batch_size"].upper) == (8, 65)   # Tune's upper bound is exclusive
    assert space["weighted_loss"].categories == [False, True] and space["dropout"] == 0.1


def test_a_range_without_values_stops_the_grid_naming_file_axis_and_fix():
    resolved = _resolved()
    with pytest.raises(SearchSpaceError) as caught:
        resolved.param_space()
    message = str(caught.value)
    assert message.startswith(f"{RANGES_YAML}: grid.oversampling is a choice range with no values")
    assert "add the grid's points as values: [...]" in message and "--search optuna" in message


def test_optuna_draws_inside_each_range_and_whole_numbers_for_int():
    resolved = _resolved()
    searcher = OptunaSearch(sampler=optuna.samplers.TPESampler(seed=0))
    searcher.set_search_properties("val_macro_f1", "max", resolved.sampler_space())
    drawn = [searcher.suggest(f"t{i}") for i in range(12)]
    assert all(LR_RANGE[0] <= d["lr"] <= LR_RANGE[1] for d in drawn)
    assert len({d["lr"] for d in drawn}) == 12
    assert all(0.0 <= d["dropout"] <= 0.5 for d in drawn) and len({d["dropout"] for d in drawn}) == 12
    assert all(isinstance(d["batch_size"], int) and 8 <= d["batch_size"] <= 64 for d in drawn)
    assert {d["oversampling"] for d in drawn} <= {False, True}


BAD_RANGES = [
    ("lr={loguniform: [0.0, 1.0e-2]}", "a log-scale range needs a positive low bound, got [0.0, 0.01]"),
    ("batch_size={int: [0, 64], log: true}", "a log-scale range needs a positive low bound"),
    ("lr={uniform: [1.0e-2, 1.0e-5]}", "uniform needs low < high, got [0.01, 1e-05]; swap them"),
    ("lr={uniform: [1.0e-3, 1.0e-3]}", "uniform needs low < high"),
    ("lr={loguniform: [1.0e-5, .inf]}", "loguniform needs [low, high], two finite numbers, got [1e-05, inf]"),
    ("lr={uniform: [.nan, 1.0]}", "uniform needs [low, high], two finite numbers"),
    ("lr={uniform: [1.0e-5]}", "uniform needs [low, high]"),
    ("batch_size={int: [8, 64.5]}", "int needs [low, high], two whole numbers, got [8, 64.5]"),
    ("lr={uniform: [1.0e-5, 1.0e-2], log: true}", "log: true applies to int ranges only"),
    ("lr={uniform: [1.0e-5, 1.0e-2], int: [1, 2]}", "must declare exactly one range, got ['uniform', 'int']"),
    ("lr={values: [1.0e-3]}", "must declare exactly one range, got none"),
    ("lr={loguniform: 1.0e-3}", "grid.lr.loguniform must be a list, got 0.001"),
    ("lr={normal: [0, 1]}", "unknown key(s) ['normal']; valid: values, log, loguniform, uniform, int, choice"),
    ("lr={values: [0.5], loguniform: [1.0e-5, 1.0e-2]}", "lists value(s) [0.5] outside its range"),
    ("lr={values: [], loguniform: [1.0e-5, 1.0e-2]}", "grid.lr must be a non-empty list of values"),
    ("weighted_loss={choice: []}", "choice must list at least one plain value"),
    ("weighted_loss={choice: [true, true]}", "choice lists a value twice"),
    ("lr={uniform: [-1.0, 1.0]}", "config key 'lr' must be positive, got -1.0"),
    ("batch_size={uniform: [8.0, 64.0]}", "config key 'batch_size' must be int, got 8.0"),
]


@pytest.mark.parametrize("item, message", BAD_RANGES, ids=[item for item, _ in BAD_RANGES])
def test_a_bad_range_names_its_set_item_axis_and_fix_before_ray(item, message):
    with pytest.raises(SearchSpaceError) as caught:
        resolve(SPEC, profile="cpu", overrides=(item,))
    assert str(caught.value).startswith(f"--set {item}: ") and message in str(caught.value)


def test_a_bad_range_in_a_file_names_the_file(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(RANGES_YAML.read_text().replace("uniform: [0.0, 0.5]", "uniform: [0.5, 0.0]"))
    with pytest.raises(SearchSpaceError, match=rf"^{path}: grid.dropout: uniform needs low < high"):
        resolve(SPEC, profile="cpu", path=path)


def test_a_set_list_or_value_replaces_the_whole_axis_range_included():
    resolved = _resolved("lr=[1e-2]", "dropout=0.2", "oversampling=[true]")
    assert resolved.grid["lr"] == [1e-2] and "lr" not in resolved.ranges
    assert resolved.fixed["dropout"] == 0.2 and "dropout" not in resolved.ranges


def test_ranges_survive_the_saved_sweep():
    resolved = _resolved()
    rebuilt = from_saved(SPEC, json.loads(json.dumps(resolved.to_dict())))
    assert {k: r.to_dict() for k, r in rebuilt.ranges.items()} == {k: r.to_dict() for k, r in resolved.ranges.items()}
    assert rebuilt.grid == resolved.grid and rebuilt.axes == resolved.axes


@pytest.mark.e2e
def test_optuna_sweep_over_a_log_uniform_lr_tries_continuous_values_inside_it(ray_session, shared_data_dir,
                                                                               tmp_path):
    overrides = ("lr={loguniform: [1.0e-5, 1.0e-2]}", "weighted_loss=false", "oversampling=false", "max_epochs=1")
    outcome = run_sweep(SweepOptions(name="bccd_imbalance", smoke=True, search="optuna", num_samples=2,
                                     overrides=overrides, storage=str(tmp_path), data_dir=str(shared_data_dir)))
    assert outcome.exit_code == 0 and len(outcome.summary) == 2
    tried = [json.loads((outcome.experiment_dir / trial / "params.json").read_text())["lr"]
             for trial in outcome.summary["trial_id"]]
    assert all(LR_RANGE[0] <= lr <= LR_RANGE[1] for lr in tried), tried
    assert len(set(tried)) == 2 and not {round(math.log10(lr), 6) for lr in tried} & {-4.0, -3.0, -2.0, -5.0}, tried


def test_the_data_variant_axis_must_list_its_values():
    with pytest.raises(SearchSpaceError, match=r"^--set loading_option=\{choice: \[a, b\]\}: grid.loading_option "
                                               r"selects the data variant"):
        resolve(get_sweep("all_transfer"), profile="cpu", overrides=("loading_option={choice: [a, b]}",))
