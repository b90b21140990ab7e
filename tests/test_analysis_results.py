"""Loading experiment directories and picking winners, on synthetic directories (no training)."""

from __future__ import annotations

import math

import pytest

from analysis.results import ExperimentError, load_experiment
from analysis.study_report import ReportOptions, write_report
from analysis.winners import pick_winners, rank_trials
from tests.synthetic_experiment import make_experiment, trial
from trainables.errors import UnknownNameError

NAN = math.nan


def every_ending(directory, *, summary=True):
    return make_experiment(directory, [
        trial("t_completed", [0.2, 0.5, 0.6], lr=1e-4),
        trial("t_early", [0.4, 0.7, 0.65], lr=3e-4, stop_reason="early_stopped_patience"),
        trial("t_asha", [0.1], lr=1e-3, stop_reason=""),
        trial("t_diverged", [0.9, NAN], weighted_loss=True, stop_reason="diverged"),
        trial("t_errored", [0.95], weighted_loss=True, lr=3e-4, status="ERROR", stop_reason="",
              error="RuntimeError: CUDA out of memory"),
        trial("t_over", [0.3, 0.55, 0.62], oversampling=True),
    ], summary=summary)


def test_one_row_per_trial_with_status_reason_epochs_and_values(tmp_path):
    experiment = load_experiment(every_ending(tmp_path / "exp"))
    rows = experiment.trials.set_index("trial_id")
    assert rows["stop_reason"].to_dict() == {
        "t_completed": "completed", "t_early": "early_stopped_patience", "t_asha": "stopped_by_asha",
        "t_diverged": "diverged", "t_errored": "errored", "t_over": "completed"}
    assert rows.loc["t_completed", "epochs"] == 3 and rows.loc["t_asha", "epochs"] == 1
    assert rows.loc["t_early", "best_val_macro_f1"] == 0.7 and rows.loc["t_early", "last_val_macro_f1"] == 0.65
    assert rows.loc["t_early", "best_epoch"] == 2
    assert rows.loc["t_early", "best_val_loss"] == pytest.approx(1 / 3)      # losses: lower is better
    assert rows.loc["t_completed", "wall_seconds"] == pytest.approx(6.0)
    assert rows.loc["t_early", "best_checkpoint"].endswith("checkpoint_000001")
    assert "out of memory" in rows.loc["t_errored", "detail"]
    assert "non-finite" in rows.loc["t_diverged", "detail"]
    assert rows.loc["t_completed", "config/lr"] == 1e-4
    assert set(experiment.epochs["trial_id"]) == set(rows.index)
    assert len(experiment.epochs) == 3 + 3 + 1 + 2 + 1 + 3


def test_without_summary_csv_the_stop_reasons_come_from_tune_state(tmp_path):
    rows = load_experiment(every_ending(tmp_path / "exp", summary=False)).trials.set_index("trial_id")
    assert rows.loc["t_asha", "stop_reason"] == "stopped_by_asha"
    assert rows.loc["t_errored", "stop_reason"] == "errored"


def test_an_interrupted_experiment_loads_with_running_and_pending_trials(tmp_path):
    directory = make_experiment(tmp_path / "exp", [
        trial("t_done", [0.3, 0.4]),
        trial("t_running", [0.5], status="RUNNING", stop_reason=""),
    ], summary=False, pending=("t_pending",))
    experiment = load_experiment(directory)
    rows = experiment.trials.set_index("trial_id")
    assert rows.loc["t_running", "stop_reason"] == "interrupted"
    assert "--resume" in rows.loc["t_running", "detail"]
    assert rows.loc["t_pending", "stop_reason"] == "not_started" and rows.loc["t_pending", "epochs"] == 0
    assert rows.loc["t_done", "stop_reason"] == "completed"
    assert experiment.config("t_running")["lr"] == 1e-3
    assert pick_winners(experiment).overall == "t_running"     # the best value seen so far may win


def test_begun_trials_of_a_killed_driver_are_interrupted_even_where_storage_lags(tmp_path):
    # As a SIGKILLed driver leaves them: Tune had the trials running and their workers had
    # written a checkpoint, but the driver's last sync of their results (or params.json) was older.
    directory = make_experiment(tmp_path / "exp", [
        trial("t_results_unsynced", [0.5], status="RUNNING", stop_reason="", synced=0),
        trial("t_params_unsynced", [0.4], status="RUNNING", stop_reason="", synced=0, params_synced=False),
        trial("t_resumed", [0.3], lr=1e-4, status="PENDING", stop_reason="", synced=0),
        trial("t_paused", [], status="PAUSED", stop_reason=""),
    ], summary=False, pending=("t_pending",))
    experiment = load_experiment(directory)
    rows = experiment.trials.set_index("trial_id")
    assert rows["stop_reason"].to_dict() == {
        "t_results_unsynced": "interrupted", "t_params_unsynced": "interrupted", "t_resumed": "interrupted",
        "t_paused": "interrupted", "t_pending": "not_started"}
    assert rows.loc["t_params_unsynced", "best_checkpoint"].endswith("checkpoint_000000")
    assert experiment.config("t_params_unsynced")["lr"] == 1e-3            # from Tune's state
    assert rows.loc["t_pending", "path"] == ""


