"""A split that lacks a class (issue #19, point 10): the audit warns (``--strict-data``
refuses), a metric the split leaves undefined reads "undefined: <reason>" in the report and
never ``nan``, a comparison on it reads "not comparable" and never "tied", and when the sweep's
metric is undefined on validation for every trial the report says which metric chose the
winner. The metrics that stay defined still equal scikit-learn's."""

from __future__ import annotations

import json
import re
import warnings
from collections import Counter

import numpy as np
import pytest
from sklearn import metrics as sk
from sklearn.exceptions import UndefinedMetricWarning

from analysis.document import Document, to_markdown
from analysis.rerun import (
    CHECKPOINT,
    Confirmation,
    ModelPredictions,
    RerunSettings,
    compare_with,
    estimate_table,
    model_scores,
)
from analysis.results import load_experiment
from analysis.sections.base import ReportContext, render_sections
from analysis.stats import Comparison, Estimate, Undefined, resample_weights
from analysis.winners import FALLBACK_METRIC, pick_winners
from sweeps.registry import get_sweep
from sweeps.run import main
from sweeps.space import resolve
from tests.synthetic_data import write_chestmnist
from tests.synthetic_experiment import make_experiment, trial
from trainables.datasets import chestmnist
from trainables.datasets.audit import DataAudit
from trainables.datasets.base import SplitArrays
from trainables.datasets.leakage import LINE_WIDTH
from trainables.metrics import probability_metrics, undefined_reasons

CHEST = ("Cardiomegaly", "Pneumothorax")
BLOOD = ("RBC", "WBC", "Platelets")
NAN_WORD = re.compile(r"\bnan\b", re.IGNORECASE)


# --- the metrics: which are undefined, and the defined ones against scikit-learn -------------

def sklearn_undefined(y_true: np.ndarray, probabilities: np.ndarray, names: tuple[str, ...]) -> set[str]:
    """The per-class recalls and one-vs-rest AUCs scikit-learn calls ill-defined (a warning,
    or for an AUC in older versions an error)."""
    predictions = probabilities.argmax(axis=1)
    checks = {}
    for index, name in enumerate(names):
        checks[f"recall_{name}"] = lambda i=index: sk.recall_score(y_true == i, predictions == i, zero_division="warn")
        checks[f"auc_{name}"] = lambda i=index: sk.roc_auc_score(y_true == i, probabilities[:, i])
    return {metric for metric, score in checks.items() if ill_defined(score)}


def ill_defined(score) -> bool:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            score()
        except ValueError:
            return True
    return any(issubclass(w.category, UndefinedMetricWarning) for w in caught)


@pytest.mark.parametrize("names, labels", [(CHEST, [0, 0, 0, 0, 0]), (BLOOD, [0, 1, 0, 1, 1, 0])])
def test_the_undefined_metrics_are_those_scikit_learn_flags_and_the_others_equal_its_values(names, labels):
    y_true = np.array(labels)
    probabilities = np.random.default_rng(0).dirichlet(np.ones(len(names)), len(y_true))
    reasons = undefined_reasons(y_true, names, "test")
    per_class = {key for key in reasons if key.startswith(("recall_", "auc_"))}
    assert per_class == sklearn_undefined(y_true, probabilities, names)
    assert reasons[f"recall_{names[-1]}"] == f"no {names[-1]} positives in test"
    values = probability_metrics(y_true, probabilities, names)
    for index, name in enumerate(names):
        if f"auc_{name}" not in reasons:
            assert values[f"auc_{name}"] == pytest.approx(sk.roc_auc_score(y_true == index, probabilities[:, index]))
        if f"recall_{name}" not in reasons:
            assert values[f"recall_{name}"] == pytest.approx(
                sk.recall_score(y_true == index, probabilities.argmax(axis=1) == index))


def test_a_binary_split_without_positives_leaves_sensitivity_and_auc_undefined_with_the_reason():
    reasons = undefined_reasons(np.zeros(5, dtype=int), CHEST, "test")
    assert reasons["sensitivity"] == reasons["auc"] == "no Pneumothorax positives in test"
    assert reasons["auc_Cardiomegaly"] == "no Cardiomegaly negatives in test"
    assert "specificity" not in reasons and "accuracy" not in reasons
    assert "no Pneumothorax positives in test" in reasons["macro_auc"]
    assert undefined_reasons(np.array([0, 1, 1]), CHEST, "test") == {}


def test_a_comparison_whose_difference_is_undefined_is_not_comparable_never_tied():
    assert Comparison(difference=float("nan"), low=float("nan"), high=float("nan")).verdict == "not comparable"
    assert Comparison(difference=0.1, low=-0.1, high=0.2).verdict == "tied"
    assert "nan" not in Estimate(mean=0.5, std=0.0, low=float("nan"), high=float("nan"), seeds=1).format()
    assert Undefined("no Pneumothorax positives in test").format() == "undefined: no Pneumothorax positives in test"


