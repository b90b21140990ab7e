"""Every metric's direction is declared once in ``trainables.metrics``: every name the three
trainables report through the engine, and every test metric the analysis computes, has one; an
undeclared name is an error; the engine's bookkeeping columns are never asked for one."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from analysis.results import metric_columns
from sweeps.registry import SWEEPS
from trainables.classification import evaluate_logits
from trainables.engine import LoopSettings, fit
from trainables.errors import MedsweepError, UnknownNameError
from trainables.metrics import detection_scores, metric_direction, probability_metrics, segmentation_metrics

THREE = ("RBC", "WBC", "Platelets")
TWO = ("Benign", "Malignant")


def classification_names(class_names: tuple[str, ...]) -> dict[str, float]:
    """What the classification trainable's ``evaluate`` returns for a split's outputs."""
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(12, len(class_names))).astype(np.float32)
    return evaluate_logits(logits, np.arange(12) % len(class_names), class_names)


def segmentation_names() -> dict[str, float]:
    """What the segmentation trainable's ``evaluate`` returns (``segmentation_metrics``)."""
    rng = np.random.default_rng(0)
    return {k: float(v) for k, v in segmentation_metrics(rng.random((2, 8, 8)) > 0.5, rng.random((2, 8, 8))).items()}


def rcnn_loss_terms() -> dict[str, float]:
    """The detection trainable's ``validation_losses`` of a tiny Mask R-CNN (one small feature
    map): the loss and the names torchvision gives its terms."""
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.ops import MultiScaleRoIAlign

    from tests.test_detection_trainable import synthetic_split
    from trainables.detection import validation_losses

    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Conv2d(3, 8, 3, stride=4, padding=1), nn.ReLU())
    backbone.out_channels = 8
    model = MaskRCNN(backbone, num_classes=3, min_size=64, max_size=64,
                     rpn_anchor_generator=AnchorGenerator(((16,),), ((1.0,),)),
                     box_roi_pool=MultiScaleRoIAlign(["0"], 7, 2), mask_roi_pool=MultiScaleRoIAlign(["0"], 14, 2))
    return validation_losses(model, synthetic_split(2, seed=1), batch_size=2, device=torch.device("cpu"), seed=0)


def detection_names(loss_terms: dict[str, float]) -> dict[str, float]:
    """What the detection trainable's ``validation_metrics`` returns: ``detection_scores`` and
    the loss terms."""
    boxes = [np.array([[0, 0, 10, 10]], np.float32), np.array([[5, 5, 20, 20]], np.float32)]
    labels = [np.array([0]), np.array([1])]
    detections = np.array([[0, 0, 0, 10, 10, 0.9, 0], [1, 4, 4, 20, 20, 0.8, 0]], np.float32)
    scores = detection_scores(boxes, labels, detections, ("blast", "other"), min_confidence=0.5)
    return {**{k: float(v) for k, v in scores.items()}, **loss_terms}


def engine_results(evaluate: dict[str, float], extras: dict[str, float] | None = None) -> pd.DataFrame:
    """The results ``fit`` reports for two epochs of a tiny model whose ``evaluate`` returns
    ``evaluate`` and whose trainable adds ``extras`` (the detection trainable's training loss
    terms) to each epoch."""
    torch.manual_seed(0)
    model, x = nn.Linear(2, 2), torch.randn(8, 2)
    y = (x[:, 0] > 0).long()
    reports = []

    def batch_loss(net, batch):
        logits = net(batch[0])
        return nn.functional.cross_entropy(logits, batch[1]), (logits.argmax(1) == batch[1]).sum()

    settings = LoopSettings(max_epochs=2, plateau_factor=0.5, plateau_patience=5, early_stopping_patience=5,
                            divergence_loss=100.0, monitor="val_loss", mode="min")
    fit(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1), train_batches=lambda: [(x, y)],
        batch_loss=batch_loss, evaluate=lambda net: dict(evaluate), settings=settings, meta={},
        report=lambda metrics, checkpoint=None: reports.append(metrics),
        epoch_extras=(lambda: dict(extras)) if extras else None)
    return pd.DataFrame(reports)


@pytest.fixture
def _work_in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


@pytest.mark.usefixtures("_work_in_tmp")
def test_every_metric_the_three_trainables_report_has_a_declared_direction():
    terms = rcnn_loss_terms()
    reported = {
        "classification": engine_results(classification_names(THREE)),
        "binary classification": engine_results(classification_names(TWO)),
        "segmentation": engine_results(segmentation_names()),
        "detection": engine_results(detection_names(terms), extras={f"train_{k}": v for k, v in terms.items()
                                                                    if k != "loss"}),
    }
    for task, results in reported.items():
        columns = metric_columns(results)
        assert {"val_loss", "train_loss"} <= set(columns), task
        assert not {"epoch", "lr", "epoch_seconds", "setup_seconds"} & set(columns), task
        assert all(metric_direction(column) in ("max", "min") for column in columns), task
    assert {"val_count_mae", "val_count_mae_blast", "val_map50", "train_loss_mask"} <= set(
        metric_columns(reported["detection"]))


def test_every_test_metric_the_analysis_computes_has_a_declared_direction():
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(3), size=10)
    names = [*probability_metrics(np.arange(10) % 3, probabilities, THREE), *segmentation_names(),
             *detection_names({"loss": 1.0})]
    assert all(metric_direction(name) in ("max", "min") for name in names)


@pytest.mark.parametrize("name,expected", [
    ("val_count_mae", "min"), ("count_mae_Platelets", "min"), ("val_loss", "min"), ("train_loss_box_reg", "min"),
    ("loss", "min"), ("val_macro_f1", "max"), ("val_map50", "max"), ("ap50_WBC", "max"), ("f1_WBC", "max"),
    ("recall_Platelets", "max"), ("precision_RBC", "max"), ("sensitivity", "max"), ("specificity", "max"),
    ("auc", "max"), ("macro_auc", "max"), ("val_dice_per_image", "max"), ("iou_pooled", "max"),
    ("train_accuracy", "max"), ("balanced_accuracy", "max")])
def test_errors_and_losses_are_minimised_and_scores_maximised(name, expected):
    assert metric_direction(name) == expected


def test_an_undeclared_metric_is_an_error_naming_it_and_where_to_declare_it():
    expected = r"'val_hausdorff'.*METRIC_DIRECTIONS in trainables/metrics/directions\.py"
    with pytest.raises(UnknownNameError, match=expected) as err:
        metric_direction("val_hausdorff")
    assert isinstance(err.value, MedsweepError)
    with pytest.raises(UnknownNameError, match="'lr'"):
        metric_direction("lr")


def test_every_sweep_selects_in_its_metrics_declared_direction():
    for name, spec in SWEEPS.items():
        assert metric_direction(spec.metric) == spec.mode, name
