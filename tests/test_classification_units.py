"""Class weights, oversampling, config validation and normalisation of the classifier."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trainables.arrays import Normalize
from trainables.classification import (ClassificationConfig, class_weights,
                                       oversampled_indices)
from trainables.config import ConfigError, from_config


def test_class_weights_are_total_over_classes_times_count():
    counts = np.array([2381, 214, 209])
    weights = class_weights(counts)
    assert weights == pytest.approx(counts.sum() / (3 * counts))
    assert weights[1] / weights[0] == pytest.approx(2381 / 214)


def test_class_weights_scale_like_the_documents_ratios():
    weights = class_weights(np.array([4674, 176, 39]))
    assert weights / weights[0] == pytest.approx([1.0, 26.5556, 119.85], rel=1e-4)


def test_absent_class_gets_zero_weight():
    assert list(class_weights(np.array([10, 0, 5]))) == pytest.approx([0.5, 0.0, 1.0])


def test_oversampling_matches_every_class_to_the_majority():
    labels = np.array([0] * 50 + [1] * 7 + [2] * 3)
    indices = oversampled_indices(labels, np.random.default_rng(0))
    assert np.bincount(labels[indices]).tolist() == [50, 50, 50]
    assert set(range(len(labels))) <= set(indices.tolist())
    assert set(np.flatnonzero(labels == 2)) == set(indices[labels[indices] == 2].tolist())


def test_oversampling_of_a_balanced_split_changes_nothing():
    labels = np.array([0, 1, 2, 0, 1, 2])
    assert sorted(oversampled_indices(labels, np.random.default_rng(0))) == list(range(6))


def test_unknown_config_key_names_the_valid_keys():
    with pytest.raises(ConfigError, match=r"unknown config key\(s\) \['learning_rate'\].*valid keys: model"):
        from_config(ClassificationConfig, {"learning_rate": 1e-3})


def test_wrong_value_type_is_an_error_naming_the_key():
    with pytest.raises(ConfigError, match="'weighted_loss' must be bool"):
        from_config(ClassificationConfig, {"weighted_loss": "yes"})
    with pytest.raises(ConfigError, match="'batch_size' must be int"):
        from_config(ClassificationConfig, {"batch_size": True})


def test_config_is_frozen_and_ints_become_floats():
    config = from_config(ClassificationConfig, {"lr": 1, "optimizer": "adam"})
    assert config.lr == 1.0 and isinstance(config.lr, float)
    with pytest.raises(AttributeError):
        config.lr = 2.0


def test_non_positive_lr_and_unknown_optimizer_are_rejected():
    with pytest.raises(ConfigError, match="'lr' must be positive"):
        from_config(ClassificationConfig, {"lr": 0.0})
    with pytest.raises(ConfigError, match="optimizer 'sgd' is unknown; valid: adamw, adam"):
        from_config(ClassificationConfig, {"optimizer": "sgd"})


def test_normalize_maps_uint8_nhwc_to_standardised_nchw():
    images = torch.full((2, 4, 4, 3), 255, dtype=torch.uint8)
    out = Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))(images)
    assert out.shape == (2, 3, 4, 4)
    assert torch.allclose(out, torch.full_like(out, 2.0))
