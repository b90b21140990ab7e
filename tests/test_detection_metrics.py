"""Detection metrics against pycocotools and hand counts, and the inference-time sweep against a
direct recomputation."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pandas as pd
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from torchvision.models.detection.roi_heads import RoIHeads

from trainables.detection_inference import (
    CANDIDATE_MIN_CONFIDENCE,
    DEFAULT_CONFIDENCES,
    DEFAULT_NMS_IOUS,
    best_inference,
    candidate_cap,
    candidate_settings,
    cap_warning,
    images_at_cap,
    inference_grid,
    postprocess,
)
from trainables.metrics import (
    average_precision_50,
    box_iou,
    count_table,
    detection_counts,
    detection_scores,
    match_detections,
)

NAMES = ("RBC", "WBC", "Platelets")


def _xywh(box) -> list[float]:
    x1, y1, x2, y2 = (float(v) for v in box)
    return [x1, y1, x2 - x1, y2 - y1]


def _coco_ap(truth_boxes, truth_labels, detections, num_classes) -> tuple[np.ndarray, float]:
    """pycocotools' AP at IoU 0.5, area "all", 100 detections: per class (nan without truth
    boxes) and the mean it reports."""
    annotations = []
    for image, (boxes, labels) in enumerate(zip(truth_boxes, truth_labels)):
        for box, label in zip(boxes, labels):
            x, y, width, height = _xywh(box)
            annotations.append({"id": len(annotations) + 1, "image_id": image + 1, "category_id": int(label) + 1,
                                "bbox": [x, y, width, height], "area": width * height, "iscrowd": 0})
    results = [{"image_id": int(row[0]) + 1, "category_id": int(row[6]) + 1, "bbox": _xywh(row[1:5]),
                "score": float(row[5])} for row in detections]
    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO()
        truth.dataset = {"images": [{"id": i + 1} for i in range(len(truth_boxes))], "annotations": annotations,
                         "categories": [{"id": c + 1, "name": str(c)} for c in range(num_classes)]}
        truth.createIndex()
        evaluation = COCOeval(truth, truth.loadRes(results), "bbox")
        evaluation.params.iouThrs = np.array([0.5])
        evaluation.evaluate()
        evaluation.accumulate()
    precision = evaluation.eval["precision"][0, :, :, 0, 2]
    per_class = np.where((precision > -1).all(axis=0), precision.mean(axis=0), np.nan)
    return per_class, float(np.mean(precision[precision > -1]))


def _scene(seed: int, *, num_images: int = 16, distinct_scores: bool = False, crowded_image: bool = False):
    """Random truth boxes (the last class never present, some images empty) and float32
    detections: jittered truth boxes (scored 0.3-1), some relabelled, plus random false positives
    (scored 0-0.7); scores rounded to tenths (many ties) unless ``distinct_scores``.
    ``crowded_image`` gives image 1 over 100 false positives of each class, scored 0.6-0.7, so
    that some of its true positives fall out of pycocotools' 100 per image and class."""
    rng = np.random.default_rng(seed)
    truth_boxes, truth_labels, rows = [], [], []
    for image in range(num_images):
        count = rng.integers(0, 7) if image % 4 else 0
        corner = rng.uniform(0, 200, (count, 2))
        boxes = np.hstack([corner, corner + rng.uniform(8, 50, (count, 2))])
        labels = rng.integers(0, len(NAMES) - 1, count)
        truth_boxes.append(boxes)
        truth_labels.append(labels)
        if rng.random() < 0.15:
            continue
        for box, label in zip(boxes, labels):
            for _ in range(rng.integers(0, 3)):
                size = box[2:] - box[:2]
                jittered = box + rng.normal(0, 0.07, 4) * np.r_[size, size]
                rows.append([image, *jittered, rng.uniform(0.3, 1.0),
                             label if rng.random() < 0.9 else rng.integers(0, len(NAMES))])
        crowd = 350 if crowded_image and image == 1 else 0
        for index in range(rng.integers(0, 5) + crowd):
            corner = rng.uniform(0, 200, 2)
            rows.append([image, *corner, *(corner + rng.uniform(8, 50, 2)),
                         rng.uniform(0.6 if index < crowd else 0.0, 0.7), rng.integers(0, len(NAMES))])
    detections = np.array(rows, dtype=np.float32)
    if not distinct_scores:
        detections[:, 5] = np.round(detections[:, 5], 1)
    return truth_boxes, truth_labels, detections