def test_a_missing_or_corrupt_directory_is_a_clear_error(tmp_path):
    with pytest.raises(ExperimentError, match="no such experiment directory"):
        load_experiment(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ExperimentError, match="sweep.json is missing"):
        load_experiment(tmp_path / "empty")
    directory = every_ending(tmp_path / "exp")
    (directory / "sweep.json").write_text("{not json")
    with pytest.raises(ExperimentError, match="sweep.json: cannot read"):
        load_experiment(directory)
    directory = every_ending(tmp_path / "exp2")
    next(directory.glob("experiment_state-*.json")).write_text('{"trial_data": 5}')
    with pytest.raises(ExperimentError, match="experiment state is unreadable"):
        load_experiment(directory)


def test_diverged_and_errored_trials_never_win_even_with_the_best_values(tmp_path):
    winners = pick_winners(load_experiment(every_ending(tmp_path / "exp")))
    assert winners.overall == "t_early"
    assert "t_diverged" not in set(winners.ranking["trial_id"]) and "t_errored" not in set(winners.ranking["trial_id"])
    assert winners.per_group == {(False, False): "t_early", (False, True): "t_over"}
    roles = {c.trial_id: c.roles for c in winners.candidates}
    assert roles["t_early"] == ("winner", "best of weighted_loss=False, oversampling=False")
    assert roles["t_over"] == ("top 2", "best of weighted_loss=False, oversampling=True")
    assert roles["t_completed"] == ("top 3",)
    assert (True, False) not in winners.per_group            # that arm only diverged or errored


def test_ties_go_to_the_cheaper_trial_then_the_earlier_id(tmp_path):
    experiment = load_experiment(make_experiment(tmp_path / "exp", [
        trial("t_b", [0.5, 0.6, 0.6]),
        trial("t_a", [0.6, 0.6, 0.6], lr=1e-4),
        trial("t_c", [0.6], lr=3e-4, stop_reason=""),
    ]))
    ranking = rank_trials(experiment.trials, metric="val_macro_f1", mode="max")
    assert list(ranking["trial_id"]) == ["t_c", "t_a", "t_b"]
    assert list(rank_trials(experiment.trials, metric="val_macro_f1", mode="min")["trial_id"]) == ["t_c", "t_a", "t_b"]


def test_top_k_limits_the_overall_candidates(tmp_path):
    experiment = load_experiment(every_ending(tmp_path / "exp"))
    assert [c.trial_id for c in pick_winners(experiment, top_k=1).candidates] == ["t_early", "t_over"]


def test_report_of_an_experiment_with_no_finished_trial_says_so(tmp_path):
    directory = make_experiment(tmp_path / "exp", [
        trial("t_diverged", [NAN], stop_reason="diverged"),
        trial("t_errored", [], status="ERROR", stop_reason="", error="ValueError: bad input"),
    ])
    outcome = write_report(ReportOptions(str(directory), seeds=0), echo=lambda _: None)
    text = outcome.markdown.read_text()
    assert "No trial finished with a finite val_macro_f1" in text
    assert "t_diverged" in text and "bad input" in text
    assert outcome.confirmation is None
    assert (outcome.out_dir / "results.csv").is_file() and outcome.html.is_file()


def test_count_mae_keeps_its_lowest_epoch_as_best_and_bookkeeping_is_no_metric(tmp_path):
    """results.csv is the trials table: a count error's best is its minimum, a score's its
    maximum, and the engine's learning rate and timings get no best/last columns."""
    experiment = load_experiment(make_experiment(tmp_path / "exp", [
        trial("t_a", [0.2, 0.5, 0.4], extra={"val_count_mae": [3.0, 1.5, 2.0], "val_map50": [0.1, 0.3, 0.2]}),
    ]))
    row = experiment.trials.iloc[0]
    assert row["best_val_count_mae"] == 1.5 and row["last_val_count_mae"] == 2.0
    assert row["best_val_map50"] == 0.3 and row["best_val_loss"] == pytest.approx(1 / 3)
    assert not {"best_lr", "best_epoch_seconds", "best_setup_seconds", "last_lr"} & set(experiment.trials.columns)


def test_an_undeclared_metric_in_an_experiment_is_an_error_saying_where_to_declare_it(tmp_path):
    directory = make_experiment(tmp_path / "exp", [trial("t_a", [0.2, 0.5], extra={"val_hausdorff": [4.0, 3.0]})])
    with pytest.raises(UnknownNameError, match=r"'val_hausdorff'.*trainables/metrics/directions\.py"):
        load_experiment(directory)


def test_an_experiment_given_as_a_file_uri_loads_like_its_path(tmp_path):
    directory = every_ending(tmp_path / "exp")
    by_uri = load_experiment(directory.resolve().as_uri())
    by_path = load_experiment(directory)
    assert by_uri.directory == by_path.directory
    assert by_uri.trials.equals(by_path.trials)


def test_an_experiment_on_remote_storage_is_mirrored_once_into_the_cache(tmp_path, monkeypatch):
    import pyarrow.fs as pafs
    directory = every_ending(tmp_path / "exp")
    bucket = pafs._MockFileSystem()
    pafs.copy_files(str(directory), "runs/exp", destination_filesystem=bucket)
    import analysis.results
    monkeypatch.setattr(analysis.results, "filesystem_of", lambda uri: (bucket, "runs/exp"))
    monkeypatch.setenv("MEDSWEEP_CACHE_DIR", str(tmp_path / "cache"))
    experiment = load_experiment("s3://bucket/runs/exp")
    mirror = tmp_path / "cache" / "experiments" / "s3" / "runs" / "exp"
    assert experiment.directory == mirror
    original = load_experiment(directory).trials
    located = ["best_checkpoint", "path"]
    assert experiment.trials.drop(columns=located).equals(original.drop(columns=located))
    assert experiment.trials["best_checkpoint"].dropna().str.startswith(str(mirror)).all()
