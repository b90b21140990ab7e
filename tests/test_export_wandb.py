"""The W&B sweep export: valid against W&B's own schema, the grid survives the round trip, and
ranges become W&B distributions."""

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
from sweeps.space import SearchSpaceError, resolve

RANGES_YAML = Path(__file__).resolve().parent / "spaces" / "bccd_ranges.yaml"


@pytest.fixture(scope="module")
def wandb_schema() -> dict:
    wheels = sorted((Path(sys.prefix) / "share" / "wandb-sweeps").glob("sweeps-*.whl"))
    if not wheels:
        pytest.fail("W&B's sweep schema wheel is missing from .venv/share/wandb-sweeps; run `make install`")
    with zipfile.ZipFile(wheels[-1]) as wheel:
        return json.loads(wheel.read("sweeps/config/schema.json"))


@pytest.mark.parametrize("name", sorted(SWEEPS))
@pytest.mark.parametrize("profile", ["full", "cpu"])
@pytest.mark.parametrize("method", ["grid", "bayes"])
def test_export_is_a_valid_wandb_sweep_config(name, profile, method, wandb_schema):
    config = wandb_sweep_config(resolve(get_sweep(name), profile=profile), method)
    jsonschema.validate(config, wandb_schema)
    assert config["method"] == method


def _ranged(*overrides: str):
    return resolve(get_sweep("bccd_imbalance"), profile="full", overrides=overrides, path=RANGES_YAML)


@pytest.mark.parametrize("method", ["random", "bayes"])
def test_ranges_export_as_wandb_distributions_valid_against_the_schema(method, wandb_schema):
    config = wandb_sweep_config(_ranged("batch_size=[16,32]"), method)
    jsonschema.validate(config, wandb_schema)
    parameters = config["parameters"]
    assert parameters["lr"] == {"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-2}
    assert parameters["dropout"] == {"distribution": "uniform", "min": 0.0, "max": 0.5}
    assert parameters["oversampling"] == {"values": [False, True]}
    assert parameters["weighted_loss"] == {"values": [False, True]}
    assert parameters["batch_size"] == {"values": [16, 32]}


def test_an_int_range_exports_as_int_uniform(wandb_schema):
    config = wandb_sweep_config(_ranged("batch_size={int: [8, 64]}"), "random")
    jsonschema.validate(config, wandb_schema)
    assert config["parameters"]["batch_size"] == {"distribution": "int_uniform", "min": 8, "max": 64}


def test_an_int_log_range_is_refused_since_wandb_cannot_express_it():
    with pytest.raises(SearchSpaceError, match=rf"^{RANGES_YAML}: grid.batch_size is an int range with log: true"):
        wandb_sweep_config(_ranged(), "bayes")


def test_a_grid_export_takes_the_values_and_refuses_a_range_without_them(wandb_schema):
    config = wandb_sweep_config(_ranged("oversampling=[false,true]", "dropout=0.1"), "grid")
    jsonschema.validate(config, wandb_schema)
    assert config["parameters"]["lr"] == {"values": [1e-4, 3e-4, 1e-3]}
    assert config["parameters"]["batch_size"] == {"values": [16, 32]}
    with pytest.raises(SearchSpaceError, match="grid.oversampling is a choice range with no values"):
        wandb_sweep_config(_ranged(), "grid")


def test_the_schema_check_rejects_a_broken_distribution(wandb_schema):
    config = wandb_sweep_config(_ranged("batch_size=[16,32]"), "bayes")
    config["parameters"]["lr"]["min"] = 0.0
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(config, wandb_schema)


def test_the_cli_exports_a_range_set_on_the_command_line(tmp_path):
    out = tmp_path / "sweep.yaml"
    assert export_main(["bccd_imbalance", "--method", "random", "--set", "lr={loguniform: [1e-5, 1e-2]}",
                        "--out", str(out)]) == 0
    exported = yaml.safe_load(out.read_text())
    assert exported["method"] == "random"
    assert exported["parameters"]["lr"] == {"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-2}


def test_the_cli_reports_a_range_without_values_for_the_grid(capsys):
    assert export_main(["bccd_imbalance", "--set", "lr={loguniform: [1e-5, 1e-2]}"]) == 2
    assert "grid.lr is a loguniform range with no values" in capsys.readouterr().err


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