def _duplicated(truth_boxes, truth_labels, detections, repeats):
    """The scene with each image repeated ``repeats[i]`` times, copies next to each other."""
    copies = np.repeat(np.arange(len(truth_boxes)), repeats)
    rows = [np.c_[np.full(np.sum(detections[:, 0] == source), new), detections[detections[:, 0] == source, 1:]]
            for new, source in enumerate(copies)]
    return ([truth_boxes[i] for i in copies], [truth_labels[i] for i in copies],
            np.concatenate(rows).astype(np.float32) if rows else detections[:0])


@pytest.mark.parametrize("seed", range(6))
def test_ap50_per_class_and_map50_equal_pycocotools(seed):
    truth_boxes, truth_labels, detections = _scene(seed, distinct_scores=seed % 3 == 2, crowded_image=seed % 2 == 1)
    ours = average_precision_50(truth_boxes, truth_labels, detections, NAMES)
    per_class, mean = _coco_ap(truth_boxes, truth_labels, detections, len(NAMES))
    assert np.isnan(per_class[-1]) and np.isnan(ours[f"ap50_{NAMES[-1]}"])
    assert np.allclose([ours[f"ap50_{name}"] for name in NAMES], per_class, atol=1e-9, equal_nan=True)
    assert float(ours["map50"]) == pytest.approx(mean, abs=1e-9)


def test_ap50_counts_only_the_best_100_detections_of_an_image_and_class():
    truth_boxes, truth_labels = [np.array([[0.0, 0.0, 10.0, 10.0]])], [np.array([0])]
    false_positives = [[0, 50, 50, 60, 60, 0.9, 0]] * 100
    found_late = np.array(false_positives + [[0, 0, 0, 10, 10, 0.1, 0]], dtype=np.float32)
    assert float(average_precision_50(truth_boxes, truth_labels, found_late, NAMES[:1])["ap50_RBC"]) == 0.0
    assert float(average_precision_50(truth_boxes, truth_labels, found_late[1:], NAMES[:1])["ap50_RBC"]) > 0.0


def test_integer_weights_give_the_ap_of_the_duplicated_images():
    truth_boxes, truth_labels, detections = _scene(10, distinct_scores=True)
    repeats = np.random.default_rng(11).integers(0, 4, len(truth_boxes))
    weighted = average_precision_50(truth_boxes, truth_labels, detections, NAMES, repeats)
    dup_boxes, dup_labels, dup_detections = _duplicated(truth_boxes, truth_labels, detections, repeats)
    duplicated = average_precision_50(dup_boxes, dup_labels, dup_detections, NAMES)
    per_class, mean = _coco_ap(dup_boxes, dup_labels, dup_detections, len(NAMES))
    for index, name in enumerate(NAMES):
        assert np.allclose(weighted[f"ap50_{name}"], duplicated[f"ap50_{name}"], atol=1e-12, equal_nan=True)
        assert np.allclose(weighted[f"ap50_{name}"], per_class[index], atol=1e-9, equal_nan=True)
    assert float(weighted["map50"]) == pytest.approx(mean, abs=1e-9)


def test_a_stack_of_weights_gives_one_ap_per_resample():
    truth_boxes, truth_labels, detections = _scene(12)
    weights = np.random.default_rng(13).multinomial(len(truth_boxes), np.full(len(truth_boxes), 1 / len(truth_boxes)),
                                                    size=7).astype(float)
    stacked = average_precision_50(truth_boxes, truth_labels, detections, NAMES, weights)
    for key, values in stacked.items():
        assert values.shape == (7,)
        looped = [average_precision_50(truth_boxes, truth_labels, detections, NAMES, row)[key] for row in weights]
        assert np.allclose(values, looped, equal_nan=True)


