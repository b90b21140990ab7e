"""Issue 19, points 3 and 11: a checkpoint is all that rebuilding its model needs (no
pretrained weights file), and a resumed trial continues exactly where it stopped — the random
streams (global, sampler order, augmentation) and the GradScaler come back with the weights."""

from __future__ import annotations

import inspect
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from ray import tune
from torch import nn

from trainables import checkpoints, classification, engine, segmentation
from trainables.classification import ClassificationConfig, classification_trainable
from trainables.datasets.base import ClassificationData, SplitArrays
from trainables.engine import EarlyStopping, Monitor

MONITOR = Monitor("val_macro_f1", "max")
REAL_FIT = engine.fit


@pytest.fixture(autouse=True)
def _work_in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def tiny_data(size: int = 28, channels: int = 1) -> ClassificationData:
    """Three classes of random images, each image its own row: enough for a few batches."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), (20, 12, 8))
    images = rng.integers(0, 256, (len(labels), size, size, channels), dtype=np.uint8)
    split = SplitArrays(images, labels, np.arange(len(labels)))
    return ClassificationData(name="tiny", class_names=("a", "b", "c"),
                              splits={"train": split, "val": split.take(np.arange(12))},
                              mean=(0.5,) * channels, std=(0.25,) * channels)


def train(config: dict, data: ClassificationData, monkeypatch, *, resume_from: Path | None = None,
          trainable=classification_trainable, monitor: Monitor = MONITOR) -> list[tuple[dict, Path]]:
    """Run the trainable outside Tune: every epoch's result and its checkpoint, kept on disk;
    ``resume_from`` is the checkpoint a restored trial would be handed."""
    reports = []
    checkpoint = None if resume_from is None else tune.Checkpoint.from_directory(str(resume_from))
    monkeypatch.setattr(engine.tune, "get_checkpoint", lambda: checkpoint)

    def keep(metrics, checkpoint=None):
        kept = Path.cwd() / f"kept-{len(list(Path.cwd().glob('kept-*')))}"
        reports.append((metrics, Path(checkpoint.to_directory(str(kept)))))

    monkeypatch.setattr(engine, "fit", lambda **kwargs: REAL_FIT(**kwargs, report=keep))
    trainable(config, data=data, monitor=monitor)
    return reports


def state_of(checkpoint: Path) -> dict:
    return checkpoints.read_state(checkpoint / checkpoints.STATE_FILE)


# --- point 3: a checkpoint is all a rebuilt model needs ------------------------------------

def test_a_classifier_checkpoint_rebuilds_without_its_pretrained_weights_file(tmp_path, monkeypatch):
    """The trial started from a local weights file; the report runs where that file is gone."""
    torch.manual_seed(0)
    weights = tmp_path / "mobilenet_v3_large.pth"
    torch.save(torchvision.models.mobilenet_v3_large(weights=None).state_dict(), weights)
    config = {"model": "mobilenetv3_large_medmnist", "pretrained": True, "pretrained_path": str(weights),
              "batch_size": 8, "eval_batch_size": 16, "epoch_samples": 8, "max_epochs": 1, "data_path": "loader"}
    ((_, checkpoint),) = train(config, tiny_data(), monkeypatch)
    assert json.loads((checkpoint / checkpoints.META_FILE).read_text())["config"]["pretrained_path"] == str(weights)
    weights.unlink()

    model, meta = classification.checkpoint_model(checkpoint)

    saved = state_of(checkpoint)["model"]
    assert meta["task"] == "classification" and not model.training
    assert saved.keys() == model.state_dict().keys()
    assert all(torch.equal(saved[key], value) for key, value in model.state_dict().items())
    probabilities = classification.checkpoint_probabilities(checkpoint, tiny_data().splits["val"])
    assert probabilities.shape == (12, 3) and np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)


def test_the_config_a_checkpoint_is_rebuilt_from_has_pretraining_off(tmp_path):
    """Both keys, for the config classes that have them; a class without pretrained_path
    (segmentation) is not handed one."""
    (tmp_path / checkpoints.META_FILE).write_text(json.dumps(
        {"config": {"model": "efficientnet_b0", "pretrained": True, "pretrained_path": "/gone/weights.pth"}}))
    config, _ = checkpoints.read_checkpoint_config(tmp_path, ClassificationConfig)
    assert (config.pretrained, config.pretrained_path) == (False, None)
    (tmp_path / checkpoints.META_FILE).write_text(json.dumps({"config": {"model": "unet", "pretrained": True}}))
    config, _ = checkpoints.read_checkpoint_config(tmp_path, segmentation.SegmentationConfig)
    assert config.pretrained is False


# --- point 11: resuming continues the same random streams, with the GradScaler ------------

RESUMED = {"model": "custom_cnn", "pretrained": False, "dropout": 0.3, "batch_size": 8, "eval_batch_size": 16,
           "epoch_samples": 24, "max_epochs": 2, "seed": 7}


@pytest.mark.parametrize("data_path,augment", [("loader", "bccd_light"), ("device", "bccd_light"),
                                               ("loader", "none")])
def test_two_epochs_straight_equal_one_epoch_and_a_resumed_second(data_path, augment, monkeypatch):
    """On the CPU a trial resumed from its epoch-1 checkpoint trains epoch 2 exactly as the
    uninterrupted trial did: same losses and metrics, same weights."""
    config = {**RESUMED, "data_path": data_path, "augment": augment}
    data = tiny_data(size=32, channels=3)
    straight = train(config, data, monkeypatch)
    resumed = train(config, data, monkeypatch, resume_from=straight[0][1])

    assert [metrics["epoch"] for metrics, _ in resumed] == [2]
    compared = ("train_loss", "train_accuracy", "val_loss", "val_macro_f1")
    assert {k: resumed[0][0][k] for k in compared} == {k: straight[1][0][k] for k in compared}
    expected, got = state_of(straight[1][1])["model"], state_of(resumed[0][1])["model"]
    assert all(torch.equal(expected[key], got[key]) for key in expected)


def loop_objects():
    model = nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    return model, optimizer, torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer), EarlyStopping(patience=2,
                                                                                                   mode="max")


def test_the_grad_scalers_state_is_checkpointed_and_restored():
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16)
    scaler.load_state_dict({**scaler.state_dict(), "scale": 512.0, "_growth_tracker": 37})
    directory = checkpoints.write_checkpoint(1, *loop_objects(), {"task": "test"},
                                             resume=engine.resume_state(scaler, lambda: []))
    fresh = torch.amp.GradScaler("cpu", init_scale=2.0**16)
    checkpoint = tune.Checkpoint.from_directory(directory)
    epoch = checkpoints.restore(checkpoint, *loop_objects())
    engine.apply_resume_state(checkpoints.resume_extras(checkpoint), fresh, lambda: [])
    assert epoch == 1 and fresh.get_scale() == 512.0 and fresh.state_dict()["_growth_tracker"] == 37


def test_the_global_random_streams_come_back_and_load_with_weights_only():
    """Python's, NumPy's and torch's generators, through a real state file."""
    engine.seed_everything(3)
    directory = checkpoints.write_checkpoint(1, *loop_objects(), {"task": "test"},
                                             resume=engine.resume_state(None, lambda: []))
    expected = (np.random.rand(), torch.rand(1).item(), random.random())
    engine.seed_everything(99)
    engine.apply_resume_state(checkpoints.resume_extras(tune.Checkpoint.from_directory(directory)), None,
                              lambda: [])
    assert (np.random.rand(), torch.rand(1).item(), random.random()) == expected