# --- the audit -----------------------------------------------------------------------------

def chest_audit(test: dict[str, int]) -> DataAudit:
    audit = DataAudit(dataset="chestmnist", root="/data", class_names=CHEST)
    for split, counts in (("train", {"Cardiomegaly": 40, "Pneumothorax": 30}),
                          ("val", {"Cardiomegaly": 6, "Pneumothorax": 4}), ("test", test)):
        audit.images_listed[split] = audit.images_read[split] = sum(counts.values())
        audit.kept[split] = Counter(counts)
    return audit


def test_a_split_without_a_class_is_a_warning_naming_split_and_class_and_strict_refuses_it():
    audit = chest_audit({"Cardiomegaly": 5, "Pneumothorax": 0})
    assert audit.missing_classes() == {"test": ["Pneumothorax"]}
    text = audit.format()
    assert "Warning: the test split holds no Pneumothorax (kept: Cardiomegaly 5, Pneumothorax 0)" in text
    assert max(map(len, text.splitlines())) <= LINE_WIDTH
    warning = text[text.index("Warning: "):text.index("\nDropped 0 items.")]
    assert " ".join(warning.split()) == "Warning: " + audit.class_warnings()[0]
    assert audit.to_dict()["warnings"] == audit.class_warnings()
    assert audit.strict_problems() == [f"classes: {audit.class_warnings()[0]}"]
    assert DataAudit.from_dict(json.loads(json.dumps(audit.to_dict()))).class_warnings() == audit.class_warnings()
    clean = chest_audit({"Cardiomegaly": 5, "Pneumothorax": 1})
    assert clean.class_warnings() == [] and clean.strict_problems() == [] and "Warning" not in clean.format()


def test_a_class_no_split_holds_is_a_warning_but_not_refused():
    audit = DataAudit(dataset="bccd", root="/data", class_names=BLOOD)
    audit.kept = {split: Counter({"RBC": 4, "WBC": 4, "Platelets": 0}) for split in ("train", "val", "test")}
    assert len(audit.class_warnings()) == 3 and audit.strict_problems() == []