def test_ap_of_a_resample_without_a_class_is_nan_and_left_out_of_the_mean():
    truth_boxes = [np.array([[0.0, 0.0, 10.0, 10.0]]), np.array([[0.0, 0.0, 10.0, 10.0]])]
    truth_labels = [np.array([0]), np.array([1])]
    detections = np.array([[0, 0, 0, 10, 10, 0.9, 0], [1, 20, 20, 30, 30, 0.8, 1]], dtype=np.float32)
    scores = average_precision_50(truth_boxes, truth_labels, detections, NAMES[:2], np.array([[1.0, 0.0], [0.0, 1.0]]))
    assert np.array_equal(scores["ap50_WBC"], [np.nan, 0.0], equal_nan=True)
    assert np.allclose(scores["map50"], [1.0, 0.0])


def test_matching_takes_detections_by_score_and_each_truth_box_once():
    truth_boxes, truth_labels = [np.array([[0.0, 0.0, 10.0, 10.0], [30.0, 0.0, 40.0, 10.0]])], [np.array([0, 0])]
    detections = np.array([[0, 0, 0, 10, 10, 0.5, 0],      # exact, but scored lower
                           [0, 1, 0, 11, 10, 0.9, 0],      # IoU 0.82, scored higher: takes the box
                           [0, 30, 0, 40, 10, 0.7, 1],     # right place, wrong class
                           [0, 30, 0, 40, 10, 0.6, 0]], dtype=np.float32)
    assert match_detections(truth_boxes, truth_labels, detections).tolist() == [False, True, False, True]
    assert match_detections(truth_boxes, truth_labels, detections, iou_threshold=0.9).tolist() == [
        True, False, False, True]


def test_box_iou_of_overlapping_touching_and_equal_boxes():
    first = np.array([[0.0, 0.0, 10.0, 10.0]])
    second = np.array([[5.0, 0.0, 15.0, 10.0], [10.0, 0.0, 20.0, 10.0], [0.0, 0.0, 10.0, 10.0]])
    assert np.allclose(box_iou(first, second), [[50 / 150, 0.0, 1.0]])


def _hand_scene():
    """Image 0: truth boxes A, B (class 0) and C (class 1); detections A (0.9), B shifted (0.8),
    A again (0.7), C with class 0 (0.6), and a class-1 box on nothing (0.3). Image 1: one class-1
    truth box, no detection. Image 2: empty."""
    truth_boxes = [np.array([[0, 0, 10, 10], [20, 20, 30, 30], [50, 50, 60, 60]], dtype=float),
                   np.array([[5, 5, 15, 15]], dtype=float), np.zeros((0, 4))]
    truth_labels = [np.array([0, 0, 1]), np.array([1]), np.zeros(0, dtype=int)]
    detections = np.array([[0, 0, 0, 10, 10, 0.9, 0], [0, 21, 20, 31, 30, 0.8, 0], [0, 0, 0, 10, 10, 0.7, 0],
                           [0, 50, 50, 60, 60, 0.6, 0], [0, 100, 100, 110, 110, 0.3, 1]], dtype=np.float32)
    return truth_boxes, truth_labels, detections


def test_matched_scores_and_count_errors_of_a_hand_made_scene():
    truth_boxes, truth_labels, detections = _hand_scene()
    counts = detection_counts(truth_boxes, truth_labels, detections, 2, min_confidence=0.5)
    assert counts.sum(axis=0).tolist() == [[2, 2, 0], [0, 0, 2]]
    scores = detection_scores(truth_boxes, truth_labels, detections, ("a", "b"), min_confidence=0.5)
    expected = {"precision": 0.5, "recall": 0.5, "f1": 0.5, "accuracy": 1 / 3, "count_mae": 2 / 3,
                "precision_a": 0.5, "recall_a": 1.0, "f1_a": 2 / 3, "accuracy_a": 0.5, "count_mae_a": 2 / 3,
                "precision_b": 0.0, "recall_b": 0.0, "f1_b": 0.0, "accuracy_b": 0.0, "count_mae_b": 2 / 3,
                "ap50_a": 1.0, "ap50_b": 0.0, "map50": 0.5}
    assert scores.keys() == expected.keys()
    assert {key: float(value) for key, value in scores.items()} == pytest.approx(expected)
    everything = detection_scores(truth_boxes, truth_labels, detections, ("a", "b"))
    assert float(everything["precision_b"]) == 0.0 and float(everything["count_mae_b"]) == pytest.approx(1 / 3)
    assert float(everything["precision"]) == pytest.approx(2 / 5) and float(everything["map50"]) == 0.5


