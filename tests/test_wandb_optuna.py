"""W&B logging (offline here, and never leaking the key) and Optuna search."""

from __future__ import annotations

import optuna
import pandas as pd
import pytest

from sweeps.registry import get_sweep
from sweeps.space import resolve
from sweeps.sweep import SweepOptions, run_sweep
from sweeps.tuner import RunSettings, search_algorithm, search_space
from tests.wandb_records import history, records

pytestmark = pytest.mark.e2e
DUMMY_KEY = "medsweep0dummy0secret0key0a1b2c3d4e5f6a7b"
TWO_TRIALS = ("lr=[1e-3]", "weighted_loss=false")


def _only(paths):
    paths = list(paths)
    assert len(paths) == 1, paths
    return paths[0]


def test_wandb_offline_runs_hold_every_epoch_and_never_the_api_key(ray_session, shared_data_dir, tmp_path,
                                                                   monkeypatch, capfd):
    monkeypatch.setenv("WANDB_API_KEY", DUMMY_KEY)
    monkeypatch.setenv("WANDB_MODE", "offline")
    outcome = run_sweep(SweepOptions(name="bccd_imbalance", smoke=True, wandb=True, storage=str(tmp_path),
                                     data_dir=str(shared_data_dir), overrides=TWO_TRIALS))
    assert outcome.exit_code == 0
    experiment = outcome.experiment_dir
    for trial in outcome.summary["trial_id"]:
        run_file = _only((experiment / trial / "wandb").glob("offline-run-*/run-*.wandb"))
        rows = history(run_file)
        progress = pd.read_csv(experiment / trial / "progress.csv")
        assert [r["epoch"] for r in rows] == list(progress["epoch"])
        assert [r["val_macro_f1"] for r in rows] == pytest.approx(list(progress["val_macro_f1"]))
        run = _only(r.run for r in records(run_file) if r.WhichOneof("record_type") == "run")
        assert run.run_group == experiment.name
        assert set(run.tags) == {"bccd_imbalance", "study1-seed000"}
    summary_file = _only((experiment / "wandb").glob("offline-run-*/run-*.wandb"))
    artifacts = [r.artifact for r in records(summary_file) if r.WhichOneof("record_type") == "artifact"]
    results = _only(a for a in artifacts if a.type == "sweep-results")
    assert {m.path for m in results.manifest.contents} == {"data_audit.json", "summary.csv"}
    printed = capfd.readouterr()
    assert "wandb sync" in printed.out or "wandb sync" in printed.err
    leaks = [str(p) for p in experiment.rglob("*") if p.is_file() and DUMMY_KEY.encode() in p.read_bytes()]
    assert leaks == []
    assert DUMMY_KEY not in printed.out + printed.err


def _proposals(seed: int) -> list[dict]:
    resolved = resolve(get_sweep("bccd_imbalance"), profile="cpu", smoke=True)
    algorithm = search_algorithm(resolved, RunSettings(search="optuna", seed=seed), "study")
    algorithm.set_search_properties("val_macro_f1", "max", search_space(resolved, "optuna"))
    return [{k: algorithm.suggest(f"trial{i}")[k] for k in resolved.grid} for i in range(8)]


def test_optuna_with_the_same_seed_proposes_the_same_configs():
    first, again, other = _proposals(42), _proposals(42), _proposals(7)
    assert first == again
    assert first != other
    assert all(p["lr"] in (1e-4, 3e-4, 1e-3) for p in first)


def test_optuna_sweep_with_asha_finishes_and_keeps_its_study(ray_session, shared_data_dir, tmp_path):
    database = f"sqlite:///{tmp_path / 'optuna.db'}"
    outcome = run_sweep(SweepOptions(name="bccd_imbalance", smoke=True, search="optuna", num_samples=4,
                                     optuna_storage=database, storage=str(tmp_path / "runs"),
                                     data_dir=str(shared_data_dir)))
    assert outcome.exit_code == 0 and len(outcome.summary) == 4
    studies = optuna.study.get_all_study_summaries(database)
    assert [(s.study_name, s.n_trials) for s in studies] == [(outcome.experiment_dir.name, 4)]
