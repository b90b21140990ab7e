"""End to end: the smoke sweep's report, with its test-split confirmation retrained on Ray Tune."""

from __future__ import annotations

import re
import shutil

import pytest

from analysis.document import cell_text, empty_cells
from analysis.report import main
from analysis.rerun import CACHE_DIR, CHECKPOINT, RETRAINED, RerunSettings, confirm_on_test
from analysis.results import load_experiment
from analysis.study_report import ReportOptions, write_report
from analysis.winners import pick_winners
from sweeps.data import prepare_sweep_data
from sweeps.registry import get_sweep
from sweeps.space import resolve

pytestmark = pytest.mark.e2e

DOCUMENT_TABLES = {"seed 000 §5.1", "seed 000 §6.1", "seed 000 §6.2", "seed 000 §6.3", "seed 000 §8.2",
                   "seed 000 §8.4", "seed 000 §7.2, §8.3"}
FIGURES = {"confusion_matrix.png", "roc_curves.png", "sample_predictions.png", "ablation.png",
           "training_curves.png", "hyperparameters.png", "epochs_per_trial.png", "param_importance.png",
           "parallel_coordinates.png"}


@pytest.fixture(scope="module")
def smoke_report(smoke_sweep, shared_data_dir):
    messages: list[str] = []
    outcome = write_report(ReportOptions(str(smoke_sweep.experiment_dir), seeds=2, data_dir=str(shared_data_dir)),
                           echo=messages.append)
    return outcome, messages


def test_every_table_of_the_document_is_filled(smoke_report):
    outcome, _ = smoke_report
    filled = [table for table in outcome.document.tables if table.source]
    assert DOCUMENT_TABLES <= {table.source for table in filled}
    for table in filled:
        assert not empty_cells(table), (table.source, table.caption)
        unfilled = [cell_text(v) for v in table.frame.to_numpy().ravel() if cell_text(v) in ("n/a", "nan")]
        assert not unfilled, (table.source, table.caption, table.frame)
    assert "[TO FILL]" not in outcome.markdown.read_text()


def test_every_figure_exists_and_is_embedded_in_the_html(smoke_report):
    outcome, _ = smoke_report
    names = {figure.path.name for figure in outcome.document.figures}
    assert FIGURES <= names
    for figure in outcome.document.figures:
        assert figure.path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"figures/{figure.path.name}" in outcome.markdown.read_text()
    html = outcome.html.read_text()
    assert html.count("src='data:image/png;base64,") == len(outcome.document.figures)
    assert not re.search(r"src=['\"](?!data:)", html)                      # nothing loaded from outside
    assert (outcome.out_dir / "results.csv").read_text().count("\n") == 13  # header + 12 trials


def test_candidates_are_retrained_with_seeds_through_tune_and_cached(smoke_report, smoke_sweep, shared_data_dir):
    outcome, messages = smoke_report
    confirmation = outcome.confirmation
    candidates = {trial_id for trial_id, _ in confirmation.predictions}
    assert confirmation.retrained_now == 2 * len(candidates)
    assert any(m.startswith("[retrain 1/") for m in messages)                 # progress lines
    reruns = list((smoke_sweep.experiment_dir / "reruns").glob("rerun_*/*/progress.csv"))
    assert len(reruns) == 2 * len(candidates)
    again = write_report(ReportOptions(str(smoke_sweep.experiment_dir), seeds=2, data_dir=str(shared_data_dir)),
                         echo=lambda _: None)
    assert again.confirmation.retrained_now == 0
    assert again.confirmation.estimates.equals(confirmation.estimates)
    assert len(list((smoke_sweep.experiment_dir / "reruns").glob("rerun_*"))) == 1


def test_retrain_winner_retrains_the_overall_winner_alone(smoke_report, smoke_sweep, shared_data_dir, tmp_path):
    outcome, _ = smoke_report
    candidates = {trial_id for trial_id, _ in outcome.confirmation.predictions}
    assert len(candidates) > 1
    messages: list[str] = []
    winner_only = write_report(ReportOptions(str(smoke_sweep.experiment_dir), seeds=2, retrain="winner",
                                             out=str(tmp_path / "report"), data_dir=str(shared_data_dir)),
                               echo=messages.append)
    confirmation = winner_only.confirmation
    retrained = {trial_id for trial_id, kind in confirmation.predictions if kind == RETRAINED}
    assert retrained == {confirmation.reference}
    assert {trial_id for trial_id, _ in confirmation.predictions} == candidates      # the others: checkpoints
    assert any("--retrain winner: the overall winner only" in m for m in messages)
    assert "the overall winner alone (--retrain winner) retrained from scratch" in winner_only.markdown.read_text()
    with pytest.raises(SystemExit) as refused:
        main([str(smoke_sweep.experiment_dir), "--retrain", "everyone"])
    assert refused.value.code == 2


def test_a_resumed_trial_is_evaluated_again_and_an_unchanged_one_is_not(smoke_sweep, shared_data_dir, tmp_path):
    finished = smoke_sweep.summary[smoke_sweep.summary["stop_reason"] == "completed"].iloc[0]
    directory = tmp_path / "exp"
    directory.mkdir()
    for name in ("sweep.json", "data_audit.json"):
        shutil.copy2(smoke_sweep.experiment_dir / name, directory / name)
    shutil.copytree(smoke_sweep.experiment_dir / finished["trial_id"], directory / finished["trial_id"])
    results = directory / finished["trial_id"] / "result.json"
    every_epoch = results.read_text()
    results.write_text(every_epoch.splitlines(keepends=True)[0])       # interrupted after its first epoch
    settings = RerunSettings(seeds=0, bootstrap=10, data_dir=str(shared_data_dir))

    def confirmed_training() -> dict:
        experiment = load_experiment(directory)
        confirmation = confirm_on_test(experiment, pick_winners(experiment, top_k=1), settings, echo=lambda _: None)
        return confirmation.predictions[(finished["trial_id"], CHECKPOINT)][0].training

    assert confirmed_training()["stop_reason"] == "interrupted"
    cached = sorted((directory / CACHE_DIR).iterdir())
    assert confirmed_training()["stop_reason"] == "interrupted"
    assert sorted((directory / CACHE_DIR).iterdir()) == cached                 # unchanged: its cache is reused
    results.write_text(every_epoch)                                            # resumed to its end
    training = confirmed_training()
    assert (training["stop_reason"], training["epochs"]) == ("completed", finished["epochs"])


def test_the_ablation_names_every_arm_and_the_winner(smoke_report):
    outcome, _ = smoke_report
    text = outcome.markdown.read_text()
    for arm in ("1. Baseline", "2. Weighted Loss", "3. Oversampling", "4. Final Model"):
        assert arm in text
    assert "Statistically tied with the winner" in text


def test_the_sweep_never_gets_the_test_split(shared_data_dir):
    resolved = resolve(get_sweep("bccd_imbalance"), profile="cpu", smoke=True)
    data = prepare_sweep_data(resolved, data_dir=str(shared_data_dir))
    assert all(set(variant.splits) == {"train", "val"} for variant in data.variants.values())
    # tests/test_test_split_isolation.py checks what every sweep's trainable is handed.


def test_cli_reports_a_missing_directory_clearly(tmp_path, capsys):
    assert main([str(tmp_path / "missing")]) == 2
    assert "no such experiment directory" in capsys.readouterr().err