def test_detection_scores_with_integer_weights_equal_the_duplicated_images():
    truth_boxes, truth_labels, detections = _scene(20, num_images=9, distinct_scores=True)
    repeats = np.random.default_rng(21).integers(0, 4, (3, len(truth_boxes)))
    weighted = detection_scores(truth_boxes, truth_labels, detections, NAMES, repeats, min_confidence=0.3)
    for row, resample in enumerate(repeats):
        duplicated = detection_scores(*_duplicated(truth_boxes, truth_labels, detections, resample), NAMES,
                                      min_confidence=0.3)
        for key, value in duplicated.items():
            assert np.allclose(weighted[key][row], value, atol=1e-12, equal_nan=True), key


def test_count_table_has_actual_and_automatic_counts_per_image():
    truth_boxes, truth_labels, detections = _hand_scene()
    rows = count_table(truth_labels, detections, ("a", "b"), min_confidence=0.5)
    assert rows == [{"image": 0, "actual_a": 2, "automatic_a": 4, "actual_b": 1, "automatic_b": 0},
                    {"image": 1, "actual_a": 0, "automatic_a": 0, "actual_b": 1, "automatic_b": 0},
                    {"image": 2, "actual_a": 0, "automatic_a": 0, "actual_b": 0, "automatic_b": 0}]


def test_bad_inputs_are_named():
    truth_boxes, truth_labels, detections = _hand_scene()
    with pytest.raises(ValueError, match="label index 5.0"):
        detection_scores(truth_boxes, truth_labels, np.r_[detections, [[0, 0, 0, 1, 1, 0.5, 5]]], ("a", "b"))
    with pytest.raises(ValueError, match="image index 3.0"):
        average_precision_50(truth_boxes, truth_labels, np.r_[detections, [[3, 0, 0, 1, 1, 0.5, 0]]], ("a", "b"))
    with pytest.raises(ValueError, match="shape"):
        detection_scores(truth_boxes, truth_labels, detections, ("a", "b"), np.ones(4))
    with pytest.raises(ValueError, match="iou_threshold must be in"):
        match_detections(truth_boxes, truth_labels, detections, iou_threshold=0.0)
    with pytest.raises(ValueError, match="nms_iou"):
        postprocess(detections, min_confidence=0.5, nms_iou=1.5)


def _candidates(seed: int, num_images: int = 20) -> np.ndarray:
    """Clustered candidate boxes (so that NMS has work), distinct scores, three classes, one
    image with over 1000 candidates (torchvision's per-class NMS path)."""
    rng = np.random.default_rng(seed)
    rows = []
    for image in range(num_images):
        centres = rng.uniform(20, 180, (rng.integers(1, 6), 2))
        for _ in range(1100 if image == 3 else rng.integers(0, 150)):
            centre = centres[rng.integers(len(centres))] + rng.normal(0, 4, 2)
            half = rng.uniform(5, 15, 2)
            rows.append([image, *(centre - half), *(centre + half), 0.0, rng.integers(0, len(NAMES))])
    candidates = np.array(rows, dtype=np.float32)
    candidates[:, 5] = (rng.permutation(len(rows)) + 1) / (len(rows) + 1)
    return candidates


