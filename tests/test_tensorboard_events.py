"""TensorBoard files of a smoke experiment, read with tensorboard's own event reader: every
trial's events hold one val_macro_f1 point per epoch and the trial's searched hyperparameters."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

pytestmark = pytest.mark.e2e
AXES = ("weighted_loss", "oversampling", "lr")


def _events(trial_dir) -> EventAccumulator:
    files = sorted(trial_dir.glob("events.out.tfevents.*"))
    assert len(files) == 1, f"{trial_dir}: expected one TensorBoard event file, found {files}"
    events = EventAccumulator(str(files[0]), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    return events


def _hparams(events: EventAccumulator) -> dict:
    """The hyperparameters of the trial's hparams session (what TensorBoard's HPARAMS tab shows)."""
    content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    values = HParamsPluginData.FromString(content).session_start_info.hparams
    return {name: getattr(value, value.WhichOneof("kind")) for name, value in values.items()}


def test_each_trial_has_per_epoch_metrics_and_its_hyperparameters_in_tensorboard(smoke_sweep):
    experiment = smoke_sweep.experiment_dir
    trials = list(smoke_sweep.summary["trial_id"])
    assert trials
    for trial in trials:
        events = _events(experiment / trial)
        progress = pd.read_csv(experiment / trial / "progress.csv")
        f1 = events.Scalars("ray/tune/val_macro_f1")
        assert [point.step for point in f1] == list(progress["epoch"]) == list(range(1, len(progress) + 1))
        assert [point.value for point in f1] == pytest.approx(list(progress["val_macro_f1"]), rel=1e-6)
        params = json.loads((experiment / trial / "params.json").read_text())
        hparams = _hparams(events)
        # Ray's TBX logger writes the searched values only (the trial's evaluated params), not fixed ones.
        assert hparams == pytest.approx({k: params[k] for k in AXES}, rel=1e-6)
