"""The detection trainable on tiny generated smears: config checks, the model each kind of data
gets, weights loading, class-balanced sampling, one training epoch end to end without Ray,
divergence, and the analysis's candidates and masks from the checkpoint."""

from __future__ import annotations

import functools
import json
import math
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.models.detection import FasterRCNN, MaskRCNN

from trainables import detection, engine
from trainables.checkpoints import META_FILE
from trainables.config import ConfigError, from_config
from trainables.datasets.detection import DetectionData, DetectionSplit, mask_box
from trainables.detection import (
    DetectionConfig,
    checkpoint_candidates,
    checkpoint_coco_scores,
    checkpoint_instance_candidates,
    checkpoint_masks,
    predict_detections,
    sampling_weights,
    training_batches,
    uniform_guess_loss,
    validation_metrics,
)
from trainables.detection_inference import (
    CANDIDATE_MIN_CONFIDENCE,
    RPN_PROPOSALS_PER_IMAGE,
    candidate_cap,
    candidate_scores,
    detection_truth,
    postprocess,
)
from trainables.engine import STOP_COMPLETED, STOP_DIVERGED, LoopSettings, Monitor, fit
from trainables.models import PretrainedWeightsError
from trainables.models.rcnn import build_detector

CLASSES = ("blast", "other")
SIZE = 64
TINY = {"backbone": "resnet50", "pretrained": False, "steps_per_epoch": 2, "batch_size": 1, "max_epochs": 1,
        "validation_steps": 2, "eval_batch_size": 2}
MONITOR = Monitor("val_map50", "max")