def _reference_postprocess(candidates, min_confidence, nms_iou, max_per_image):
    """Per image and class, greedy NMS in descending score; then the best of each image."""
    kept = []
    for image in np.unique(candidates[:, 0]):
        rows = candidates[(candidates[:, 0] == image) & (candidates[:, 5] >= min_confidence)]
        survivors = []
        for label in np.unique(rows[:, 6]):
            chosen = []
            for row in sorted(rows[rows[:, 6] == label], key=lambda r: -r[5]):
                if not chosen or box_iou(row[None, 1:5], np.array(chosen)[:, 1:5]).max() <= nms_iou:
                    chosen.append(row)
            survivors += chosen
        kept += sorted(survivors, key=lambda r: -r[5])[:max_per_image]
    return np.array(kept, dtype=np.float32).reshape(-1, 7)


@pytest.mark.parametrize("min_confidence,nms_iou,max_per_image", [(0.4, 0.2, 100), (0.7, 0.5, 100), (0.0, 0.3, 15)])
def test_postprocess_equals_a_direct_nms(min_confidence, nms_iou, max_per_image):
    candidates = _candidates(30)
    ours = postprocess(candidates, min_confidence=min_confidence, nms_iou=nms_iou, max_per_image=max_per_image)
    assert np.array_equal(ours, _reference_postprocess(candidates, min_confidence, nms_iou, max_per_image))


def _pack(boxes, scores, labels) -> np.ndarray:
    return np.concatenate([np.c_[np.full(len(b), image), b.numpy(), s.numpy(), lab.numpy() - 1]
                           for image, (b, s, lab) in enumerate(zip(boxes, scores, labels))]).astype(np.float32)


def test_postprocessed_candidates_equal_torchvision_roi_heads_output():
    generator = torch.Generator().manual_seed(0)
    proposals = [torch.rand(n, 2, generator=generator) * 150 for n in (300, 200)]
    proposals = [torch.cat([p, p + 10 + torch.rand(len(p), 2, generator=generator) * 40], dim=1) for p in proposals]
    logits = torch.randn(500, len(NAMES) + 1, generator=generator) * 2
    regression = torch.randn(500, 4 * (len(NAMES) + 1), generator=generator) * 0.2

    def output(score_thresh, nms_thresh, per_image):
        heads = RoIHeads(None, None, None, 0.5, 0.5, 512, 0.25, None, score_thresh, nms_thresh, per_image)
        return _pack(*heads.postprocess_detections(logits, regression, proposals, [(200, 200), (200, 200)]))

    candidates = output(0.0, 1.0, 10_000)
    for min_confidence, nms_iou, per_image in [(0.4, 0.2, 100), (0.7, 0.5, 100), (0.05, 0.3, 20)]:
        assert np.array_equal(postprocess(candidates, min_confidence=min_confidence, nms_iou=nms_iou,
                                          max_per_image=per_image), output(min_confidence, nms_iou, per_image))


def test_candidates_replay_torchvision_exactly_at_every_grid_setting():
    """Candidates output under ``candidate_settings`` (here 1,500 proposals per image, so over
    1,000 candidates each: the old fixed cap would have cut them) replayed at each setting of the
    grid equal torchvision's own post-processing at that setting."""
    generator = torch.Generator().manual_seed(1)
    count = 1500
    proposals = [torch.rand(count, 2, generator=generator) * 150 for _ in range(2)]
    proposals = [torch.cat([p, p + 10 + torch.rand(count, 2, generator=generator) * 40], dim=1) for p in proposals]
    logits = torch.randn(2 * count, len(NAMES) + 1, generator=generator) * 2
    regression = torch.randn(2 * count, 4 * (len(NAMES) + 1), generator=generator) * 0.2

    def output(score_thresh, nms_thresh, detections_per_img):
        heads = RoIHeads(None, None, None, 0.5, 0.5, 512, 0.25, None, score_thresh, nms_thresh, detections_per_img)
        return _pack(*heads.postprocess_detections(logits, regression, proposals, [(200, 200), (200, 200)]))

    candidates = output(**candidate_settings(len(NAMES), proposals=count))
    assert np.bincount(candidates[:, 0].astype(int)).min() > 1000
    assert candidates[:, 5].min() >= CANDIDATE_MIN_CONFIDENCE
    assert images_at_cap(candidates, candidate_cap(len(NAMES), proposals=count)) == 0
    for min_confidence in DEFAULT_CONFIDENCES:
        for nms_iou in DEFAULT_NMS_IOUS:
            assert np.array_equal(postprocess(candidates, min_confidence=min_confidence, nms_iou=nms_iou),
                                  output(min_confidence, nms_iou, 100)), (min_confidence, nms_iou)


