"""Segmentation metrics against direct numpy computations, inference tuning, joint augmentation
and the trainable's config."""

from __future__ import annotations

import numpy as np
import pytest

from trainables.arrays import ArrayDataset
from trainables.augment import build_augmentation
from trainables.config import ConfigError, from_config
from trainables.datasets.base import SplitArrays
from trainables.metrics import binarize, segmentation_metrics
from trainables.segmentation import SegmentationConfig, mask_scores, tune_inference


def direct(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Scores of one image or of pooled pixels, straight from the definitions (0/0 is 1 when
    truth and prediction are both empty, else 0)."""
    t, p = truth.astype(bool).ravel(), predicted.astype(bool).ravel()
    tp, fp, fn = np.sum(t & p), np.sum(~t & p), np.sum(t & ~p)
    ratio = lambda a, b: a / b if b else float(not t.any() and not p.any())  # noqa: E731
    return {"accuracy": float(np.mean(t == p)), "precision": ratio(tp, tp + fp), "recall": ratio(tp, tp + fn),
            "iou": ratio(tp, tp + fp + fn), "dice": ratio(2 * tp, 2 * tp + fp + fn)}


def known_masks():
    rng = np.random.default_rng(0)
    truth = np.zeros((5, 8, 8), np.uint8)
    truth[0, 2:5, 2:5] = 1                      # a square
    truth[1, :4] = 1                            # half the image
    truth[3] = rng.integers(0, 2, (8, 8))       # noise; image 2 and 4 have no cell at all
    probabilities = np.clip(truth + rng.normal(0, 0.3, truth.shape), 0, 1)
    probabilities[4] = 0.0                      # empty truth, empty prediction: perfect
    probabilities[2, 0, 0] = 0.9                # empty truth, one false pixel
    return truth, probabilities


def test_pooled_and_per_image_scores_match_direct_computation():
    truth, probabilities = known_masks()
    predicted = probabilities >= 0.5
    ours = segmentation_metrics(truth, probabilities)
    pooled = direct(truth, predicted)
    per_image = [direct(t, p) for t, p in zip(truth, predicted)]
    for score in ("accuracy", "precision", "recall", "iou", "dice"):
        assert ours[f"{score}_pooled"] == pytest.approx(pooled[score])
        assert ours[f"{score}_per_image"] == pytest.approx(np.mean([s[score] for s in per_image]))
    assert per_image[4]["dice"] == 1.0 and per_image[2]["dice"] == 0.0
    assert per_image[2]["recall"] == 0.0 and per_image[4]["precision"] == 1.0
    p = np.clip(probabilities, 1e-7, 1 - 1e-7)
    bce = -(truth * np.log(p) + (1 - truth) * np.log(1 - p)).mean(axis=(1, 2)).mean()
    assert ours["loss"] == pytest.approx(bce)


def test_pooled_dice_and_iou_obey_dice_equals_two_iou_over_one_plus_iou():
    truth, probabilities = known_masks()
    ours = segmentation_metrics(truth, probabilities)
    assert ours["dice_pooled"] == pytest.approx(2 * ours["iou_pooled"] / (1 + ours["iou_pooled"]))


def test_resampling_weights_repeat_images():
    truth, probabilities = known_masks()
    weights = np.array([[2, 0, 1, 1, 0], [1, 1, 1, 1, 1]], dtype=float)
    batch = segmentation_metrics(truth, probabilities, weights=weights)
    repeated = np.repeat(np.arange(5), weights[0].astype(int))
    single = segmentation_metrics(truth[repeated], probabilities[repeated])
    for name, value in single.items():
        assert batch[name][0] == pytest.approx(float(value))
        assert batch[name][1] == pytest.approx(float(segmentation_metrics(truth, probabilities)[name]))


def test_binarize_drops_components_smaller_than_the_minimum_size():
    probabilities = np.zeros((1, 10, 10))
    probabilities[0, 1:4, 1:4] = 0.8     # 9 pixels
    probabilities[0, 7, 7] = 0.9         # 1 pixel
    assert binarize(probabilities, threshold=0.5).sum() == 10
    kept = binarize(probabilities, threshold=0.5, min_size=4)
    assert kept.sum() == 9 and not kept[0, 7, 7]
    assert binarize(probabilities, threshold=0.85).sum() == 1


def test_tuning_finds_the_threshold_that_separates_the_validation_masks():
    truth = np.zeros((4, 8, 8), np.uint8)
    truth[:, 2:6, 2:6] = 1
    probabilities = np.where(truth == 1, 0.3, 0.1)   # the cells sit at 0.3: 0.5 would miss them all
    chosen, grid = tune_inference(truth, probabilities)
    assert 0.1 < chosen["threshold"] <= 0.3
    best = max(grid, key=lambda row: row["dice_per_image"])
    assert best["dice_per_image"] == 1.0 and {k: best[k] for k in chosen} == chosen
    assert mask_scores(truth, probabilities, ("background", "cell"), **chosen)["dice_per_image"] == 1.0
    assert mask_scores(truth, probabilities, ("background", "cell"))["dice_per_image"] == 0.0


def test_joint_augmentation_moves_image_and_mask_together():
    rng = np.random.default_rng(1)
    masks = (rng.random((6, 16, 16)) > 0.7).astype(np.uint8)
    images = np.repeat((masks * 255)[..., None], 3, axis=3).astype(np.uint8)   # the mask painted in
    dataset = ArrayDataset(SplitArrays(images, masks, np.arange(6)), augment=build_augmentation("segmentation_flips"))
    moved = 0
    for index in range(len(dataset)):
        for _ in range(4):
            image, mask = dataset[index]
            assert np.array_equal(image[..., 0].numpy() > 127, mask.numpy().astype(bool))
            moved += not np.array_equal(mask.numpy(), masks[index])
    assert moved > 0


def test_config_rejects_unknown_losses_and_out_of_range_values():
    with pytest.raises(ConfigError, match="loss 'focal' is unknown; valid: bce, dice, bce_dice"):
        from_config(SegmentationConfig, {"loss": "focal"})
    with pytest.raises(ConfigError, match="dropout"):
        from_config(SegmentationConfig, {"dropout": 1.5})
    with pytest.raises(ConfigError, match="unknown"):
        from_config(SegmentationConfig, {"learning_rate": 0.1})
