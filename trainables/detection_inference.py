"""Detection post-processing replayed on cached candidates, and the inference-time sweep.

Study 4 tunes two inference settings without retraining: the detection minimum confidence and
the detection NMS IoU threshold. The analysis runs each trained model once with the grid's lowest
confidence as score threshold, no suppression (``box_nms_thresh=1.0``) and room for every box
that can pass that threshold (``candidate_settings``), and caches the candidates as one packed
D x 7 array (image index, x1, y1, x2, y2, score, class index; see ``trainables.metrics``).
``postprocess`` turns them into what the model outputs with any setting of the grid, and
``inference_grid`` scores the grid.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
from torchvision.ops import batched_nms

from trainables.metrics import DETECTION_COLUMNS, detection_scores, encode_masks, mask_average_precision_50

# Seed 003 reported val mAP at confidence 0.4 and trained with 0.70-0.90; it found NMS 0.20 best
# at inference, and torchvision's default is 0.5.
DEFAULT_CONFIDENCES = (0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9)
DEFAULT_NMS_IOUS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
# The cached candidates hold every box scoring at least this: a grid confidence below it would
# replay on boxes the cache dropped.
CANDIDATE_MIN_CONFIDENCE = min(DEFAULT_CONFIDENCES)
# torchvision's eval-mode RPN keeps this many proposals per image (``rpn_post_nms_top_n_test``,
# which ``build_detector`` leaves at its default).
RPN_PROPOSALS_PER_IMAGE = 1000


def candidate_cap(num_classes: int, *, proposals: int = RPN_PROPOSALS_PER_IMAGE,
                  lowest_confidence: float = CANDIDATE_MIN_CONFIDENCE) -> int:
    """How many candidates per image scoring at least ``lowest_confidence`` a model can output
    at most: torchvision's RoIHeads scores each of the ``proposals`` for every class by one
    softmax over the classes and background, so at most floor(1 / lowest_confidence) of one
    proposal's classes reach the confidence (their scores sum to at most 1), and NMS at IoU 1
    suppresses nothing. A cache this large never drops a box that some grid setting could keep."""
    return proposals * min(num_classes, math.floor(1.0 / lowest_confidence))


def candidate_settings(num_classes: int, *, proposals: int = RPN_PROPOSALS_PER_IMAGE) -> dict[str, float]:
    """The RoIHeads attributes (``score_thresh``, ``nms_thresh``, ``detections_per_img``) under
    which a model outputs the cached candidates: every box scoring at least
    ``CANDIDATE_MIN_CONFIDENCE`` (torchvision keeps scores above ``score_thresh``; the float32
    just below the confidence keeps a score equal to it, as ``postprocess`` does), nothing
    suppressed, and ``candidate_cap`` per image."""
    floor = float(np.nextafter(np.float32(CANDIDATE_MIN_CONFIDENCE), np.float32(0.0)))
    return {"score_thresh": floor, "nms_thresh": 1.0,
            "detections_per_img": candidate_cap(num_classes, proposals=proposals)}


def images_at_cap(candidates: np.ndarray, cap: int) -> int:
    """How many images' candidates reached ``cap``: for those the cache may have dropped boxes."""
    images = np.asarray(candidates)[:, 0].astype(np.int64) if len(candidates) else np.zeros(0, np.int64)
    return int(np.sum(np.bincount(images) >= cap))


def cap_warning(grid: pd.DataFrame) -> str | None:
    """The warning to print and report when validation images reached the candidate cap (a grid
    from ``inference_grid``), or None when none did."""
    if "capped_images" not in grid.columns or grid.empty or grid["capped_images"].max() == 0:
        return None
    return (f"Warning: {int(grid['capped_images'].max())} validation image(s) reached the cap of "
            f"{int(grid['candidate_cap'].max()):,} cached candidates per image; boxes beyond it were dropped, so "
            f"at some settings the grid may differ from what the model itself would output.")


