"""Multi-class semantic segmentation (K > 2 classes, index 0 the background): the per-class and
mean Dice and IoU against scikit-learn and a per-image loop, resampling weights, two classes
through the multi-class scores giving the binary ones, the losses, a 3-class U-Net on grey
images training through the trainable and rebuilding from its checkpoint, and what the report
draws and tabulates."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from matplotlib.colors import to_rgb
from ray import tune
from sklearn.metrics import f1_score, jaccard_score, log_loss
from torch.nn import functional as F

from analysis import figures
from analysis.rerun import CHECKPOINT
from analysis.sections.segmentation import (
    ARGMAX,
    SEGMENTATION_COLUMNS,
    inference_settings,
    inference_text,
    mask_grid,
    table_columns,
)
from trainables import engine, segmentation
from trainables.datasets.base import ClassificationData, SplitArrays
from trainables.engine import Monitor
from trainables.metrics import metric_direction, multiclass_segmentation_metrics, segmentation_metrics
from trainables.segmentation import mask_scores, segmentation_loss, tune_inference

CLASSES = ("background", "cytoplasm", "nucleus")
REAL_FIT = engine.fit


def three_class_outputs(n: int = 6, size: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Class-index masks and N x 3 x H x W softmax probabilities that mostly agree with them;
    image 0 has no nucleus, true or predicted (both empty for that class), image 1 has no true
    nucleus but predicts one pixel."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 3, (n, size, size)).astype(np.uint8)
    truth[0][truth[0] == 2] = 1
    truth[1][truth[1] == 2] = 0
    logits = rng.normal(0, 1, (n, 3, size, size)) + 2.5 * np.eye(3)[truth].transpose(0, 3, 1, 2)
    logits[0, 2] = -9.0
    logits[1, 2] = -9.0
    logits[1, 2, 0, 0] = 9.0
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return truth, probabilities


def test_pooled_scores_of_each_class_and_their_mean_match_sklearn():
    truth, probabilities = three_class_outputs()
    ours = multiclass_segmentation_metrics(truth, probabilities, CLASSES)
    t, p = truth.ravel(), probabilities.argmax(axis=1).ravel()
    dice = f1_score(t, p, labels=[1, 2], average=None)
    iou = jaccard_score(t, p, labels=[1, 2], average=None)
    for index, name in enumerate(CLASSES[1:]):
        assert ours[f"dice_pooled_{name}"] == pytest.approx(dice[index])
        assert ours[f"iou_pooled_{name}"] == pytest.approx(iou[index])
    assert ours["dice_pooled"] == pytest.approx(dice.mean())
    assert ours["iou_pooled"] == pytest.approx(iou.mean())


def test_per_image_scores_average_each_images_own_and_an_image_without_the_class_scores_one():
    truth, probabilities = three_class_outputs()
    ours = multiclass_segmentation_metrics(truth, probabilities, CLASSES)
    predicted = probabilities.argmax(axis=1)
    for score, sklearn_score in (("dice", f1_score), ("iou", jaccard_score)):
        per_image = np.array([[sklearn_score(t.ravel(), p.ravel(), labels=[c], average=None, zero_division=1.0)[0]
                               for c in (1, 2)] for t, p in zip(truth, predicted)])
        assert per_image[0, 1] == 1.0 and per_image[1, 1] == 0.0     # nucleus: both empty, one false pixel
        for index, name in enumerate(CLASSES[1:]):
            assert ours[f"{score}_per_image_{name}"] == pytest.approx(per_image[:, index].mean())
        assert ours[f"{score}_per_image"] == pytest.approx(per_image.mean())
    losses = [log_loss(t.ravel(), p.reshape(3, -1).T, labels=[0, 1, 2]) for t, p in zip(truth, probabilities)]
    assert ours["loss"] == pytest.approx(np.mean(losses))


def test_resampling_weights_repeat_images():
    truth, probabilities = three_class_outputs()
    weights = np.array([[2, 0, 1, 1, 0, 2], [1, 1, 1, 1, 1, 1]], dtype=float)
    batch = multiclass_segmentation_metrics(truth, probabilities, CLASSES, weights=weights)
    repeated = np.repeat(np.arange(len(truth)), weights[0].astype(int))
    single = multiclass_segmentation_metrics(truth[repeated], probabilities[repeated], CLASSES)
    whole = multiclass_segmentation_metrics(truth, probabilities, CLASSES)
    assert set(batch) == set(single)
    for name, value in single.items():
        assert np.shape(batch[name]) == (2,)
        assert batch[name][0] == pytest.approx(float(value))
        assert batch[name][1] == pytest.approx(float(whole[name]))


def test_two_classes_through_the_multiclass_scores_are_the_binary_scores():
    rng = np.random.default_rng(3)
    truth = (rng.random((5, 8, 8)) > 0.6).astype(np.uint8)
    truth[4] = 0                                                     # an image without cells
    foreground = np.clip(0.8 * truth + rng.normal(0.1, 0.25, truth.shape), 0.01, 0.99)
    foreground[np.isclose(foreground, 0.5)] = 0.51                   # argmax and threshold agree off 0.5
    binary = segmentation_metrics(truth, foreground)
    multi = multiclass_segmentation_metrics(truth, np.stack([1 - foreground, foreground], axis=1),
                                            ("background", "cell"))
    for name in ("dice_pooled", "dice_per_image", "iou_pooled", "iou_per_image"):
        assert multi[name] == pytest.approx(binary[name]) and multi[f"{name}_cell"] == multi[name]
    assert multi["loss"] == pytest.approx(binary["loss"])
    # Two class names still score the binary way: same names and values, thresholds tuned.
    assert mask_scores(truth, foreground, ("background", "cell")) == binary
    assert tune_inference(truth, foreground, ("background", "cell"))[1]
    assert tune_inference(*three_class_outputs(), CLASSES) == ({}, [])


def test_the_losses_are_cross_entropy_and_the_soft_dice_of_the_foreground_classes():
    torch.manual_seed(0)
    logits, masks = torch.randn(2, 3, 4, 4), torch.randint(0, 3, (2, 4, 4), dtype=torch.uint8)
    probabilities, truth = logits.softmax(1), F.one_hot(masks.long(), 3).permute(0, 3, 1, 2).float()
    dice = [(2 * (probabilities[:, c] * truth[:, c]).sum() + 1) / (probabilities[:, c].sum() + truth[:, c].sum() + 1)
            for c in (1, 2)]
    cross_entropy = F.cross_entropy(logits, masks.long())
    assert torch.isclose(segmentation_loss("bce", 3)(logits, masks), cross_entropy)
    assert torch.isclose(segmentation_loss("dice", 3)(logits, masks), 1 - (dice[0] + dice[1]) / 2)
    assert torch.isclose(segmentation_loss("bce_dice", 3)(logits, masks), cross_entropy + 1 - (dice[0] + dice[1]) / 2)
    binary_masks = (masks > 0).to(torch.uint8)
    assert torch.equal(segmentation_loss("bce", 2)(logits[:, :1], binary_masks),
                       F.binary_cross_entropy_with_logits(logits[:, 0], binary_masks.float()))


def grey_three_class_data(n: int = 16, size: int = 16) -> ClassificationData:
    """Grey (N x H x W x 1) images whose brightness gives each pixel's class: dark background,
    grey cytoplasm, bright nucleus, in random rectangles, with a little noise."""
    rng = np.random.default_rng(0)
    masks = np.zeros((n, size, size), np.uint8)
    for mask in masks:
        top, left = rng.integers(0, size // 2, 2)
        mask[top:top + size // 2, left:left + size // 2] = 1
        mask[top + 2:top + 5, left + 2:left + 5] = 2
    images = (masks * 100 + rng.integers(0, 40, masks.shape)).astype(np.uint8)[..., None]
    split = SplitArrays(images, masks, np.arange(n))
    return ClassificationData(name="tiny-grey", class_names=CLASSES, splits={"train": split, "val": split.take(
        np.arange(8))}, mean=(0.4,), std=(0.3,))


def train(config: dict, data: ClassificationData, monkeypatch, tmp_path: Path) -> list[tuple[dict, Path]]:
    """The trainable outside Tune: each epoch's result and its checkpoint, kept under ``tmp_path``."""
    reports = []
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(engine.tune, "get_checkpoint", lambda: None)

    def keep(metrics, checkpoint: tune.Checkpoint | None = None):
        reports.append((metrics, Path(checkpoint.to_directory(str(tmp_path / f"epoch-{len(reports)}")))))

    monkeypatch.setattr(engine, "fit", lambda **kwargs: REAL_FIT(**kwargs, report=keep))
    segmentation.segmentation_trainable(config, data=data, monitor=Monitor("val_dice_per_image", "max"))
    return reports


