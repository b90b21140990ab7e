"""Every classification metric against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as sk

from trainables.metrics import classification_metrics, confusion_matrix

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
