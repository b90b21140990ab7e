"""The report's claim checks and ablation on synthetic experiments with test results set by
hand (no data, no training): a tie reads "tied", never "yes"; the ablation says how much
training each arm got and flags an arm ASHA pruned at its first rung; the confirmation
retrains at the full budget without ASHA."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
from ray import tune

from analysis import rerun
from analysis.document import Paragraph, Table
from analysis.rerun import CHECKPOINT, RETRAINED, Confirmation, ModelPredictions, RerunSettings
from analysis.results import load_experiment
from analysis.sections.base import ReportContext
from analysis.sections.classification import ablation
from analysis.sections.common import checks
from analysis.winners import pick_winners
from sweeps import tuner
from sweeps.registry import get_sweep
from sweeps.report_spec import BestGroup, Check
from tests.synthetic_experiment import make_experiment, trial

ARMS = {"1. Baseline": (False, False), "2. Weighted Loss": (True, False), "3. Oversampling": (False, True),
        "4. Final Model": (True, True)}
CLAIM = Check(source="seed 000 §8.3", statement="The final model is the best", quantity=BestGroup(metric="macro_f1"),
              op="=", value="4. Final Model")


def arm_trial(label: str, values: list[float], *, suffix: str = "", stop_reason: str = "completed") -> dict:
    weighted_loss, oversampling = ARMS[label]
    return trial(f"t{label[0]}{suffix}", values, weighted_loss=weighted_loss, oversampling=oversampling,
                 stop_reason=stop_reason)


def context_for(tmp_path, trials: list[dict], *, test: dict[str, float], tied_with_winner: tuple[str, ...] = (),
                seeds: int = 0, checks_: tuple[Check, ...] = (CLAIM,)) -> ReportContext:
    """A report context whose candidates scored ``test`` (trial id → test macro-F1 and accuracy,
    a narrow interval around it); the paired comparison with the winner reads tied for the
    trials in ``tied_with_winner`` and better or worse by sign for the others. With ``seeds``
    each candidate was retrained that many times, for two epochs each."""
    experiment = load_experiment(make_experiment(tmp_path / "exp", trials))
    winners = pick_winners(experiment)
    reference = winners.overall
    estimates = pd.DataFrame([{"trial_id": t, "kind": CHECKPOINT, "metric": metric, "mean": value,
                               "std": 0.0, "low": value - 0.01, "high": value + 0.01, "seeds": 1}
                              for t, value in test.items() for metric in ("macro_f1", "accuracy")])
    comparisons = pd.DataFrame([{"trial_id": t, "kind": CHECKPOINT, "metric": "macro_f1",
                                 "difference": value - test[reference], "low": 0.0, "high": 0.0,
                                 "verdict": "tied" if t in tied_with_winner else
                                 ("better" if value > test[reference] else "worse")}
                                for t, value in test.items() if t != reference])
    predictions = {(t, CHECKPOINT): [ModelPredictions(t, None, np.zeros((1, 3)), {})] for t in test}
    predictions |= {(t, RETRAINED): [ModelPredictions(t, seed, np.zeros((1, 3)),
                                                      {"epochs": 2, "stop_reason": "completed"})
                                     for seed in range(seeds)] for t in test if seeds}
    confirmation = Confirmation(class_names=("RBC", "WBC", "Platelets"), test=None, predictions=predictions,
                                estimates=estimates, comparisons=comparisons, reference=reference)
    spec = replace(get_sweep("bccd_imbalance").report, checks=checks_)
    figures = tmp_path / "figures"
    figures.mkdir()
    return ReportContext(experiment=experiment, winners=winners, confirmation=confirmation, spec=spec,
                         figures_dir=figures, settings=RerunSettings(seeds=seeds, bootstrap=10))


def claims_table(context: ReportContext) -> pd.DataFrame:
    return next(block.frame for block in checks(context) if isinstance(block, Table))


def holds(context: ReportContext) -> dict[str, str]:
    table = claims_table(context)
    return dict(zip(table["Statement"], table["Holds"]))


def one_trial_per_arm(values: dict[str, float]) -> list[dict]:
    return [arm_trial(label, [value, value]) for label, value in values.items()]


def test_an_exact_tie_for_best_group_reads_tied_not_yes(tmp_path):
    context = context_for(tmp_path, one_trial_per_arm({label: 0.5 for label in ARMS}),
                          test={f"t{label[0]}": 0.25 for label in ARMS})
    assert holds(context) == {CLAIM.statement: "tied"}
    measured = claims_table(context)["Measured"].iloc[0]
    assert measured.startswith("tied: ") and all(label in measured for label in ARMS)


def test_a_difference_within_the_paired_bootstrap_interval_reads_tied(tmp_path):
    # The winner on validation (arm 4) leads on test by 0.02, but the paired interval holds 0.
    context = context_for(tmp_path, one_trial_per_arm({"1. Baseline": 0.5, "2. Weighted Loss": 0.4,
                                                       "3. Oversampling": 0.4, "4. Final Model": 0.6}),
                          test={"t1": 0.28, "t2": 0.10, "t3": 0.12, "t4": 0.30}, tied_with_winner=("t1",))
    assert holds(context) == {CLAIM.statement: "tied"}


def test_a_clear_best_reads_yes_and_a_tie_without_the_claimed_group_reads_no(tmp_path, tmp_path_factory):
    clear = context_for(tmp_path, one_trial_per_arm({"1. Baseline": 0.5, "2. Weighted Loss": 0.4,
                                                     "3. Oversampling": 0.4, "4. Final Model": 0.6}),
                        test={"t1": 0.10, "t2": 0.10, "t3": 0.12, "t4": 0.30})
    assert holds(clear) == {CLAIM.statement: "yes"}
    other = context_for(tmp_path_factory.mktemp("other"),
                        one_trial_per_arm({"1. Baseline": 0.6, "2. Weighted Loss": 0.5, "3. Oversampling": 0.4,
                                           "4. Final Model": 0.3}),
                        test={"t1": 0.30, "t2": 0.30, "t3": 0.12, "t4": 0.10})
    assert holds(other) == {CLAIM.statement: "no"}


def test_ties_on_a_minimised_metric_read_tied(tmp_path):
    claim = Check(source="doc", statement="Baseline has the lowest test loss", quantity=BestGroup(metric="loss"),
                  op="=", value="1. Baseline")
    context = context_for(tmp_path, one_trial_per_arm({label: 0.5 for label in ARMS}),
                          test={f"t{label[0]}": 0.25 for label in ARMS}, checks_=(claim,))
    context.confirmation.estimates.loc[context.confirmation.estimates["metric"] == "accuracy", "metric"] = "loss"
    assert holds(context) == {claim.statement: "tied"}


def ablation_text(blocks) -> str:
    return " ".join(block.text for block in blocks if isinstance(block, Paragraph))


def test_the_ablation_gives_each_arms_budget_and_flags_an_arm_pruned_at_the_first_rung(tmp_path):
    # Smoke profile: ASHA's first rung is epoch 1 of 2. Every "both corrections" trial stopped there.
    trials = [arm_trial("1. Baseline", [0.5, 0.6]), arm_trial("1. Baseline", [0.4, 0.5], suffix="b"),
              arm_trial("2. Weighted Loss", [0.5, 0.55]), arm_trial("3. Oversampling", [0.45, 0.5]),
              *(arm_trial("4. Final Model", [value], suffix=str(i), stop_reason="")
                for i, value in enumerate((0.36, 0.30, 0.20)))]
    context = context_for(tmp_path, trials, test={"t1": 0.5, "t2": 0.45, "t3": 0.4, "t40": 0.55}, seeds=2)
    blocks = ablation(context)
    budget = next(block.frame for block in blocks
                  if isinstance(block, Table) and block.caption == "Training each arm received")
    rows = budget.set_index("Experiment")
    assert list(rows["Sweep trial-epochs"]) == [4, 2, 2, 3]
    pruned = rows.loc["4. Final Model"]
    assert (pruned["Trials"], pruned["Stopped by ASHA"], pruned["Most epochs of a trial"]) == (3, 3, 1)
    assert pruned["Retrained epochs per seed"] == "2, 2"
    text = ablation_text(blocks)
    assert "retrained each arm's best config from scratch with 2 seed(s) for up to 2 epochs, without ASHA" in text
    assert "ASHA stopped every trial of 4. Final Model at its first rung (epoch 1)" in text
    assert "pruning, not a verdict on 4. Final Model" in text
    assert "every trial of 1. Baseline" not in text and "every trial of 2. Weighted Loss" not in text


def test_without_retraining_the_ablation_says_the_test_values_keep_asha_budgets(tmp_path):
    context = context_for(tmp_path, one_trial_per_arm({label: 0.5 for label in ARMS}),
                          test={f"t{label[0]}": 0.25 for label in ARMS}, seeds=0)
    text = ablation_text(ablation(context))
    assert "sweep checkpoints at the budgets ASHA gave them" in text and "first rung" not in text


def test_the_confirmation_retrains_each_config_for_its_max_epochs_without_a_scheduler(tmp_path, monkeypatch):
    experiment = load_experiment(make_experiment(tmp_path / "exp", one_trial_per_arm({"1. Baseline": 0.5})))
    seen = {}

    class RecordingTuner:
        def __init__(self, trainable, *, param_space, tune_config, run_config):
            seen.update(tune_config=tune_config, param_space=param_space)

        def fit(self):
            return None

    monkeypatch.setattr(tuner.tune, "Tuner", RecordingTuner)
    monkeypatch.setattr(tuner, "wrapped_trainable", lambda resolved, data: None)
    monkeypatch.setattr(rerun, "configure_tune_environment", lambda: None)
    monkeypatch.setattr(rerun, "remove_checkpoint_staging", lambda name: None)
    monkeypatch.setattr("sweeps.ray_session.ensure_ray", lambda address: False)
    config = {**experiment.config("t1"), "seed": 0}
    rerun.run_retraining(experiment, [config], data=None, settings=RerunSettings(), recorder=tune.Callback())
    assert seen["tune_config"].scheduler is None
    assert seen["param_space"]["max_epochs"] == experiment.resolved.max_epochs