def test_a_three_class_unet_on_grey_images_trains_and_rebuilds_from_its_checkpoint(monkeypatch, tmp_path):
    data = grey_three_class_data()
    config = {"model": "unet", "base_channels": 4, "batch_size": 8, "eval_batch_size": 8, "max_epochs": 3,
              "lr": 0.01, "loss": "bce_dice", "data_path": "loader", "seed": 0}
    reports = train(config, data, monkeypatch, tmp_path)
    losses = [metrics["train_loss"] for metrics, _ in reports]
    assert len(losses) == 3 and losses[-1] < losses[0], losses
    metrics, checkpoint = reports[-1]
    names = {f"val_{score}_{kind}{suffix}" for score in ("dice", "iou") for kind in ("pooled", "per_image")
             for suffix in ("", "_cytoplasm", "_nucleus")}
    assert names | {"val_loss"} <= set(metrics)
    assert all(metric_direction(name) == "max" for name in names)
    model, meta = segmentation.checkpoint_model(checkpoint)
    unet = model[1]
    assert meta["class_names"] == list(CLASSES) and not model.training
    assert unet.head.out_channels == 3 and unet.encoder[0][0].in_channels == 1
    probabilities = segmentation.checkpoint_mask_probabilities(checkpoint, data.splits["val"])
    assert probabilities.shape == (8, 3, 16, 16) and probabilities.dtype == np.float16
    assert np.allclose(probabilities.astype(np.float32).sum(axis=1), 1, atol=1e-2)
    scored = mask_scores(data.splits["val"].labels, probabilities, CLASSES)
    assert scored["dice_per_image"] == pytest.approx(metrics["val_dice_per_image"])