def test_a_checkpoint_without_resume_state_still_restores():
    """One written before the resume entry existed: the loop objects load, and the loop is
    handed nothing to put back, so it keeps the streams and scaler it started with."""
    checkpoint = tune.Checkpoint.from_directory(checkpoints.write_checkpoint(2, *loop_objects(), {"task": "test"}))
    assert checkpoints.restore(checkpoint, *loop_objects()) == 2
    assert checkpoints.resume_extras(checkpoint) == {} and checkpoints.resume_extras(None) == {}
    engine.apply_resume_state({}, torch.amp.GradScaler("cpu"), lambda: [])


def test_every_trainable_rebuilds_its_checkpoints_model_through_the_same_function():
    """``checkpoint_model(directory) -> (model, meta)``: what the registry entry exposes for the
    analysis to rebuild any trial's model."""
    from trainables import detection
    from trainables.registry import get_trainable
    for name, module in (("classification", classification), ("segmentation", segmentation),
                         ("detection", detection)):
        assert get_trainable(name).checkpoint_model is module.checkpoint_model
        assert list(inspect.signature(module.checkpoint_model).parameters) == ["checkpoint_dir"]


def test_a_segmenter_checkpoint_rebuilds_with_its_weights(monkeypatch):
    data = tiny_data(size=16, channels=3)
    masks = (data.splits["train"].images[..., 0] > 127).astype(np.uint8)
    split = SplitArrays(data.splits["train"].images, masks, np.arange(len(masks)))
    data = ClassificationData(name="tiny", class_names=("background", "cell"),
                              splits={"train": split, "val": split.take(np.arange(4))}, mean=data.mean, std=data.std)
    config = {"model": "unet", "base_channels": 4, "batch_size": 4, "eval_batch_size": 4, "epoch_samples": 4,
              "max_epochs": 1}
    ((_, checkpoint),) = train(config, data, monkeypatch, trainable=segmentation.segmentation_trainable,
                               monitor=Monitor("val_dice_per_image", "max"))
    model, meta = segmentation.checkpoint_model(checkpoint)
    saved = state_of(checkpoint)["model"]
    assert meta["task"] == "segmentation" and not model.training
    assert all(torch.equal(saved[key], value) for key, value in model.state_dict().items())
