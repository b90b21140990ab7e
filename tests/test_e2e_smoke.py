"""End to end on the real BCCD copy: the smoke sweep through Ray Tune with ASHA."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sweeps.summary import KNOWN_REASONS, STOPPED_BY_ASHA
from sweeps.sweep import SweepOptions, run_sweep
from trainables.checkpoints import META_FILE, STATE_FILE

pytestmark = pytest.mark.e2e


def _reasons(rows: pd.DataFrame) -> dict[str, str]:
    return dict(zip(rows["trial_id"], rows["stop_reason"]))


@pytest.fixture(scope="module")
def smoke_run(smoke_sweep):
    return smoke_sweep


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
    # BCCD's own split lists put two shots of one field of view in train and val.
    assert audit["leakage"]["exact_groups"] == 0
    near = [{key: pair[key] for key in ("a", "b", "bits")} for pair in audit["leakage"]["near"]]
    assert {"a": "train/BloodImage_00038", "b": "val/BloodImage_00037", "bits": 3} in near
    assert all(pair["similarity"] >= audit["leakage"]["min_similarity"] for pair in audit["leakage"]["near"])
    assert json.loads((directory / "sweep.json").read_text())["smoke"] is True


def test_every_trial_keeps_its_best_and_latest_checkpoints(smoke_run):
    for path in smoke_run.summary["path"]:
        metas = {json.loads((c / META_FILE).read_text())["epoch"]: c for c in Path(path).glob("checkpoint_*")}
        assert all((c / STATE_FILE).is_file() for c in metas.values())
        progress = pd.read_csv(Path(path) / "progress.csv")
        kept = {epoch: json.loads((c / META_FILE).read_text()) for epoch, c in metas.items()}
        seen = dict(zip(progress["epoch"], progress["val_macro_f1"]))
        context = f"{path}: kept epochs {sorted(kept)}, reported {seen}"
        # A trial that diverged reports its last epoch without a checkpoint (and with a NaN metric).
        checkpointed = {epoch: value for epoch, value in seen.items() if np.isfinite(value)}
        assert max(checkpointed) in kept and len(kept) <= 2, context
        assert max(m["value"] for m in kept.values()) == pytest.approx(max(checkpointed.values())), context
        assert all(m["class_names"] == ["RBC", "WBC", "Platelets"] for m in kept.values())


def test_each_epoch_reports_the_promised_metrics(smoke_run):
    progress = pd.read_csv(Path(smoke_run.summary["path"].iloc[0]) / "progress.csv")
    expected = {"epoch", "train_loss", "val_loss", "val_accuracy", "val_macro_f1", "val_balanced_accuracy",
                "val_f1_RBC", "val_f1_WBC", "val_f1_Platelets", "val_recall_RBC", "val_recall_WBC",
                "val_recall_Platelets", "lr", "epoch_seconds"}
    assert expected <= set(progress.columns)


def test_too_high_learning_rate_ends_every_trial_as_diverged(ray_session, shared_data_dir, tmp_path, capfd):
    outcome = run_sweep(SweepOptions(name="bccd_imbalance", smoke=True, storage=str(tmp_path),
                                     data_dir=str(shared_data_dir), overrides=("lr=[5.0]",)))
    printed = "".join(capfd.readouterr())
    # Without --verbose Tune prints nothing of its own (its default engine printed this box even
    # at verbose 0; tests/test_tune_output.py).
    assert "Configuration for experiment" not in printed and "trials in" in printed
    rows = outcome.summary
    assert outcome.exit_code == 0
    assert len(rows) == 4 and (rows["stop_reason"] == "diverged").all()
    summary = pd.read_csv(outcome.experiment_dir / "summary.csv")
    assert summary["detail"].str.contains("divergence bound|non-finite").all()


def test_resume_of_a_finished_experiment_retrains_nothing(smoke_run, shared_data_dir):
    directory = smoke_run.experiment_dir
    before = {p: len(pd.read_csv(p)) for p in directory.glob("*/progress.csv")}
    outcome = run_sweep(SweepOptions(name="bccd_imbalance", resume=True, storage=str(directory.parent),
                                     experiment_name=directory.name, data_dir=str(shared_data_dir)))
    assert outcome.exit_code == 0 and outcome.experiment_dir == directory
    assert _reasons(outcome.summary) == _reasons(smoke_run.summary)
    assert {p: len(pd.read_csv(p)) for p in directory.glob("*/progress.csv")} == before