def smear(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A 64 x 64 image with one or two cells: red squares (class 0) and blue discs (class 1)."""
    image = rng.integers(200, 230, (SIZE, SIZE, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    masks, labels = [], []
    for _ in range(rng.integers(1, 3)):
        label, side = int(rng.integers(0, 2)), int(rng.integers(12, 20))
        x0, y0 = (int(v) for v in rng.integers(0, SIZE - side, 2))
        if label == 0:
            mask = (xx >= x0) & (xx < x0 + side) & (yy >= y0) & (yy < y0 + side)
        else:
            mask = (xx - x0 - side / 2) ** 2 + (yy - y0 - side / 2) ** 2 <= (side / 2) ** 2
        image[mask] = (180, 40, 60) if label == 0 else (60, 40, 180)
        masks.append(mask.astype(np.uint8))
        labels.append(label)
    masks = np.stack(masks)
    return image, np.stack([mask_box(m) for m in masks]), np.array(labels, np.int64), masks


def synthetic_split(count: int, seed: int) -> DetectionSplit:
    rng = np.random.default_rng(seed)
    samples = [smear(rng) for _ in range(count)]
    images, boxes, labels, masks = (tuple(column) for column in zip(*samples))
    return DetectionSplit(images=images, boxes=boxes, labels=labels, masks=masks,
                          sources=np.array([f"smear-{seed}-{i}" for i in range(count)]))


def box_only(data: DetectionData) -> DetectionData:
    return replace(data, splits={name: replace(split, masks=None) for name, split in data.splits.items()})


@pytest.fixture(scope="module")
def data() -> DetectionData:
    return DetectionData(name="smears", class_names=CLASSES,
                         splits={"train": synthetic_split(6, seed=1), "val": synthetic_split(4, seed=2)})


def run_trainable(config: dict, data: DetectionData, directory: Path) -> list[tuple[dict, Path | None]]:
    """The trainable, with ``fit`` reporting to a list instead of Ray Tune; each reported
    checkpoint is moved (not copied: it is hundreds of MB) under ``directory``. The device is the
    CPU: outside a trial, asking Ray for the trial's CPUs would start a local Ray instance in the
    test process."""
    reports = []

    def report(metrics, checkpoint=None):
        kept = None
        if checkpoint is not None:
            kept = Path(shutil.move(checkpoint.path, directory / f"kept-{len(reports)}"))
        reports.append((metrics, kept))

    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(directory)
        patch.setattr(engine, "fit", functools.partial(fit, report=report))
        patch.setattr(engine, "trial_device_and_threads", lambda: torch.device("cpu"))
        detection.detection_trainable(config, data=data, monitor=MONITOR)
    return reports


@pytest.fixture
def scratch(tmp_path):
    """A directory removed after the test: a ResNet-50 R-CNN's weights are 170 MB (its
    checkpoint, with the SGD momentum, twice that), too much to leave in pytest's kept
    temporary directories."""
    yield tmp_path
    shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory) -> Iterator[list[tuple[dict, Path | None]]]:
    directory = tmp_path_factory.mktemp("detection-trial")
    yield run_trainable(TINY, data, directory)
    shutil.rmtree(directory, ignore_errors=True)


def test_config_errors_name_the_key_and_the_valid_values():
    with pytest.raises(ConfigError, match="backbone 'resnet18'; .*valid detection backbones: resnet50, resnet101"):
        from_config(DetectionConfig, {"backbone": "resnet18"})
    with pytest.raises(ConfigError, match="optimizer 'rmsprop' is unknown; valid: sgd, adamw, adam"):
        from_config(DetectionConfig, {"optimizer": "rmsprop"})
    for key in ("detection_min_confidence", "detection_nms", "rpn_nms"):
        for value in (0.0, 1.0, 1.5):
            with pytest.raises(ConfigError, match=rf"'{key}' must be in \(0, 1\)"):
                from_config(DetectionConfig, {key: value})
    for key in ("steps_per_epoch", "validation_steps", "max_detections", "lr"):
        with pytest.raises(ConfigError, match=f"'{key}' must be positive"):
            from_config(DetectionConfig, {key: 0})
    with pytest.raises(ConfigError, match="'gradient_clip_norm' must be positive or null"):
        from_config(DetectionConfig, {"gradient_clip_norm": -1.0})
    assert from_config(DetectionConfig, {"gradient_clip_norm": None}).gradient_clip_norm is None


def test_the_defaults_are_the_documents():
    config = DetectionConfig()
    assert (config.backbone, config.pretrained, config.optimizer, config.lr) == ("resnet101", True, "sgd", 0.001)
    assert (config.steps_per_epoch, config.validation_steps, config.batch_size) == (100, 200, 1)
    assert (config.detection_min_confidence, config.detection_nms, config.rpn_nms) == (0.7, 0.3, 0.7)


def test_mask_rcnn_for_masks_and_faster_rcnn_for_boxes_with_heads_for_the_classes_and_background():
    config = from_config(DetectionConfig, TINY)
    masked = build_detector(config, num_classes=2, masks=True, image_side=SIZE)
    boxed = build_detector(config, num_classes=2, masks=False, image_side=SIZE)
    assert isinstance(masked, MaskRCNN) and type(boxed) is FasterRCNN
    for model in (masked, boxed):
        assert model.roi_heads.box_predictor.cls_score.out_features == 3
        assert model.roi_heads.box_predictor.bbox_pred.out_features == 12
        assert (model.roi_heads.score_thresh, model.roi_heads.nms_thresh) == (0.7, 0.3)
        assert model.roi_heads.detections_per_img == 100 and model.rpn.nms_thresh == 0.7
        assert model.transform.min_size == (SIZE,) and model.transform.max_size == SIZE
    assert masked.roi_heads.mask_predictor.mask_fcn_logits.out_channels == 3
    assert boxed.roi_heads.mask_predictor is None


def test_the_transform_keeps_the_datas_scale():
    model = build_detector(from_config(DetectionConfig, TINY), num_classes=2, masks=True, image_side=SIZE).eval()
    image = torch.rand(3, SIZE, 48)
    batch, _ = model.transform([image])
    assert batch.image_sizes == [(SIZE, 48)]


def test_coco_weights_load_into_everything_but_the_class_heads(scratch):
    pretrained = from_config(DetectionConfig, {**TINY, "pretrained": True})
    coco = build_detector(pretrained, num_classes=90, masks=True, image_side=SIZE, load_weights=False)
    torch.save(coco.state_dict(), scratch / "maskrcnn_coco.pth")
    config = replace(pretrained, pretrained=False, pretrained_path=str(scratch / "maskrcnn_coco.pth"))
    model = build_detector(config, num_classes=2, masks=True, image_side=SIZE)
    assert torch.equal(model.backbone.body.layer4[0].conv1.weight, coco.backbone.body.layer4[0].conv1.weight)
    assert torch.equal(model.rpn.head.conv[0][0].weight, coco.rpn.head.conv[0][0].weight)
    assert model.roi_heads.box_predictor.cls_score.out_features == 3
    assert not model.backbone.body.conv1.weight.requires_grad
    assert model.backbone.body.layer2[0].conv1.weight.requires_grad
    boxed = build_detector(config, num_classes=2, masks=False, image_side=SIZE)
    assert torch.equal(boxed.roi_heads.box_head.fc6.weight, coco.roi_heads.box_head.fc6.weight)


def test_unusable_weights_are_pretrained_weights_errors_saying_how_to_go_on(tmp_path):
    missing = from_config(DetectionConfig, {**TINY, "pretrained_path": str(tmp_path / "absent.pth")})
    with pytest.raises(PretrainedWeightsError, match="pretrained=false"):
        build_detector(missing, num_classes=2, masks=True, image_side=SIZE)
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "other.pth")
    wrong = from_config(DetectionConfig, {**TINY, "pretrained_path": str(tmp_path / "other.pth")})
    with pytest.raises(PretrainedWeightsError, match="lack .* entries the model needs"):
        build_detector(wrong, num_classes=2, masks=True, image_side=SIZE)


def test_balanced_sampling_gives_every_class_an_equal_share_of_the_draws():
    labels = tuple([np.array([0])] * 9 + [np.array([1]), np.zeros(0, np.int64), np.zeros(0, np.int64)])
    weights = sampling_weights(labels, 2, balance=True)
    assert weights[10] == weights[11] == pytest.approx(1 / 12)
    assert weights[9] == pytest.approx(0.5 * 10 / 12) and weights[0] == pytest.approx(0.5 * 10 / 12 / 9)
    assert sampling_weights(labels, 2, balance=False) == pytest.approx(np.full(12, 1 / 12))
    images = tuple(np.full((4, 4, 3), index, np.uint8) for index in range(12))
    split = DetectionSplit(images=images, boxes=tuple(np.tile([[0, 0, 2, 2]], (len(lab), 1)).astype(np.float32)
                                                      for lab in labels),
                           labels=labels, masks=None, sources=np.arange(12).astype(str))
    config = from_config(DetectionConfig, {**TINY, "steps_per_epoch": 3000, "balance_classes": True})
    drawn = [int(round(float(images[0][0, 0, 0]) * 255))
             for images, _ in training_batches(split, config, weights, np.random.default_rng(0))]
    shares = np.bincount(drawn, minlength=12) / len(drawn)
    assert shares[9] == pytest.approx(5 / 12, abs=0.03)
    assert shares[:9].sum() == pytest.approx(5 / 12, abs=0.03)


def test_training_batches_flip_targets_with_their_images(data):
    config = from_config(DetectionConfig, {**TINY, "steps_per_epoch": 8, "batch_size": 2})
    train = data.splits["train"]
    batches = list(training_batches(train, config, sampling_weights(train.labels, 2, balance=False),
                                    np.random.default_rng(3)))
    assert len(batches) == 8 and all(len(images) == 2 for images, _ in batches)
    for images, targets in batches:
        for image, truth in zip(images, targets):
            assert image.shape == (3, SIZE, SIZE) and image.dtype == torch.float32 and image.max() <= 1
            assert set(truth["labels"].tolist()) <= {1, 2}
            boxes = np.stack([mask_box(m) for m in truth["masks"].numpy()])
            assert np.array_equal(boxes, truth["boxes"].numpy())


def test_validation_leaves_the_model_and_the_random_stream_as_they_were(data):
    config = from_config(DetectionConfig, TINY)
    model = build_detector(config, num_classes=2, masks=True, image_side=SIZE)
    before = {key: value.clone() for key, value in model.state_dict().items()}
    generator = torch.get_rng_state()
    val = data.splits["val"].take(slice(0, 2))
    first = validation_metrics(model, val, config, CLASSES, torch.device("cpu"))
    second = validation_metrics(model, val, config, CLASSES, torch.device("cpu"))
    assert all(torch.equal(before[key], value) for key, value in model.state_dict().items())
    assert torch.equal(generator, torch.get_rng_state())
    assert first == second
    assert first["loss"] == pytest.approx(sum(v for k, v in first.items() if k.startswith("loss_")))


def test_one_epoch_reports_map_losses_and_their_terms_and_a_detection_checkpoint(trained):
    (result, checkpoint), = trained
    assert result["stop_reason"] == STOP_COMPLETED
    assert 0.0 <= result["val_map50"] <= 1.0
    for key in ("val_precision", "val_recall", "val_f1", "val_accuracy", "val_count_mae", "val_ap50_blast"):
        assert math.isfinite(result[key])
    terms = ("loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg")
    assert all(math.isfinite(result[f"train_{term}"]) and math.isfinite(result[f"val_{term}"]) for term in terms)
    assert all(0.0 <= result[f"val_{key}"] <= 1.0 for key in ("box_map", "mask_map50", "mask_map"))
    assert result["train_loss"] == pytest.approx(sum(result[f"train_{term}"] for term in terms), rel=1e-5)
    meta = json.loads((checkpoint / META_FILE).read_text())
    assert (meta["task"], meta["class_names"], meta["has_masks"], meta["image_side"]) == (
        "detection", list(CLASSES), True, SIZE)


def test_box_only_data_trains_a_faster_rcnn(data, scratch):
    (result, checkpoint), = run_trainable(TINY, box_only(data), scratch)
    assert result["stop_reason"] == STOP_COMPLETED and "train_loss_mask" not in result
    assert 0.0 <= result["val_box_map"] <= 1.0 and "val_mask_map50" not in result
    assert json.loads((checkpoint / META_FILE).read_text())["has_masks"] is False
    assert checkpoint_masks(checkpoint, data.splits["val"], [0], min_confidence=0.0, nms_iou=0.5)[0][3] is None


def test_an_absurd_learning_rate_ends_the_trial_as_diverged(data, scratch):
    reports = run_trainable({**TINY, "lr": 1e3, "max_epochs": 3}, data, scratch)
    last, _ = reports[-1]
    assert last["stop_reason"] == STOP_DIVERGED
    assert "non-finite" in last["divergence_reason"] or "divergence bound" in last["divergence_reason"]


def test_the_divergence_bound_is_the_factor_times_an_uninformed_models_loss():
    settings = LoopSettings.of(DetectionConfig(), baseline_loss=uniform_guess_loss(2, True), monitor=MONITOR)
    assert settings.divergence_loss == pytest.approx(10 * (math.log(3) + 2 * math.log(2)))
    assert uniform_guess_loss(3, False) == pytest.approx(math.log(4) + math.log(2))


def test_candidates_hold_every_box_from_the_lowest_grid_confidence_and_replay_the_model(trained, data):
    _, checkpoint = trained[-1]
    val = data.splits["val"]
    candidates = checkpoint_candidates(checkpoint, val)
    assert candidates.dtype == np.float32 and candidates.shape[1] == 7
    assert set(np.unique(candidates[:, 0])) <= set(range(len(val)))
    assert np.all((candidates[:, 5] >= CANDIDATE_MIN_CONFIDENCE) & (candidates[:, 5] <= 1))
    assert set(np.unique(candidates[:, 6])) <= {0.0, 1.0}
    model, _, device = detection.checkpoint_detector(checkpoint)
    assert model.rpn.post_nms_top_n() == RPN_PROPOSALS_PER_IMAGE
    assert np.bincount(candidates[:, 0].astype(int)).max(initial=0) < candidate_cap(len(CLASSES))
    for min_confidence, nms_iou in ((CANDIDATE_MIN_CONFIDENCE, 0.7), (0.5, 0.3)):
        model.roi_heads.score_thresh, model.roi_heads.nms_thresh = min_confidence, nms_iou
        own = predict_detections(model, val.images, batch_size=2, device=device)
        assert np.array_equal(postprocess(candidates, min_confidence=min_confidence, nms_iou=nms_iou), own)


def test_the_analysis_caches_a_mask_rcnns_candidates_with_a_mask_per_box(trained, data):
    _, checkpoint = trained[-1]
    val = data.splits["val"]
    cached = checkpoint_instance_candidates(checkpoint, val)
    assert np.array_equal(cached["boxes"], checkpoint_candidates(checkpoint, val))
    assert cached["mask_counts"].shape == (len(cached["boxes"]),) and cached["mask_counts"].dtype.kind == "U"
    assert cached["image_sizes"].tolist() == [[SIZE, SIZE]] * len(val)
    scores = candidate_scores(detection_truth(val), cached, CLASSES, min_confidence=0.3, nms_iou=0.5)
    assert 0.0 <= scores["mask_map50"] <= 1.0


def test_checkpoint_coco_scores_include_mask_ap_at_the_inference_settings(trained, data):
    _, checkpoint = trained[-1]
    scores = checkpoint_coco_scores(checkpoint, data.splits["val"], min_confidence=0.3, nms_iou=0.5)
    assert set(scores) == {"box_map", "mask_map50", "mask_map"}
    assert all(0.0 <= value <= 1.0 for value in scores.values())


def test_checkpoint_masks_follow_the_inference_settings(trained, data):
    _, checkpoint = trained[-1]
    val = data.splits["val"]
    predicted = checkpoint_masks(checkpoint, val, [1, 3], min_confidence=0.0, nms_iou=0.5)
    assert len(predicted) == 2
    for boxes, labels, scores, masks in predicted:
        assert boxes.shape == (len(labels), 4) and scores.shape == labels.shape
        assert masks.shape == (len(labels), SIZE, SIZE) and masks.dtype == np.uint8
        assert set(np.unique(labels)) <= {0, 1} and set(np.unique(masks)) <= {0, 1}
    strict = checkpoint_masks(checkpoint, val, [1, 3], min_confidence=0.99, nms_iou=0.5)
    assert all(np.all(scores > 0.99) for _, _, scores, _ in strict)


def test_loader_workers_read_the_same_batches_as_the_trial_process(data):
    """The draws happen in the trial's process; worker processes only read them, so the batches
    do not depend on how many workers there are."""
    config = from_config(DetectionConfig, {**TINY, "steps_per_epoch": 4, "batch_size": 2})
    train = data.splits["train"]
    weights = sampling_weights(train.labels, 2, balance=False)
    inline = list(training_batches(train, config, weights, np.random.default_rng(5)))
    workers = list(training_batches(train, config, weights, np.random.default_rng(5), workers=2))
    assert len(inline) == len(workers) == 4
    for (images, targets), (other_images, other_targets) in zip(inline, workers):
        assert all(torch.equal(a, b) for a, b in zip(images, other_images))
        assert all(torch.equal(a["boxes"], b["boxes"]) for a, b in zip(targets, other_targets))
