"""An axis given only as a range reaches everything that sizes the sweep from its configs
(issue #19, point 1): ASHA's ``max_t`` and the weights preflight here; the batch-size
calibration and the forecast in tests/test_packing.py and tests/test_plan.py."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import sweeps.sweep
from sweeps.registry import get_sweep
from sweeps.space import resolve
from sweeps.sweep import preflight_pretrained
from sweeps.tuner import scheduler

RANGES_YAML = Path(__file__).resolve().parent / "spaces" / "bccd_ranges.yaml"


def sampled(*overrides: str):
    """bccd_imbalance's test ranges under ``--search optuna`` (its grid axes fixed to one value)."""
    resolved = resolve(get_sweep("bccd_imbalance"), profile="cpu", smoke=False, path=RANGES_YAML,
                       overrides=("oversampling=false", *overrides))
    return dataclasses.replace(resolved, search="optuna")


def test_a_max_epochs_range_sets_ashas_max_t_to_its_top():
    resolved = sampled('max_epochs={"int": [2, 9]}')
    assert "max_epochs" in resolved.ranges and "max_epochs" not in resolved.fixed
    assert resolved.max_epochs == 9
    assert scheduler(resolved)._max_t == 9


def test_possible_configs_are_the_grid_under_grid_search():
    resolved = dataclasses.replace(sampled("dropout=0.1", "batch_size=[16, 32]"), search="grid")
    assert list(resolved.possible_configs()) == list(resolved.configs())


def test_the_weights_preflight_fetches_a_model_that_only_a_choice_range_names(monkeypatch):
    fetched = []

    class Entry:
        @staticmethod
        def fetch_weights(config, *, data):
            fetched.append(config["model"])

    class Data:
        @staticmethod
        def for_config(config):
            return None, config

    monkeypatch.setattr(sweeps.sweep, "get_trainable", lambda name: Entry)
    resolved = sampled("pretrained=true", 'model={"choice": ["efficientnet_b0", "resnet18"]}')
    assert "model" in resolved.ranges and "model" not in resolved.grid
    preflight_pretrained(resolved, Data())
    assert sorted(fetched) == ["efficientnet_b0", "resnet18"]