def report_context(directory: Path, class_names: tuple[str, ...], truth: np.ndarray, outputs: np.ndarray):
    """What the segmentation sections read of a report: the class names, the winner's test
    outputs with no tuned inference settings (as a multi-class model has), the test split."""
    images = np.random.default_rng(0).integers(0, 255, (*truth.shape, 1), dtype=np.uint8)
    model = SimpleNamespace(outputs=outputs, inference={})
    confirmation = SimpleNamespace(predictions={("w", CHECKPOINT): [model]},
                                   test=SplitArrays(images, truth, np.arange(len(truth))))
    return SimpleNamespace(class_names=class_names, winners=SimpleNamespace(overall="w"), confirmation=confirmation,
                           figures_dir=directory)


def test_the_report_tabulates_each_class_says_argmax_and_draws_each_class_in_its_own_colour(tmp_path, monkeypatch):
    truth, probabilities = three_class_outputs()
    context = report_context(tmp_path, CLASSES, truth, probabilities)
    binary = SimpleNamespace(class_names=("background", "cell"))
    assert table_columns(binary) == SEGMENTATION_COLUMNS
    assert inference_text(binary, {"threshold": 0.3, "min_size": 4}) == "0.3 / 4 px"
    columns = dict(table_columns(context))
    assert columns["Dice per image"] == "dice_per_image" and columns["IoU pooled nucleus"] == "iou_pooled_nucleus"
    assert inference_text(context, {}) == ARGMAX and ARGMAX in inference_settings(context)[1].text
    saved = []
    monkeypatch.setattr(figures, "_save", lambda fig, path: saved.append(fig) or path)
    _, figure = mask_grid(context)
    assert "mean Dice" in figure.caption
    (legend,) = saved[0].legends
    colours = figures.class_colours(len(CLASSES))
    assert [text.get_text() for text in legend.get_texts()] == list(CLASSES[1:]) and len(set(colours)) == 2
    assert [to_rgb(handle.get_facecolor()) for handle in legend.legend_handles] == colours
    first = saved[0].axes[0]
    shown = int(np.argsort(multiclass_image_dice(truth, probabilities), kind="stable")[0])   # the worst first
    assert first.get_title() == f"mean Dice {multiclass_image_dice(truth, probabilities)[shown]:.3f}"
    predicted = probabilities.argmax(axis=1)[shown]
    tint = first.images[-1].get_array()
    for index, colour in enumerate(colours, start=1):
        assert np.allclose(tint[predicted == index][:, :3], colour)
    binary_truth = (truth > 0).astype(np.uint8)
    _, figure = mask_grid(report_context(tmp_path, ("background", "cell"), binary_truth, probabilities[:, 1]))
    assert "true mask outlined green, predicted red" in figure.caption and not saved[1].legends


def multiclass_image_dice(truth: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Each image's Dice averaged over the foreground classes, by scikit-learn."""
    predicted = probabilities.argmax(axis=1)
    return np.array([f1_score(t.ravel(), p.ravel(), labels=[1, 2], average=None, zero_division=1.0).mean()
                     for t, p in zip(truth, predicted)])
