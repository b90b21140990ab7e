"""End to end on the real BCCD copy: the smoke sweep through Ray Tune with ASHA."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from sweeps.run import SweepOptions, run_sweep
from sweeps.summary import KNOWN_REASONS, STOPPED_BY_ASHA
from trainables.engine import META_FILE, STATE_FILE

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def smoke_run(ray_session, shared_data_dir, tmp_path_factory):
    storage = tmp_path_factory.mktemp("runs")
    return run_sweep(SweepOptions(name="bccd_imbalance", smoke=True, storage=str(storage),
                                  data_dir=str(shared_data_dir)))


def test_smoke_sweep_runs_twelve_trials_with_asha_pruning(smoke_run):
    rows = smoke_run.summary
    assert smoke_run.exit_code == 0
    assert len(rows) == 12
    assert set(rows["stop_reason"]) <= set(KNOWN_REASONS) - {"errored"}
    assert (rows["stop_reason"] == STOPPED_BY_ASHA).any()
    assert (rows.loc[rows["stop_reason"] == STOPPED_BY_ASHA, "epochs"] < 2).all()
    assert rows[["weighted_loss", "oversampling", "lr"]].drop_duplicates().shape[0] == 12


def test_summary_csv_and_audit_are_written(smoke_run):
    directory = smoke_run.experiment_dir
    summary = pd.read_csv(directory / "summary.csv")
    assert list(summary["trial_id"]) == list(smoke_run.summary["trial_id"])
    assert {"weighted_loss", "oversampling", "lr", "status", "stop_reason", "epochs",
            "best_val_macro_f1"} <= set(summary.columns)
    audit = json.loads((directory / "data_audit.json").read_text())
    assert audit["totals"] == {"annotations_read": 4888, "kept": 4886, "dropped": 2}
    assert json.loads((directory / "sweep.json").read_text())["smoke"] is True


def test_every_trial_keeps_its_best_checkpoint(smoke_run):
    for path in smoke_run.summary["path"]:
        from pathlib import Path
        checkpoints = sorted(Path(path).glob("checkpoint_*"))
        assert len(checkpoints) == 1, path
        meta = json.loads((checkpoints[0] / META_FILE).read_text())
        assert (checkpoints[0] / STATE_FILE).is_file()
        assert meta["class_names"] == ["RBC", "WBC", "Platelets"]
        progress = pd.read_csv(Path(path) / "progress.csv")
        best_epoch = progress.loc[progress["val_macro_f1"].idxmax(), "epoch"]
        assert meta["epoch"] == best_epoch


def test_each_epoch_reports_the_promised_metrics(smoke_run):
    from pathlib import Path
    progress = pd.read_csv(Path(smoke_run.summary["path"].iloc[0]) / "progress.csv")
    expected = {"epoch", "train_loss", "val_loss", "val_accuracy", "val_macro_f1", "val_balanced_accuracy",
                "val_f1_RBC", "val_f1_WBC", "val_f1_Platelets", "val_recall_RBC", "val_recall_WBC",
                "val_recall_Platelets", "lr", "epoch_seconds"}
    assert expected <= set(progress.columns)


def test_too_high_learning_rate_ends_every_trial_as_diverged(ray_session, shared_data_dir, tmp_path):
    outcome = run_sweep(SweepOptions(name="bccd_imbalance", smoke=True, storage=str(tmp_path),
                                     data_dir=str(shared_data_dir), overrides=("lr=[5.0]",)))
    rows = outcome.summary
    assert outcome.exit_code == 0
    assert len(rows) == 4 and (rows["stop_reason"] == "diverged").all()
    summary = pd.read_csv(outcome.experiment_dir / "summary.csv")
    assert summary["detail"].str.contains("divergence bound|non-finite").all()
