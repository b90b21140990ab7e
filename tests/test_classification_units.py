"""Class weights, oversampling and balancing, binary heads, config validation (with the epoch
size both image trainables share) and normalisation of the classifier."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trainables.arrays import Normalize
from trainables.classification import (
    ClassificationConfig,
    balanced_indices,
    class_probabilities,
    class_weights,
    classification_loss,
    output_units,
    oversampled_indices,
    predicted_classes,
)
from trainables.config import ConfigError, from_config
from trainables.segmentation import SegmentationConfig


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
    with pytest.raises(ConfigError, match=r"unknown config key\(s\) \['learning_rate'\].*valid keys: .*\bmodel\b"):
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


@pytest.mark.parametrize("config_class", [ClassificationConfig, SegmentationConfig])
@pytest.mark.parametrize("samples", [0, -32])
def test_an_epoch_of_no_samples_is_refused_naming_the_key_and_the_fix(config_class, samples):
    with pytest.raises(ConfigError, match=r"'epoch_samples' must be a positive number of samples, or null for "
                                          r"one full pass") as caught:
        from_config(config_class, {"epoch_samples": samples})
    assert caught.value.key == "epoch_samples"
    assert from_config(config_class, {"epoch_samples": 1}).epoch_samples == 1
    assert from_config(config_class, {"epoch_samples": None}).epoch_samples is None


def test_normalize_maps_uint8_nhwc_to_standardised_nchw():
    images = torch.full((2, 4, 4, 3), 255, dtype=torch.uint8)
    out = Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))(images)
    assert out.shape == (2, 3, 4, 4)
    assert torch.allclose(out, torch.full_like(out, 2.0))


def test_balancing_gives_every_class_the_same_count_undersampling_large_and_duplicating_small_classes():
    labels = np.array([0] * 50 + [1] * 7 + [2] * 3)
    indices = balanced_indices(labels, 20, np.random.default_rng(0))
    assert np.bincount(labels[indices]).tolist() == [20, 20, 20]
    assert len(set(indices[labels[indices] == 0].tolist())) == 20
    assert set(indices[labels[indices] == 1].tolist()) == set(np.flatnonzero(labels == 1))


def test_balancing_and_oversampling_cannot_be_combined_and_dropout_must_be_a_probability():
    with pytest.raises(ConfigError, match="balance_per_class"):
        from_config(ClassificationConfig, {"balance_per_class": 700, "oversampling": True})
    with pytest.raises(ConfigError, match="'dropout' must be in"):
        from_config(ClassificationConfig, {"dropout": 1.0})


def test_two_classes_train_one_logit_with_bce_and_weights_as_pos_weight():
    assert (output_units(2), output_units(4)) == (1, 4)
    logits = torch.tensor([[2.0], [-1.0], [0.5]])
    labels = torch.tensor([1, 0, 0])
    weights = torch.tensor([0.5, 2.0])
    expected = torch.nn.functional.binary_cross_entropy_with_logits(
        logits[:, 0], labels.float(), pos_weight=torch.tensor([4.0]))
    assert torch.isclose(classification_loss(logits, labels, weights), expected)
    assert predicted_classes(logits).tolist() == [1, 0, 1]
    probabilities = class_probabilities(logits.numpy())
    assert probabilities[:, 1] == pytest.approx(torch.sigmoid(logits[:, 0]).numpy())
    assert probabilities.sum(axis=1) == pytest.approx(np.ones(3))


def test_multi_class_outputs_use_softmax_and_weighted_cross_entropy():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    labels = torch.tensor([0, 2])
    weights = torch.tensor([1.0, 2.0, 3.0])
    expected = torch.nn.functional.cross_entropy(logits, labels, weight=weights)
    assert torch.isclose(classification_loss(logits, labels, weights), expected)
    assert class_probabilities(logits.numpy()) == pytest.approx(torch.softmax(logits, 1).numpy())


def test_normalize_handles_grey_images_with_one_channel():
    images = torch.full((2, 4, 4, 1), 0, dtype=torch.uint8)
    out = Normalize((0.485,), (0.229,))(images)
    assert out.shape == (2, 1, 4, 4)
    assert torch.allclose(out, torch.full_like(out, -0.485 / 0.229))
