"""Tune pickles what the driver hands it, and Ray's tqdm_ray swaps ``builtins.print`` the first
time a worker's log reaches the driver: from then on the original ``print`` cannot be pickled
("not the same object as builtins.print"). The report passes ``print`` as its echo function, so
its retraining failed whenever that swap came first (issue #11 item 9)."""

from __future__ import annotations

import builtins
import pickle

import pytest
from ray import cloudpickle

from analysis.rerun import RETRAINED, RerunSettings, RetrainRecorder, config_key, confirm_on_test
from analysis.results import load_experiment
from analysis.winners import pick_winners
from sweeps.data import prepare_sweep_data
from sweeps.storage import ExperimentLocation
from sweeps.tuner import RunSettings, build_tuner
from sweeps.wandb_logging import wandb_callbacks
from tests.synthetic_experiment import FIXED, make_experiment, trial
from trainables.checkpoints import STATE_FILE


@pytest.fixture
def swapped_print(monkeypatch):
    """``builtins.print`` swapped by tqdm_ray as a worker's log would swap it; returns the
    original (what ``echo`` defaults to), which is put back afterwards."""
    from ray.experimental import tqdm_ray

    original = builtins.print
    monkeypatch.setattr(builtins, "print", original)      # monkeypatch restores this at teardown
    monkeypatch.setattr(tqdm_ray, "_manager", None)
    monkeypatch.setenv("RAY_TQDM_PATCH_PRINT", "1")
    tqdm_ray.instance()
    assert builtins.print is not original
    return original


def one_trial_experiment(directory):
    """A one-trial bccd_imbalance smoke experiment, one epoch, whose sweep checkpoint holds no
    weights: confirming it retrains one model and evaluates nothing else."""
    only = trial("t_only", [0.6])
    only["config"]["max_epochs"] = 1
    make_experiment(directory, [only])
    for state in directory.glob(f"*/checkpoint_*/{STATE_FILE}"):
        state.unlink()
    return load_experiment(directory)


def test_the_retraining_callback_pickles_without_its_driver_only_parts(tmp_path, swapped_print):
    experiment = load_experiment(make_experiment(tmp_path / "exp", [trial("t_only", [0.6])]))
    config = {**experiment.config("t_only"), "seed": 0}
    recorder = RetrainRecorder({config_key(config): config}, experiment=experiment,
                               evaluators={config_key(config): "evaluator with the test split"}, echo=swapped_print)
    for dumps in (pickle.dumps, cloudpickle.dumps):
        restored = pickle.loads(dumps(recorder))
        assert restored.configs == recorder.configs
        assert restored.echo is None and restored.evaluators == {}
    assert recorder.echo is swapped_print and recorder.evaluators


@pytest.mark.e2e
def test_retraining_on_tune_survives_a_swapped_print(ray_session, shared_data_dir, tmp_path, swapped_print, capsys):
    experiment = one_trial_experiment(tmp_path / "exp")
    settings = RerunSettings(seeds=1, bootstrap=10, data_dir=str(shared_data_dir))
    confirmation = confirm_on_test(experiment, pick_winners(experiment, top_k=1), settings, echo=swapped_print)
    assert confirmation.retrained_now == 1
    assert [model.seed for model in confirmation.predictions[("t_only", RETRAINED)]] == [0]
    assert "[retrain 1/1" in capsys.readouterr().out


@pytest.mark.e2e
def test_a_sweep_tuner_with_its_callbacks_builds_while_print_is_swapped(ray_session, shared_data_dir, tmp_path,
                                                                         swapped_print):
    data = prepare_sweep_data(FIXED, data_dir=str(shared_data_dir))
    location = ExperimentLocation(str(tmp_path), "swapped")
    for search in ("grid", "optuna"):
        settings = RunSettings(search=search, callbacks=wandb_callbacks(FIXED.spec, location))
        build_tuner(FIXED, data, location, settings)            # pickles everything into tuner.pkl
    assert (tmp_path / "swapped" / "tuner.pkl").is_file()
