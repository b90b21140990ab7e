"""The W&B sweep export: valid against W&B's own schema, and the grid survives the round trip."""

from __future__ import annotations

import itertools
import json
import sys
import zipfile
from pathlib import Path

import jsonschema
import pytest
import yaml

from sweeps.export_wandb import main as export_main
from sweeps.export_wandb import wandb_sweep_config
from sweeps.registry import SWEEPS, get_sweep
from sweeps.run import build_parser, options_from_args
from sweeps.space import resolve


@pytest.fixture(scope="module")
def wandb_schema() -> dict:
    wheels = sorted((Path(sys.prefix) / "share" / "wandb-sweeps").glob("sweeps-*.whl"))
    if not wheels:
        pytest.fail("W&B's sweep schema wheel is missing from .venv/share/wandb-sweeps; run `make install`")
    with zipfile.ZipFile(wheels[-1]) as wheel:
        return json.loads(wheel.read("sweeps/config/schema.json"))


@pytest.mark.parametrize("name", sorted(SWEEPS))
@pytest.mark.parametrize("profile", ["full", "cpu"])
def test_export_is_a_valid_wandb_sweep_config(name, profile, wandb_schema):
    config = wandb_sweep_config(resolve(get_sweep(name), profile=profile))
    jsonschema.validate(config, wandb_schema)


def test_grid_round_trips_through_the_export(tmp_path, capsys):
    assert export_main(["bccd_imbalance", "--out", str(tmp_path / "sweep.yaml")]) == 0
    exported = yaml.safe_load((tmp_path / "sweep.yaml").read_text())
    resolved = resolve(get_sweep("bccd_imbalance"), profile="full")
    axes = {k: v["values"] for k, v in exported["parameters"].items() if "values" in v}
    fixed = {k: v["value"] for k, v in exported["parameters"].items() if "value" in v}
    assert axes == resolved.grid and fixed == resolved.fixed
    assert len(list(itertools.product(*axes.values()))) == resolved.grid_size == 12
    assert exported["method"] == "grid"
    assert exported["metric"] == {"name": "val_macro_f1", "goal": "maximize"}
    assert exported["early_terminate"] == {"type": "hyperband", "min_iter": 5, "eta": 3}


def test_an_agents_parameter_file_becomes_one_trial(tmp_path):
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"lr": 0.0003, "weighted_loss": True, "oversampling": False}))
    options = options_from_args(build_parser().parse_args(["bccd_imbalance", "--set-file", str(params)]))
    resolved = resolve(get_sweep("bccd_imbalance"), profile="full", overrides=options.overrides)
    assert resolved.grid_size == 1
    assert (resolved.fixed["lr"], resolved.fixed["weighted_loss"], resolved.fixed["oversampling"]) == (
        0.0003, True, False)


def test_unknown_sweep_is_an_error_listing_valid_ones(capsys):
    assert export_main(["nope"]) == 2
    from sweeps.registry import SWEEPS
    assert f"valid sweeps: {', '.join(sorted(SWEEPS))}" in capsys.readouterr().err


def test_the_schema_check_rejects_a_broken_export(wandb_schema):
    config = wandb_sweep_config(resolve(get_sweep("bccd_imbalance"), profile="full"))
    config["early_terminate"] = {"type": "hyperband", "min_iter": "five"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(config, wandb_schema)
