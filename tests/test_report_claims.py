"""The report's claim checks and ablation on synthetic experiments with test results set by
hand (no data, no training): a tie reads "tied", never "checked: holds"; a claim on scores
measured at other settings than the document's (a cpu or smoke profile, a ``--set``) reads
"not comparable at this profile" with the settings that differ, and a class count is checked
unless a data setting that changes what is counted differs; the summary states the profile;
the ablation says how much training each arm got and flags an arm ASHA pruned at its first
rung; the confirmation retrains at the full budget without ASHA."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from ray import tune

from analysis import rerun
from analysis.document import Document, Paragraph, Table, to_html, to_markdown
from analysis.rerun import CHECKPOINT, RETRAINED, Confirmation, ModelPredictions, RerunSettings
from analysis.results import load_experiment
from analysis.sections.base import ReportContext
from analysis.sections.classification import ablation
from analysis.sections.common import checks, summary
from analysis.winners import pick_winners
from sweeps import tuner
from sweeps.registry import get_sweep
from sweeps.report_spec import BestGroup, Check, ClassCount, Diverged, ReportSpecError, WinnerScore
from sweeps.space import resolve
from tests.synthetic_experiment import make_experiment, trial

ARMS = {"1. Baseline": (False, False), "2. Weighted Loss": (True, False), "3. Oversampling": (False, True),
        "4. Final Model": (True, True)}
CLAIM = Check(source="seed 000 §8.3", statement="The final model is the best", quantity=BestGroup(metric="macro_f1"),
              op="=", value="4. Final Model")


def arm_trial(label: str, values: list[float], *, suffix: str = "", stop_reason: str = "completed") -> dict:
    weighted_loss, oversampling = ARMS[label]
    return trial(f"t{label[0]}{suffix}", values, weighted_loss=weighted_loss, oversampling=oversampling,
                 stop_reason=stop_reason)


def at_profile(directory: Path, profile: str, overrides: tuple[str, ...] = ()) -> None:
    """Record in the experiment's ``sweep.json`` that it ran at ``profile`` ("smoke" is the cpu
    profile made test-sized) with ``--set`` items ``overrides``."""
    resolved = resolve(get_sweep("bccd_imbalance"), profile="cpu" if profile == "smoke" else profile,
                       smoke=profile == "smoke", overrides=overrides)
    (directory / "sweep.json").write_text(json.dumps(resolved.to_dict()))


def context_for(tmp_path, trials: list[dict], *, test: dict[str, float], tied_with_winner: tuple[str, ...] = (),
                seeds: int = 0, checks_: tuple[Check, ...] = (CLAIM,), profile: str = "smoke",
                overrides: tuple[str, ...] = ()) -> ReportContext:
    """A report context whose candidates scored ``test`` (trial id → test macro-F1 and accuracy,
    a narrow interval around it); the paired comparison with the winner reads tied for the
    trials in ``tied_with_winner`` and better or worse by sign for the others. With ``seeds``
    each candidate was retrained that many times, for two epochs each. The sweep ran at
    ``profile`` with ``--set`` items ``overrides``."""
    directory = make_experiment(tmp_path / "exp", trials)
    at_profile(directory, profile, overrides)
    experiment = load_experiment(directory)
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


def verdicts(context: ReportContext) -> dict[str, str]:
    table = claims_table(context)
    return dict(zip(table["Statement"], table["Verdict"]))


def claims_paragraph(context: ReportContext) -> str:
    return next(block.text for block in checks(context) if isinstance(block, Paragraph))


def one_trial_per_arm(values: dict[str, float]) -> list[dict]:
    return [arm_trial(label, [value, value]) for label, value in values.items()]


def test_an_exact_tie_for_best_group_reads_tied_not_holds(tmp_path):
    context = context_for(tmp_path, one_trial_per_arm({label: 0.5 for label in ARMS}),
                          test={f"t{label[0]}": 0.25 for label in ARMS}, profile="full")
    assert verdicts(context) == {CLAIM.statement: "tied"}
    measured = claims_table(context)["Measured"].iloc[0]
    assert measured.startswith("tied: ") and all(label in measured for label in ARMS)


def test_a_difference_within_the_paired_bootstrap_interval_reads_tied(tmp_path):
    # The winner on validation (arm 4) leads on test by 0.02, but the paired interval holds 0.
    context = context_for(tmp_path, one_trial_per_arm({"1. Baseline": 0.5, "2. Weighted Loss": 0.4,
                                                       "3. Oversampling": 0.4, "4. Final Model": 0.6}),
                          test={"t1": 0.28, "t2": 0.10, "t3": 0.12, "t4": 0.30}, tied_with_winner=("t1",),
                          profile="full")
    assert verdicts(context) == {CLAIM.statement: "tied"}


def test_a_clear_best_holds_and_a_tie_without_the_claimed_group_contradicts(tmp_path, tmp_path_factory):
    clear = context_for(tmp_path, one_trial_per_arm({"1. Baseline": 0.5, "2. Weighted Loss": 0.4,
                                                     "3. Oversampling": 0.4, "4. Final Model": 0.6}),
                        test={"t1": 0.10, "t2": 0.10, "t3": 0.12, "t4": 0.30}, profile="full")
    assert verdicts(clear) == {CLAIM.statement: "checked: holds"}
    other = context_for(tmp_path_factory.mktemp("other"),
                        one_trial_per_arm({"1. Baseline": 0.6, "2. Weighted Loss": 0.5, "3. Oversampling": 0.4,
                                           "4. Final Model": 0.3}),
                        test={"t1": 0.30, "t2": 0.30, "t3": 0.12, "t4": 0.10}, profile="full")
    assert verdicts(other) == {CLAIM.statement: "contradicted"}


def test_ties_on_a_minimised_metric_read_tied(tmp_path):
    claim = Check(source="doc", statement="Baseline has the lowest test loss", quantity=BestGroup(metric="loss"),
                  op="=", value="1. Baseline")
    context = context_for(tmp_path, one_trial_per_arm({label: 0.5 for label in ARMS}),
                          test={f"t{label[0]}": 0.25 for label in ARMS}, checks_=(claim,), profile="full")
    context.confirmation.estimates.loc[context.confirmation.estimates["metric"] == "accuracy", "metric"] = "loss"
    assert verdicts(context) == {claim.statement: "tied"}


BASELINE_ACCURACY = Check(source="doc", statement="Baseline accuracy about 25%",
                          quantity=WinnerScore(metric="accuracy", group="1. Baseline"), op="≈", value=0.25,
                          tolerance=0.02)
FINAL_ACCURACY = Check(source="doc", statement="Final model accuracy above 90%",
                       quantity=WinnerScore(metric="accuracy", group="4. Final Model"), op=">", value=0.9)
TRAIN_WBC = Check(source="doc", statement="WBC patches in the training split",
                  quantity=ClassCount(split="train", class_name="WBC"), op="=", value=3)
SCORES_AND_DATA = (BASELINE_ACCURACY, FINAL_ACCURACY, CLAIM, TRAIN_WBC)


def scored_context(tmp_path, *, profile: str, overrides: tuple[str, ...] = (),
                   checks_: tuple[Check, ...] = SCORES_AND_DATA) -> ReportContext:
    """Arm 4 wins on validation and on test (test accuracy: 0.25 for arms 1-3, 0.30 for arm 4)."""
    return context_for(tmp_path, one_trial_per_arm({"1. Baseline": 0.5, "2. Weighted Loss": 0.4,
                                                    "3. Oversampling": 0.4, "4. Final Model": 0.6}),
                       test={"t1": 0.25, "t2": 0.25, "t3": 0.25, "t4": 0.30}, checks_=checks_, profile=profile,
                       overrides=overrides)


def test_at_the_cpu_profile_score_claims_are_not_comparable_and_say_which_settings_differ(tmp_path):
    context = scored_context(tmp_path, profile="cpu")
    found = verdicts(context)
    reason = "not comparable at this profile: pretrained true→false, image_size 224→48, max_epochs 50→14, "
    for check in (BASELINE_ACCURACY, FINAL_ACCURACY, CLAIM):
        assert found[check.statement].startswith(reason), found[check.statement]
    assert found[TRAIN_WBC.statement] == "checked: holds"          # the audit counts the whole dataset
    measured = dict(zip(claims_table(context)["Statement"], claims_table(context)["Measured"]))
    assert measured[BASELINE_ACCURACY.statement].startswith("0.250 ")  # still shown beside the verdict
    text = claims_paragraph(context)
    assert text.startswith("This run used the cpu profile, not the document's settings (pretrained true→false, "
                           "image_size 224→48, ")
    assert ("the claims on its models' scores are not comparable with the document's (their measured values are "
            "shown for reference), and the claims on the data are checked.") in text


def test_at_the_full_profile_score_claims_hold_or_are_contradicted(tmp_path):
    context = scored_context(tmp_path, profile="full")
    assert verdicts(context) == {BASELINE_ACCURACY.statement: "checked: holds",
                                 FINAL_ACCURACY.statement: "contradicted", CLAIM.statement: "checked: holds",
                                 TRAIN_WBC.statement: "checked: holds"}
    assert claims_paragraph(context).startswith("This run used the full profile, the document's own settings: "
                                                "every target and claim is checked.")


def test_a_set_override_at_the_full_profile_makes_scores_not_comparable(tmp_path):
    context = scored_context(tmp_path, profile="full", overrides=("max_epochs=5",))
    found = verdicts(context)
    assert found[BASELINE_ACCURACY.statement] == "not comparable at this profile: max_epochs 50→5"
    assert found[TRAIN_WBC.statement] == "checked: holds"
    assert claims_paragraph(context).startswith("This run used the full profile with --set max_epochs=5, not the "
                                                "document's settings (max_epochs 50→5)")


def test_a_class_count_is_checked_on_a_smoke_subset_and_not_comparable_when_the_data_options_differ(
        tmp_path, tmp_path_factory):
    # A smoke sweep trains on a subset, but its audit (what a class count reads) counts every image.
    smoke = scored_context(tmp_path, profile="smoke", checks_=(TRAIN_WBC,))
    assert verdicts(smoke) == {TRAIN_WBC.statement: "checked: holds"}
    assert "images_per_split all→12" in claims_paragraph(smoke)
    padded = scored_context(tmp_path_factory.mktemp("padded"), profile="full", overrides=("padding=4",),
                            checks_=(TRAIN_WBC, BASELINE_ACCURACY))
    assert verdicts(padded) == {TRAIN_WBC.statement: "not comparable at this profile: padding 10→4",
                                BASELINE_ACCURACY.statement: "not comparable at this profile: padding 10→4"}


def test_a_check_that_depends_on_unchanged_settings_is_checked_at_the_cpu_profile(tmp_path):
    optimizer_only = Check(source="doc", statement="lr 0.001 never diverges", quantity=Diverged(where={"lr": 0.001}),
                           op="=", value="none", depends_on=("optimizer", "lr"))
    weights = replace(optimizer_only, statement="lr 0.001 never diverges from ImageNet weights",
                      depends_on=("pretrained", "optimizer"))
    absent = replace(optimizer_only, statement="lr 0.1 diverges", quantity=Diverged(where={"lr": 0.1}), value="all")
    context = scored_context(tmp_path, profile="cpu", checks_=(optimizer_only, weights, absent))
    assert verdicts(context) == {optimizer_only.statement: "checked: holds",
                                 weights.statement: "not comparable at this profile: pretrained true→false",
                                 absent.statement: "not measured"}
    assert ("the claims on its models' scores are checked where they depend only on settings that did not change "
            "(2 of 3); the others are not comparable.") in claims_paragraph(context)


def test_a_check_that_depends_on_an_unknown_setting_is_an_error_listing_the_settings(tmp_path):
    typo = Check(source="doc", statement="The claim", quantity=Diverged(where={"lr": 0.001}), op="=", value="none",
                 depends_on=("optimiser",))
    context = scored_context(tmp_path, profile="cpu", checks_=(typo,))
    with pytest.raises(ReportSpecError, match=r"sweep 'bccd_imbalance', check 'The claim': depends_on names no "
                                              r"setting: optimiser; valid: .*\boptimizer\b.*\bpadding\b"):
        checks(context)


@pytest.mark.parametrize("profile,overrides,statement", [
    ("cpu", (), "Profile: cpu — numbers are cpu-profile numbers, not the document's settings (pretrained "
                "true→false, image_size 224→48, "),
    ("smoke", (), "Profile: smoke — numbers are smoke-profile numbers, not the document's settings (pretrained "
                  "true→false, image_size 224→32, images_per_split all→12, "),
    ("full", (), "Profile: full — the document's own settings, so its numbers can be set beside the document's."),
    ("full", ("max_epochs=5",), "Profile: full with --set max_epochs=5 — numbers are measured at settings that "
                                "differ from the document's (max_epochs 50→5)."),
])
def test_the_summary_opens_with_the_profile(tmp_path, profile, overrides, statement):
    blocks = summary(scored_context(tmp_path, profile=profile, overrides=overrides))
    assert next(block.text for block in blocks if isinstance(block, Paragraph)).startswith(statement)


def test_the_verdicts_render_in_markdown_and_html(tmp_path):
    document = Document(title="claims")
    document.add(*checks(scored_context(tmp_path, profile="cpu")))
    markdown = to_markdown(document, figures_relative_to=tmp_path)
    assert "| Source | Kind | Statement | Document | Measured | Verdict |" in markdown
    assert "not comparable at this profile: pretrained true→false" in markdown
    html = to_html(document)
    assert "<th>Verdict</th>" in html and "<td>checked: holds</td>" in html
    assert "<td>not comparable at this profile: pretrained true→false, image_size 224→48" in html


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
