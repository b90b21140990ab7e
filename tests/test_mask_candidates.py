"""A Mask R-CNN's cached test candidates carry their masks: they survive the analysis cache
without pickle, the bootstrap scoring gives mask AP@0.5 at the tuned inference setting, and the
confirmation compares candidates on ``mask_map50`` when the sweep selects on ``val_mask_map50``."""

from __future__ import annotations

import numpy as np
import pytest
from test_mask_ap import HEIGHT, NAMES, WIDTH, _scene

from analysis.rerun import ModelPredictions, PredictionCache, compare_with, metric_on_test, model_scores
from analysis.stats import resample_weights
from sweeps.registry import get_sweep
from trainables.detection_inference import (
    DetectionTruth,
    candidate_boxes,
    candidate_scores,
    carries_masks,
    instance_candidates,
    postprocess,
)
from trainables.metrics import encode_masks, mask_average_precision_50


def _candidates(seed: int, num_images: int = 6) -> tuple[DetectionTruth, dict[str, np.ndarray]]:
    truth, found = _scene(seed, num_images)
    masks = tuple(encode_masks(t[2]) for t in truth)
    return (DetectionTruth(tuple(t[0] for t in truth), tuple(t[1] for t in truth), masks),
            instance_candidates(np.concatenate([rows for rows, _ in found]), [encode_masks(m) for _, m in found],
                                [(HEIGHT, WIDTH)] * num_images))


def test_candidate_scores_give_the_mask_ap50_of_the_masks_that_postprocessing_keeps():
    truth, candidates = _candidates(0)
    scores = candidate_scores(truth, candidates, NAMES, min_confidence=0.5, nms_iou=0.3)
    kept = postprocess(candidates["boxes"], min_confidence=0.5, nms_iou=0.3)
    assert 0 < len(kept) < len(candidates["boxes"])
    _, found = _scene(0, 6)
    by_score = {(int(row[0]), float(row[5])): rle for rows, m in found for row, rle in zip(rows, encode_masks(m))}
    kept_masks = [[by_score[(image, float(row[5]))] for row in kept if row[0] == image] for image in range(6)]
    expected = mask_average_precision_50(truth.labels, truth.masks, kept, kept_masks, NAMES)
    assert float(scores["mask_map50"]) == pytest.approx(float(expected["mask_map50"]))
    assert 0 < scores["mask_map50"] < 1 and "map50" in scores
    box_only = candidate_scores(truth[:2], candidates["boxes"], NAMES, min_confidence=0.5, nms_iou=0.3)
    assert "mask_map50" not in box_only and box_only["map50"] == scores["map50"]


def test_mask_candidates_survive_the_prediction_cache_without_pickle(tmp_path):
    truth, candidates = _candidates(1)
    cache = PredictionCache(tmp_path, data_key="lymphoblast")
    cache.save({"trial": "a"}, candidates, {"inference": {"min_confidence": 0.4, "nms_iou": 0.3}})
    loaded, training = cache.load({"trial": "a"})
    assert carries_masks(loaded) and set(loaded) == set(candidates)
    assert all(array.dtype != object for array in loaded.values())
    np.testing.assert_array_equal(candidate_boxes(loaded), candidates["boxes"])
    weights = resample_weights(np.arange(6), resamples=20)
    assert candidate_scores(truth, loaded, NAMES, weights)["mask_map50"] == pytest.approx(
        candidate_scores(truth, candidates, NAMES, weights)["mask_map50"], nan_ok=True)
    box_only = PredictionCache(tmp_path, data_key="bccd")
    box_only.save({"trial": "b"}, candidates["boxes"], training)
    np.testing.assert_array_equal(box_only.load({"trial": "b"})[0], candidates["boxes"])


def test_candidates_are_compared_on_test_mask_ap50_when_the_sweep_selects_on_val_mask_map50():
    metric = get_sweep("lymphoblast_maskrcnn").metric
    assert metric == "val_mask_map50" and get_sweep("bccd_detection").metric == "val_map50"
    truth, candidates = _candidates(2)
    _, worse = _candidates(3)
    weights = resample_weights(np.arange(6), resamples=50)
    settings = {"inference": {"min_confidence": 0.4, "nms_iou": 0.3}}
    scores = {(trial, "sweep checkpoint"): [model_scores(candidate_scores, truth, NAMES,
                                                         ModelPredictions(trial, None, outputs, settings), weights)]
              for trial, outputs in (("winner", candidates), ("other", worse))}
    comparison = compare_with("winner", scores, metric_on_test(metric), "max", 0.95)
    assert list(comparison["trial_id"]) == ["other"] and list(comparison["metric"]) == ["mask_map50"]
    assert np.isfinite(comparison["difference"]).all()
