"""Bootstrap statistics against direct computations on explicitly resampled data."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as sk

from analysis.rerun import ModelPredictions, compare_with, model_scores
from analysis.stats import estimate, paired_comparison, percentile_interval, resample_weights
from trainables.datasets.base import SplitArrays
from trainables.metrics import probability_metrics

NAMES = ("RBC", "WBC", "Platelets")


def test_resampling_draws_whole_source_images():
    groups = np.array(["a", "a", "a", "b", "c", "c", "d"])
    weights = resample_weights(groups, resamples=200, seed=1)
    assert weights.shape == (200, 7)
    for name in "acd":
        members = np.flatnonzero(groups == name)
        assert (weights[:, members] == weights[:, members[:1]]).all()
    first_of_each = weights[:, [0, 3, 4, 6]]
    assert (first_of_each.sum(axis=1) == 4).all()              # as many images drawn as there are
    assert np.array_equal(weights, resample_weights(groups, resamples=200, seed=1))


def test_weighted_metrics_equal_metrics_on_the_explicitly_resampled_samples():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 30)
    probabilities = rng.dirichlet([2, 1, 1], 30)
    weights = resample_weights(np.arange(30) // 3, resamples=20, seed=2)
    batch = probability_metrics(labels, probabilities, NAMES, weights)
    for b, row in enumerate(weights):
        index = np.repeat(np.arange(30), row.astype(int))
        y, p = labels[index], probabilities[index]
        assert batch["macro_f1"][b] == pytest.approx(sk.f1_score(y, p.argmax(1), average="macro", zero_division=0))
        assert batch["accuracy"][b] == pytest.approx(sk.accuracy_score(y, p.argmax(1)))
        assert batch["loss"][b] == pytest.approx(sk.log_loss(y, p, labels=[0, 1, 2]))
        if len(set(y)) == 3:
            assert batch["macro_auc"][b] == pytest.approx(sk.roc_auc_score(y, p, multi_class="ovr"))


def test_percentile_interval_matches_numpy_and_ignores_nan():
    values = np.r_[np.linspace(0, 1, 101), np.nan]
    assert percentile_interval(values, 0.9) == pytest.approx(tuple(np.percentile(values[:-1], [5, 95])))
    assert np.isnan(percentile_interval(np.array([np.nan]))[0])


def test_estimate_is_the_seed_mean_and_std_with_the_interval_of_the_seed_average():
    per_seed = np.array([0.7, 0.8, 0.9])
    per_resample = np.array([[0.6, 0.7, 0.8], [0.7, 0.8, 0.9], [0.8, 0.9, np.nan]])
    e = estimate(per_seed, per_resample, confidence=0.5)
    assert e.mean == pytest.approx(0.8) and e.std == pytest.approx(0.1) and e.seeds == 3
    averaged = [0.7, 0.8, 0.85]
    assert (e.low, e.high) == pytest.approx(tuple(np.percentile(averaged, [25, 75])))


def test_paired_comparison_of_a_model_with_itself_is_a_tie_at_zero():
    values = np.random.default_rng(1).random((2, 100))
    comparison = paired_comparison(values, values, candidate_point=0.5, reference_point=0.5)
    assert comparison.difference == 0 and comparison.verdict == "tied"
    assert comparison.low == comparison.high == 0


def _split(labels):
    return SplitArrays(np.zeros((len(labels), 2, 2, 3), np.uint8), labels, np.arange(len(labels)) // 2)


def test_a_clearly_better_candidate_is_not_tied_and_a_near_copy_is():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 3, 300)
    perfect = np.eye(3)[labels] * 0.9 + 0.1 / 3
    noisy = np.where(rng.random((300, 1)) < 0.5, perfect, rng.dirichlet([1, 1, 1], 300))
    near = perfect.copy()
    near[0] = np.roll(near[0], 1)                                 # one sample wrong
    split = _split(labels)
    weights = resample_weights(split.sources, resamples=500)
    scores = {(name, "retrained"): [model_scores(probability_metrics, split.labels, NAMES,
                                                 ModelPredictions(name, None, outputs, {}), weights)]
              for name, outputs in (("ref", noisy), ("better", perfect), ("near", near))}
    table = compare_with("ref", scores, "macro_f1", "max", 0.95).set_index("trial_id")
    assert table.loc["better", "verdict"] == "better" and table.loc["better", "difference"] > 0.2
    losses = compare_with("ref", scores, "loss", "min", 0.95).set_index("trial_id")
    assert losses.loc["better", "difference"] < 0 and losses.loc["better", "verdict"] == "better"
    scores[("ref", "retrained")] = scores[("better", "retrained")]
    table = compare_with("ref", scores, "macro_f1", "max", 0.95).set_index("trial_id")
    assert table.loc["near", "verdict"] == "tied"


def test_the_retraining_space_holds_every_config_as_a_point():
    from ray.tune.search.sample import Categorical

    from sweeps.tuner import param_space_covering
    configs = [{"lr": 1e-3, "seed": 0, "model": "m"}, {"lr": 1e-3, "seed": 1, "model": "m"},
               {"lr": 1e-4, "seed": 0, "model": "m"}]
    space = param_space_covering(configs)
    assert space["model"] == "m"
    assert isinstance(space["lr"], Categorical) and sorted(space["lr"].categories) == [1e-4, 1e-3]
    assert sorted(space["seed"].categories) == [0, 1]


def test_verdicts_follow_the_metric_direction():
    lower = np.full((1, 50), 0.2)
    higher = np.full((1, 50), 0.4)
    assert paired_comparison(higher, lower, candidate_point=0.4, reference_point=0.2, mode="max").verdict == "better"
    assert paired_comparison(higher, lower, candidate_point=0.4, reference_point=0.2, mode="min").verdict == "worse"