@pytest.fixture
def chest_without_test_pneumothorax(tmp_path, monkeypatch):
    """A generated ChestMNIST (28 px) whose test split holds Cardiomegaly and no Pneumothorax,
    in a private cache; returns the --data-dir."""
    monkeypatch.setenv("MEDSWEEP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("MEDSWEEP_DATA_DIR", raising=False)
    source = write_chestmnist(tmp_path / "made")
    with np.load(source) as stored:
        arrays = {key: stored[key] for key in stored.files}
    arrays["test_labels"][:, chestmnist.FINDINGS.index("Pneumothorax")] = 0
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    np.savez(data_dir / "chestmnist.npz", **arrays)
    return data_dir


def test_the_chestmnist_audit_warns_and_strict_data_refuses_a_test_split_without_pneumothorax(
        chest_without_test_pneumothorax, tmp_path, capsys):
    audit = chestmnist.prepare_chestmnist(data_dir=str(chest_without_test_pneumothorax), image_size=28)[1]
    assert audit.kept["test"]["Pneumothorax"] == 0 and audit.kept["test"]["Cardiomegaly"] > 0
    assert "Warning: the test split holds no Pneumothorax" in audit.format()
    storage = tmp_path / "runs"
    assert main(["chestmnist_binary", "--check-data", "--strict-data", "--data-dir",
                 str(chest_without_test_pneumothorax), "--storage", str(storage)]) == 2
    err = capsys.readouterr().err
    assert "--strict-data" in err and "the test split holds no Pneumothorax" in err


# --- the report ----------------------------------------------------------------------------

def chest_experiment(tmp_path, val_auc: dict[str, list[float]], val_loss: dict[str, list[float]]):
    """A chestmnist_binary experiment (no training) of one trial per model with these
    validation AUCs and losses per epoch."""
    models = ("densenet121_medmnist", "mobilenetv3_large_medmnist")
    trials = []
    for trial_id, model in zip(val_auc, models):
        spec = trial(trial_id, [0.5] * len(val_auc[trial_id]),
                     extra={"val_auc": val_auc[trial_id], "val_loss": val_loss[trial_id]})
        spec["config"]["model"] = model
        trials.append(spec)
    directory = make_experiment(tmp_path / "exp", trials)
    resolved = resolve(get_sweep("chestmnist_binary"), profile="cpu", smoke=True)
    (directory / "sweep.json").write_text(json.dumps(resolved.to_dict()))
    return load_experiment(directory)


def report_text(tmp_path, experiment, test_labels: np.ndarray, sections: tuple[str, ...]) -> tuple[str, ReportContext]:
    """The rendered sections, with every candidate's sweep checkpoint scored on ``test_labels``
    by the confirmation's own functions (probabilities drawn at random per trial)."""
    winners = pick_winners(experiment)
    test = SplitArrays(images=np.zeros((len(test_labels), 28, 28, 1), np.uint8), labels=test_labels,
                       sources=np.array([f"test/{i}" for i in range(len(test_labels))]))
    weights = resample_weights(test.sources, resamples=50)
    rng = np.random.default_rng(1)
    predictions = {(t, CHECKPOINT): [ModelPredictions(t, None, rng.dirichlet([1, 1], len(test_labels)), {})]
                   for t in winners.candidate_ids}
    scores = {key: [model_scores(probability_metrics, test_labels, CHEST, model, weights) for model in models]
              for key, models in predictions.items()}
    confirmation = Confirmation(class_names=CHEST, test=test, predictions=predictions,
                                estimates=estimate_table(scores, 0.95),
                                comparisons=compare_with(winners.overall, scores, "auc", "max", 0.95),
                                reference=winners.overall)
    spec = get_sweep("chestmnist_binary").report
    context = ReportContext(experiment=experiment, winners=winners, confirmation=confirmation,
                            spec=type(spec)(**{**vars(spec), "sections": sections}),
                            figures_dir=tmp_path / "figures", settings=RerunSettings(seeds=0, bootstrap=50))
    (tmp_path / "figures").mkdir(exist_ok=True)
    document = Document(title="t")
    document.add(*render_sections(context))
    return to_markdown(document, figures_relative_to=tmp_path), context


def test_a_test_split_without_pneumothorax_shows_auc_undefined_with_the_reason_and_not_comparable(tmp_path):
    experiment = chest_experiment(tmp_path, val_auc={"ta": [0.7, 0.8], "tb": [0.6, 0.7]},
                                  val_loss={"ta": [0.6, 0.5], "tb": [0.7, 0.6]})
    text, context = report_text(tmp_path, experiment, np.zeros(5, dtype=np.int64),
                                ("summary", "confirmation", "classification_report", "roc_auc"))
    assert not NAN_WORD.search(text), [line for line in text.splitlines() if NAN_WORD.search(line)]
    assert "undefined: no Pneumothorax positives in test" in text
    assert context.confirmation.comparisons["verdict"].tolist() == ["not comparable"]
    verdict = "not comparable: auc is undefined, no Pneumothorax positives in test"
    assert verdict in text
    assert "Statistically tied with the winner on test auc (paired bootstrap over test images, 95%): none." in text
    assert ("Not comparable with the winner on test auc: tb (auc is undefined, no Pneumothorax positives in "
            "test)") in text
    accuracy = context.estimate("ta", "accuracy", CHECKPOINT)
    assert isinstance(accuracy, Estimate) and accuracy.mean == pytest.approx(
        sk.accuracy_score(np.zeros(5), context.checkpoint_outputs("ta").argmax(axis=1)))


def test_a_sweep_metric_undefined_on_validation_for_every_trial_falls_back_and_the_report_says_so(tmp_path):
    nan = float("nan")
    experiment = chest_experiment(tmp_path, val_auc={"ta": [nan, nan], "tb": [nan, nan]},
                                  val_loss={"ta": [0.6, 0.5], "tb": [0.7, 0.4]})
    winners = pick_winners(experiment)
    assert winners.overall == "tb" and winners.decided_by == FALLBACK_METRIC == "val_loss"
    assert "val_auc was undefined" in winners.fallback
    text, _ = report_text(tmp_path, experiment, np.array([0, 1, 0, 1, 1]), ("summary", "confirmation"))
    assert not NAN_WORD.search(text)
    assert "chosen on val_loss (best 0.4000) because val_auc was undefined on the validation split" in text
    assert "The winner was not chosen on val_auc: val_auc was undefined (no finite value) on the validation split" \
           in text
    assert "undefined: no finite val_auc on val" in text


def test_the_sweep_metric_decides_when_it_is_defined(tmp_path):
    experiment = chest_experiment(tmp_path, val_auc={"ta": [0.7, 0.8], "tb": [0.6, 0.9]},
                                  val_loss={"ta": [0.6, 0.1], "tb": [0.7, 0.6]})
    winners = pick_winners(experiment)
    assert (winners.overall, winners.decided_by, winners.fallback) == ("tb", "val_auc", "")


def test_trials_without_a_finite_sweep_metric_are_named_as_not_ranked(tmp_path):
    nan = float("nan")
    experiment = chest_experiment(tmp_path, val_auc={"ta": [0.7, 0.8], "tb": [nan, nan]},
                                  val_loss={"ta": [0.6, 0.5], "tb": [0.7, 0.4]})
    winners = pick_winners(experiment)
    assert (winners.overall, winners.decided_by, winners.unranked) == ("ta", "val_auc", ("tb",))
    text, _ = report_text(tmp_path, experiment, np.array([0, 1, 0, 1, 1]), ("summary",))
    assert ("1 trial(s) that ran had no finite val_auc on the validation split (it was undefined there) and were "
            "not ranked: tb.") in text