def test_the_candidate_cap_is_every_box_that_can_reach_the_lowest_confidence():
    assert candidate_cap(3) == 1000 * 3 and candidate_cap(2) == 1000 * 2
    assert candidate_cap(5, proposals=10, lowest_confidence=0.3) == 10 * 3
    assert candidate_cap(5, proposals=10, lowest_confidence=0.5) == 10 * 2


def test_the_grid_warns_naming_the_images_that_reached_the_candidate_cap():
    candidates = _candidates(50, num_images=6)
    truth_boxes = [candidates[candidates[:, 0] == image][:3, 1:5] for image in range(6)]
    truth_labels = [candidates[candidates[:, 0] == image][:3, 6].astype(int) for image in range(6)]
    per_image = np.bincount(candidates[:, 0].astype(int), minlength=6)
    tiny = int(np.sort(per_image)[-2])  # exactly two images hold this many candidates or more
    capped = inference_grid(truth_boxes, truth_labels, candidates, NAMES, confidences=(0.4,), nms_ious=(0.5,), cap=tiny)
    assert capped["capped_images"].tolist() == [2] and capped["candidate_cap"].tolist() == [tiny]
    assert cap_warning(capped).startswith(f"Warning: 2 validation image(s) reached the cap of {tiny:,} cached")
    roomy = inference_grid(truth_boxes, truth_labels, candidates, NAMES, confidences=(0.4,), nms_ious=(0.5,))
    assert roomy["capped_images"].tolist() == [0] and cap_warning(roomy) is None
    with pytest.raises(ValueError, match="confidences must be at least 0.3"):
        inference_grid(truth_boxes, truth_labels, candidates, NAMES, confidences=(0.1, 0.4))


def test_inference_grid_rows_equal_the_scores_of_directly_postprocessed_candidates():
    candidates = _candidates(40, num_images=8)
    truth = [(candidates[candidates[:, 0] == image][::40, 1:5].astype(float),
              candidates[candidates[:, 0] == image][::40, 6].astype(int)) for image in range(8)]
    truth_boxes, truth_labels = [t[0] for t in truth], [t[1] for t in truth]
    grid = inference_grid(truth_boxes, truth_labels, candidates, NAMES, confidences=(0.4, 0.8), nms_ious=(0.2, 0.5))
    assert grid[["min_confidence", "nms_iou"]].values.tolist() == [[0.4, 0.2], [0.4, 0.5], [0.8, 0.2], [0.8, 0.5]]
    for _, row in grid.iterrows():
        detections = postprocess(candidates, min_confidence=row["min_confidence"], nms_iou=row["nms_iou"])
        direct = detection_scores(truth_boxes, truth_labels, detections, NAMES, min_confidence=row["min_confidence"])
        assert {key: row[key] for key in direct} == pytest.approx(
            {key: float(value) for key, value in direct.items()}, nan_ok=True)
    assert {"map50", "precision", "recall", "f1", "accuracy", "count_mae"} <= set(grid.columns)


def test_best_inference_breaks_ties_by_higher_confidence_then_lower_nms():
    grid = pd.DataFrame({"min_confidence": [0.4, 0.7, 0.7, 0.9, 0.9], "nms_iou": [0.2, 0.5, 0.2, 0.2, 0.3],
                         "map50": [0.9, 0.9, 0.9, 0.8, np.nan], "count_mae": [1.0, 0.5, 0.5, 0.7, 0.2]})
    assert best_inference(grid) == {"min_confidence": 0.7, "nms_iou": 0.2}
    assert best_inference(grid, "count_mae") == {"min_confidence": 0.9, "nms_iou": 0.3}
    with pytest.raises(ValueError, match="'f2'"):
        best_inference(grid, "f2")
