"""Every classification metric against scikit-learn, single and on resampling weights."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as sk

from trainables.metrics import (
    binary_auc,
    classification_metrics,
    confusion_matrix,
    log_loss,
    metrics_from_confusion,
    probability_metrics,
    roc_auc_ovr,
)

NAMES = ("RBC", "WBC", "Platelets")


def _cases():
    rng = np.random.default_rng(0)
    yield rng.integers(0, 3, 200), rng.integers(0, 3, 200)
    truth = np.array([0] * 90 + [1] * 7 + [2] * 3)
    yield truth, np.zeros(100, dtype=int)                       # always the majority class
    yield truth, np.where(rng.random(100) < 0.8, truth, 1)      # mostly right
    yield np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1])        # a class never present


@pytest.mark.parametrize("y_true,y_pred", list(_cases()))
def test_metrics_match_scikit_learn(y_true, y_pred):
    ours = classification_metrics(y_true, y_pred, NAMES)
    assert ours["accuracy"] == pytest.approx(sk.accuracy_score(y_true, y_pred))
    assert ours["macro_f1"] == pytest.approx(sk.f1_score(y_true, y_pred, average="macro", zero_division=0))
    assert ours["weighted_f1"] == pytest.approx(
        sk.f1_score(y_true, y_pred, average="weighted", zero_division=0))
    with np.errstate(all="ignore"):
        assert ours["balanced_accuracy"] == pytest.approx(sk.balanced_accuracy_score(y_true, y_pred))
    precision, recall, f1, _ = sk.precision_recall_fscore_support(
        y_true, y_pred, labels=[0, 1, 2], zero_division=0)
    for index, name in enumerate(NAMES):
        assert ours[f"f1_{name}"] == pytest.approx(f1[index])
        assert ours[f"recall_{name}"] == pytest.approx(recall[index])
        assert ours[f"precision_{name}"] == pytest.approx(precision[index])


def test_confusion_matrix_matches_scikit_learn():
    rng = np.random.default_rng(1)
    y_true, y_pred = rng.integers(0, 3, 50), rng.integers(0, 3, 50)
    assert np.array_equal(confusion_matrix(y_true, y_pred, 3),
                          sk.confusion_matrix(y_true, y_pred, labels=[0, 1, 2]))


def test_majority_classifier_has_high_accuracy_but_low_macro_f1():
    truth = np.array([0] * 115 + [1] * 10 + [2] * 10)
    scores = classification_metrics(truth, np.zeros_like(truth), NAMES)
    assert scores["accuracy"] > 0.85 and scores["macro_f1"] < 0.35


@pytest.mark.parametrize("y_true,y_pred", list(_cases()))
def test_macro_and_weighted_precision_recall_match_scikit_learn(y_true, y_pred):
    ours = classification_metrics(y_true, y_pred, NAMES)
    for average in ("macro", "weighted"):
        assert ours[f"{average}_precision"] == pytest.approx(
            sk.precision_score(y_true, y_pred, average=average, zero_division=0))
        assert ours[f"{average}_recall"] == pytest.approx(
            sk.recall_score(y_true, y_pred, average=average, zero_division=0))


def test_weighted_confusion_matrices_match_scikit_learn_sample_weights():
    rng = np.random.default_rng(2)
    y_true, y_pred = rng.integers(0, 3, 60), rng.integers(0, 3, 60)
    weights = rng.integers(0, 4, (5, 60)).astype(float)
    stacked = confusion_matrix(y_true, y_pred, 3, weights)
    assert stacked.shape == (5, 3, 3)
    for row, cm in zip(weights, stacked):
        assert np.allclose(cm, sk.confusion_matrix(y_true, y_pred, labels=[0, 1, 2], sample_weight=row))
    batch = metrics_from_confusion(stacked, NAMES)
    for index, cm in enumerate(stacked):
        single = metrics_from_confusion(cm, NAMES)
        assert all(batch[k][index] == pytest.approx(float(v)) for k, v in single.items())


def test_binary_auc_matches_scikit_learn_with_ties_and_weights():
    rng = np.random.default_rng(3)
    for _ in range(30):
        n = int(rng.integers(6, 80))
        labels = rng.integers(0, 2, n)
        scores = np.round(rng.random(n), 1)          # many tied scores
        if len(set(labels)) < 2:
            continue
        assert binary_auc(labels == 1, scores) == pytest.approx(sk.roc_auc_score(labels, scores))
        weights = rng.integers(0, 3, (3, n)).astype(float)
        ours = binary_auc(labels == 1, scores, weights)
        for row, value in zip(weights, ours):
            if len(set(labels[row > 0])) < 2:
                assert np.isnan(value)
            else:
                assert value == pytest.approx(sk.roc_auc_score(labels, scores, sample_weight=row))


def test_one_vs_rest_auc_and_log_loss_match_scikit_learn():
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 3, 90)
    probabilities = rng.dirichlet([1, 1, 1], 90)
    ours = roc_auc_ovr(labels, probabilities, NAMES)
    assert ours["macro_auc"] == pytest.approx(sk.roc_auc_score(labels, probabilities, multi_class="ovr"))
    for index, name in enumerate(NAMES):
        assert ours[f"auc_{name}"] == pytest.approx(sk.roc_auc_score(labels == index, probabilities[:, index]))
    assert log_loss(labels, probabilities) == pytest.approx(sk.log_loss(labels, probabilities))
    weights = rng.integers(0, 3, 90).astype(float)
    assert log_loss(labels, probabilities, weights) == pytest.approx(
        sk.log_loss(labels, probabilities, sample_weight=weights))


def test_auc_of_a_class_absent_from_the_labels_is_nan_and_left_out_of_the_macro_mean():
    labels = np.array([0, 0, 1, 1, 0, 1])
    probabilities = np.array([[.8, .1, .1], [.6, .3, .1], [.2, .7, .1], [.4, .5, .1], [.5, .4, .1], [.1, .8, .1]])
    ours = roc_auc_ovr(labels, probabilities, NAMES)
    assert np.isnan(ours["auc_Platelets"])
    assert ours["macro_auc"] == pytest.approx((ours["auc_RBC"] + ours["auc_WBC"]) / 2)


def test_probability_metrics_score_the_arg_max_predictions():
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 3, 40)
    probabilities = rng.dirichlet([1, 1, 1], 40)
    scores = probability_metrics(labels, probabilities, NAMES)
    assert scores["macro_f1"] == pytest.approx(
        sk.f1_score(labels, probabilities.argmax(axis=1), average="macro", zero_division=0))
    assert {"loss", "macro_auc", "auc_WBC", "accuracy"} <= set(scores)


def test_two_class_tasks_get_sensitivity_specificity_precision_f1_and_auc_as_scikit_learn_computes_them():
    rng = np.random.default_rng(3)
    y_true = rng.integers(0, 2, 300)
    positive = np.clip(0.35 * y_true + rng.uniform(0, 0.65, 300), 0, 1)
    probabilities = np.stack([1 - positive, positive], axis=1)
    got = probability_metrics(y_true, probabilities, ("Cardiomegaly", "Pneumothorax"))
    y_pred = probabilities.argmax(1)
    assert got["sensitivity"] == pytest.approx(sk.recall_score(y_true, y_pred))
    assert got["specificity"] == pytest.approx(sk.recall_score(1 - y_true, 1 - y_pred))
    assert got["precision"] == pytest.approx(sk.precision_score(y_true, y_pred))
    assert got["f1"] == pytest.approx(sk.f1_score(y_true, y_pred))
    assert got["auc"] == pytest.approx(sk.roc_auc_score(y_true, positive))
    assert "sensitivity" not in probability_metrics(y_true, np.eye(3)[y_true], ("a", "b", "c"))