def _check_settings(min_confidence: float, nms_iou: float, max_per_image: int) -> None:
    if not 0.0 <= min_confidence <= 1.0:
        raise ValueError(f"min_confidence must be in [0, 1], got {min_confidence!r}")
    if not 0.0 <= nms_iou <= 1.0:
        raise ValueError(f"nms_iou must be in [0, 1], got {nms_iou!r}")
    if max_per_image < 1:
        raise ValueError(f"max_per_image must be at least 1, got {max_per_image!r}")


def _image_runs(image: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of each run of equal image indices in a sorted index array."""
    starts = np.flatnonzero(np.r_[True, image[1:] != image[:-1]]) if len(image) else np.zeros(0, dtype=np.int64)
    return list(zip(starts.tolist(), np.r_[starts[1:], len(image)].tolist()))


def postprocess(candidates: np.ndarray, *, min_confidence: float, nms_iou: float,
                max_per_image: int = 100) -> np.ndarray:
    """The candidates a model would output with these inference settings, as a packed array
    (image by image, each by descending score).

    The steps are torchvision's ``RoIHeads.postprocess_detections`` after its score threshold and
    small-box removal, which the cached candidates already passed: keep scores at or above
    ``min_confidence``, then per image ``torchvision.ops.batched_nms`` over the classes at
    ``nms_iou`` (a box goes when a better box of its class overlaps it by more), then the
    ``max_per_image`` best. The NMS runs per image on float32 boxes, the same call on the same
    boxes as the model's, so the result is the model's output with ``box_score_thresh``,
    ``box_nms_thresh`` and ``box_detections_per_img`` set so, except for a score exactly equal
    to the threshold, which torchvision drops (``>``) and this keeps (``>=``, the Matterport
    ``DETECTION_MIN_CONFIDENCE`` rule of the seed and of ``detection_scores``).
    """
    rows = postprocessed_rows(candidates, min_confidence=min_confidence, nms_iou=nms_iou,
                              max_per_image=max_per_image)
    candidates = np.asarray(candidates)
    return candidates.reshape(0, len(DETECTION_COLUMNS)) if candidates.size == 0 else candidates[rows]


def postprocessed_rows(candidates: np.ndarray, *, min_confidence: float, nms_iou: float,
                       max_per_image: int = 100) -> np.ndarray:
    """The indices of the candidate rows ``postprocess`` keeps, in its order: what selects a
    Mask R-CNN candidate's mask along with its box."""
    _check_settings(min_confidence, nms_iou, max_per_image)
    candidates = np.asarray(candidates)
    if candidates.size == 0:
        return np.zeros(0, dtype=np.int64)
    if candidates.ndim != 2 or candidates.shape[1] != len(DETECTION_COLUMNS):
        raise ValueError(f"candidates must be D x {len(DETECTION_COLUMNS)} ({', '.join(DETECTION_COLUMNS)}), "
                         f"got shape {candidates.shape}")
    passing = np.flatnonzero(candidates[:, 5] >= min_confidence)
    passing = passing[np.argsort(candidates[passing, 0], kind="stable")]
    values = torch.as_tensor(candidates[passing], dtype=torch.float32)
    labels = values[:, 6].to(torch.int64)
    kept = [start + batched_nms(values[start:stop, 1:5], values[start:stop, 5], labels[start:stop],
                                nms_iou)[:max_per_image].numpy()
            for start, stop in _image_runs(candidates[passing, 0])]
    return passing[np.concatenate(kept)] if kept else passing


def inference_grid(truth_boxes: Sequence[np.ndarray], truth_labels: Sequence[np.ndarray], candidates: np.ndarray,
                   class_names: tuple[str, ...], *, confidences: Sequence[float] = DEFAULT_CONFIDENCES,
                   nms_ious: Sequence[float] = DEFAULT_NMS_IOUS, max_per_image: int = 100,
                   cap: int | None = None) -> pd.DataFrame:
    """One row per (``min_confidence``, ``nms_iou``) setting with every ``detection_scores``
    value (``map50``, ``precision``, ``recall``, ``f1``, ``accuracy``, ``count_mae`` and their
    per-class values) of the candidates post-processed with that setting, and in every row
    ``candidate_cap`` (``cap``; default ``candidate_cap`` of these classes, the cap
    ``candidate_settings`` gives the model) and ``capped_images``, the images whose candidates
    reached it (see ``cap_warning``). Confidences below ``CANDIDATE_MIN_CONFIDENCE`` are refused:
    the cache holds no box scoring less."""
    if min(confidences) < CANDIDATE_MIN_CONFIDENCE:
        raise ValueError(f"confidences must be at least {CANDIDATE_MIN_CONFIDENCE} (the cached candidates' "
                         f"score threshold), got {min(confidences)!r}")
    cap = candidate_cap(len(class_names)) if cap is None else cap
    capped = images_at_cap(candidates, cap)
    rows = []
    for min_confidence in confidences:
        for nms_iou in nms_ious:
            detections = postprocess(candidates, min_confidence=min_confidence, nms_iou=nms_iou,
                                     max_per_image=max_per_image)
            scores = detection_scores(truth_boxes, truth_labels, detections, class_names,
                                      min_confidence=min_confidence)
            rows.append({"min_confidence": float(min_confidence), "nms_iou": float(nms_iou),
                         **{name: float(value) for name, value in scores.items()},
                         "candidate_cap": cap, "capped_images": capped})
    return pd.DataFrame(rows)


def best_inference(grid: pd.DataFrame, metric: str = "map50") -> dict[str, float]:
    """The setting of ``grid`` with the best ``metric`` (the lowest for a ``count_mae`` metric,
    the highest otherwise). Ties go to the higher confidence, then the lower NMS threshold: the
    setting that keeps fewer boxes, so equal scores favour the sparser output."""
    if metric not in grid.columns:
        raise ValueError(f"metric {metric!r} is not a grid column: {', '.join(map(str, grid.columns))}")
    ranked = grid.sort_values([metric, "min_confidence", "nms_iou"],
                              ascending=[metric.startswith("count_mae"), False, True],
                              na_position="last", kind="mergesort")
    if ranked.empty or np.isnan(ranked[metric].iloc[0]):
        raise ValueError(f"the grid has no defined {metric!r} to choose a setting by")
    best = ranked.iloc[0]
    return {"min_confidence": float(best["min_confidence"]), "nms_iou": float(best["nms_iou"])}


class DetectionTruth(NamedTuple):
    """What detections are scored against: per image the truth boxes, their class indices and,
    for data with instance masks, their ``encode_masks`` RLEs (None for box-only data)."""

    boxes: Sequence[np.ndarray]
    labels: Sequence[np.ndarray]
    masks: Sequence[list[dict]] | None = None


def detection_truth(split) -> DetectionTruth:
    """A split's truth: boxes and labels per image, and its masks as RLEs when it has masks."""
    masks = None if split.masks is None else tuple(encode_masks(m) for m in split.masks)
    return DetectionTruth(split.boxes, split.labels, masks)


# A Mask R-CNN's cached candidates: named arrays, stored as they are (no pickle). ``boxes`` is the
# packed D x 7 array, ``mask_counts`` each row's mask as the ASCII ``counts`` of its compressed
# RLE, ``image_sizes`` each image's (height, width), the size of its masks' RLEs.
INSTANCE_KEYS = ("boxes", "mask_counts", "image_sizes")


def instance_candidates(boxes: np.ndarray, masks: Sequence[list[dict]],
                        image_sizes: Sequence[tuple[int, int]]) -> dict[str, np.ndarray]:
    """Candidates with masks as ``INSTANCE_KEYS`` arrays, from the packed rows and per image
    the RLEs of its rows (in their order, as ``predict_instances`` gives them)."""
    boxes = np.asarray(boxes)
    flat = [rle for of_image in masks for rle in of_image]
    if len(flat) != len(boxes):
        raise ValueError(f"{len(flat)} masks for {len(boxes)} candidate rows")
    counts = np.array([rle["counts"].decode("ascii") for rle in flat], dtype=str).reshape(-1)
    by_row = np.empty_like(counts)
    by_row[np.argsort(boxes[:, 0], kind="stable") if len(boxes) else []] = counts
    return {"boxes": boxes, "mask_counts": by_row,
            "image_sizes": np.asarray(image_sizes, dtype=np.int64).reshape(-1, 2)}


def carries_masks(candidates: np.ndarray | Mapping[str, np.ndarray]) -> bool:
    """Whether cached candidates hold masks (a Mask R-CNN's ``instance_candidates``)."""
    return isinstance(candidates, Mapping)


def candidate_boxes(candidates: np.ndarray | Mapping[str, np.ndarray]) -> np.ndarray:
    """The packed D x 7 rows of cached candidates, with masks or without."""
    return np.asarray(candidates["boxes"] if carries_masks(candidates) else candidates)


def candidate_masks(candidates: Mapping[str, np.ndarray], rows: np.ndarray) -> list[list[dict]]:
    """Per image, the RLEs of the candidate ``rows`` on it, in the order of ``rows``: the
    ``detection_masks`` of ``boxes[rows]`` as ``mask_average_precision_50`` takes them."""
    sizes = np.asarray(candidates["image_sizes"])
    masks: list[list[dict]] = [[] for _ in range(len(sizes))]
    for row in np.asarray(rows, dtype=np.int64).tolist():
        image = int(candidates["boxes"][row, 0])
        masks[image].append({"size": [int(v) for v in sizes[image]],
                             "counts": str(candidates["mask_counts"][row]).encode("ascii")})
    return masks


def candidate_scores(truth: tuple, candidates: np.ndarray | Mapping[str, np.ndarray], class_names: tuple[str, ...],
                     weights: np.ndarray | None = None, *, min_confidence: float = 0.4,
                     nms_iou: float = 0.3) -> dict[str, np.ndarray]:
    """Every detection score of cached candidates post-processed with one inference setting
    (by default seed 003's evaluation confidence 0.4 and its training NMS 0.3) and, for
    candidates with masks, their mask AP@0.5 (``mask_map50``, ``mask_ap50_<class>``); with
    ``weights`` (B x n images) each value is an array over the B resamples."""
    truth = DetectionTruth(*truth)
    boxes = candidate_boxes(candidates)
    rows = postprocessed_rows(boxes, min_confidence=min_confidence, nms_iou=nms_iou)
    detections = boxes.reshape(-1, len(DETECTION_COLUMNS))[rows]
    scores = detection_scores(truth.boxes, truth.labels, detections, class_names, weights,
                              min_confidence=min_confidence)
    if not carries_masks(candidates):
        return scores
    if truth.masks is None:
        raise ValueError("candidates with masks are scored against truth with masks; this truth has none")
    return scores | mask_average_precision_50(truth.labels, truth.masks, detections, candidate_masks(candidates, rows),
                                              class_names, weights)


GRID_COLUMNS = ("min_confidence", "nms_iou", "map50", "precision", "recall", "f1", "accuracy", "count_mae",
                "candidate_cap", "capped_images")


def tune_detection_inference(truth: tuple, candidates: np.ndarray | Mapping[str, np.ndarray],
                             class_names: tuple[str, ...]) -> tuple[dict[str, float], list[dict]]:
    """The inference setting with the best box mAP@0.5 on validation candidates, and the grid it
    was chosen from (one row per setting, the scores the report plots, and the candidate cap's
    count of ``cap_warning``). A Mask R-CNN's setting is chosen on its boxes too: the grid
    replays boxes only, its masks are scored at the chosen setting (``candidate_scores``)."""
    truth = DetectionTruth(*truth)
    grid = inference_grid(truth.boxes, truth.labels, candidate_boxes(candidates), class_names)
    return best_inference(grid), grid[list(GRID_COLUMNS)].to_dict("records")
