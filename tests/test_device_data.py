"""The device data path on the CPU (device = cpu): the same samples in the same order as the
loader, seeded batches, masks that stay on their images, the memory budget that sends a large
split to the loader, and the loader fallback with its workers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, RandomSampler

from trainables import engine
from trainables.arrays import ArrayDataset
from trainables.classification import ClassificationConfig, classification_trainable, training_indices
from trainables.config import ConfigError, from_config
from trainables.datasets.base import ClassificationData, SplitArrays
from trainables.device_data import (
    DeviceBatches,
    choose_data_path,
    loader_batches,
    loader_workers,
    split_bytes,
    training_batches,
)
from trainables.engine import Monitor
from trainables.segmentation import SegmentationConfig, segmentation_trainable

CPU = torch.device("cpu")


def classification_split(counts=(40, 14, 6), size: int = 32) -> SplitArrays:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(len(counts)), counts)
    images = rng.integers(0, 256, (len(labels), size, size, 3), dtype=np.uint8)
    images[:, 0, 0, 0] = np.arange(len(labels))          # each image names its row
    return SplitArrays(images, labels, np.arange(len(labels)))


def segmentation_split(n: int = 12, size: int = 32) -> SplitArrays:
    """Images whose every channel is their mask x 255, in blocks (so a misplaced mask shows)."""
    coarse = np.random.default_rng(2).random((n, size // 4, size // 4)) > 0.5
    masks = coarse.repeat(4, axis=1).repeat(4, axis=2).astype(np.uint8)
    masks[:, 0, :] = 1                                    # an asymmetric edge: every flip and turn shows
    images = np.repeat((masks * 255)[..., None], 3, axis=3).astype(np.uint8)
    return SplitArrays(images, masks, np.arange(n))


def epoch(batches) -> tuple[torch.Tensor, torch.Tensor]:
    images, targets = zip(*batches())
    return torch.cat(images), torch.cat(targets)


@pytest.mark.parametrize("setting", [{}, {"oversampling": True}, {"balance_per_class": 10},
                                     {"epoch_samples": 50}, {"epoch_samples": 130, "oversampling": True}])
def test_the_device_path_draws_the_loaders_samples_in_the_loaders_order(setting):
    split = classification_split()
    config = from_config(ClassificationConfig, {"seed": 11, **setting})
    indices = training_indices(config, split.labels)
    device = DeviceBatches(split, indices, batch_size=16, epoch_samples=config.epoch_samples, seed=11,
                           device=CPU, augment="none")
    dataset = ArrayDataset(split, indices)
    loader = DataLoader(dataset, batch_size=16, sampler=RandomSampler(
        dataset, num_samples=config.epoch_samples, generator=torch.Generator().manual_seed(11)))
    for _ in range(3):                                     # epoch after epoch, not just the first
        images, labels = epoch(device)
        loader_images, loader_labels = zip(*loader)
        assert torch.equal(images, torch.cat(loader_images)) and torch.equal(labels, torch.cat(loader_labels))
    full_pass = len(indices) if indices is not None else len(split.labels)   # the (rebalanced) indices once
    expected = config.epoch_samples if config.epoch_samples is not None else full_pass
    assert len(labels) == expected
    assert len(device) == len(loader)


def test_the_same_seed_gives_the_same_augmented_batches_and_another_seed_others():
    split = classification_split()

    def batches(seed: int) -> DeviceBatches:
        return DeviceBatches(split, None, batch_size=16, epoch_samples=None, seed=seed, device=CPU,
                             augment="bccd_light")

    first, again, other = batches(3), batches(3), batches(4)
    for _ in range(2):
        torch.manual_seed(123)                             # the model's draws do not move the augmentation's
        (a, la), (b, lb), (c, _) = epoch(first), epoch(again), epoch(other)
        torch.rand(5)
        assert torch.equal(a, b) and torch.equal(la, lb)
        assert not torch.equal(a, c)
    state = torch.random.get_rng_state()
    epoch(first)
    assert torch.equal(state, torch.random.get_rng_state()), "augmenting moved the global random state"


def test_augmented_batches_are_float_images_on_the_uint8_scale():
    images, labels = next(iter(DeviceBatches(classification_split(), None, batch_size=8, epoch_samples=None,
                                             seed=0, device=CPU, augment="bccd_light")()))
    assert images.shape == (8, 32, 32, 3) and images.dtype == torch.float32 and labels.dtype == torch.int64
    assert 0 <= float(images.min()) and float(images.max()) <= 255 and float(images.max()) > 100


@pytest.mark.parametrize("augment", ["segmentation_flips", "all_transfer"])
def test_masks_follow_their_images(augment):
    split = segmentation_split()
    batches = DeviceBatches(split, None, batch_size=6, epoch_samples=48, seed=1, device=CPU, augment=augment)
    images, masks = epoch(batches)
    assert masks.dtype == torch.uint8 and set(masks.unique().tolist()) <= {0, 1}
    drawn = (images[..., 0] > 127).to(torch.uint8)
    agreement = (drawn == masks).float().mean().item()
    if augment == "segmentation_flips":                   # flips and quarter turns move whole pixels
        assert torch.equal(drawn, masks)
    else:                                                  # interpolated warps differ only at edges
        assert agreement > 0.97
    originals = torch.from_numpy(split.labels)
    assert any(not torch.equal(m, originals[i]) for m in masks for i in range(len(originals))), \
        "nothing was augmented"


def test_auto_trains_on_the_device_path_on_a_gpu_within_its_budget_and_through_the_loader_on_the_cpu():
    split = classification_split()
    needed = split_bytes(split)
    assert choose_data_path("auto", split=split, device=CPU, augment="bccd_light").path == "loader"
    assert choose_data_path("device", split=split, device=CPU, augment="bccd_light").path == "device"
    gpu = torch.device("cuda")
    roomy = choose_data_path("auto", split=split, device=gpu, augment="bccd_light", free_bytes=8 * needed)
    tight = choose_data_path("auto", split=split, device=gpu, augment="bccd_light", free_bytes=2 * needed)
    assert roomy.path == "device" and tight.path == "loader"
    assert "exceeds 25%" in tight.reason
    assert choose_data_path("loader", split=split, device=gpu, augment="bccd_light").path == "loader"
    with pytest.raises(ValueError, match="data_path must be one of auto, device, loader"):
        choose_data_path("gpu", split=split, device=CPU, augment="none")


@pytest.mark.parametrize("split_kind,augment", [("classification", "bccd_light"),
                                                ("segmentation", "segmentation_flips")])
def test_the_loader_fallback_gives_batches_of_the_same_shapes_and_types(split_kind, augment):
    split = classification_split() if split_kind == "classification" else segmentation_split()
    shapes = {}
    for setting in ("device", "loader"):
        batches = training_batches(split, None, augment=augment, batch_size=8, epoch_samples=20, seed=0,
                                   device=CPU, data_path=setting)
        assert batches.path == setting
        images, targets = epoch(batches)
        shapes[setting] = (tuple(images.shape), tuple(targets.shape), targets.dtype)
    assert shapes["device"] == shapes["loader"]


def test_loader_workers_each_draw_their_own_augmentation():
    """On a GPU the loader runs workers; each reseeds its copy of the pipeline, so two workers
    given the same image do not produce the same augmented copy."""
    assert loader_workers(4, torch.device("cuda")) == 3 and loader_workers(4, CPU) == 0
    same = np.repeat(classification_split().images[:1], 8, axis=0)
    split = SplitArrays(same, np.zeros(8, np.int64), np.arange(8))
    batches = loader_batches(split, None, augment="bccd_light", batch_size=1, epoch_samples=None, seed=0,
                             device=torch.device("cuda"), cpus=3)
    images = [image for image, _ in batches()]
    assert not torch.equal(images[0], images[1])           # batches 0 and 1 come from workers 0 and 1
    assert [image.shape for image in images] == [(1, 32, 32, 3)] * 8


@pytest.mark.parametrize("config_class", [ClassificationConfig, SegmentationConfig])
def test_data_path_is_a_validated_setting_of_both_trainables(config_class):
    assert from_config(config_class, {"data_path": "loader"}).data_path == "loader"
    with pytest.raises(ConfigError, match="data_path"):
        from_config(config_class, {"data_path": "gpu"})


def tiny_data(kind: str) -> ClassificationData:
    split = classification_split() if kind == "classification" else segmentation_split(n=16)
    names = ("a", "b", "c") if kind == "classification" else ("background", "cell")
    return ClassificationData(name=f"tiny-{kind}", class_names=names,
                              splits={"train": split, "val": split.take(np.arange(8))})


TINY_CONFIGS = {
    "classification": {"model": "custom_cnn", "pretrained": False, "batch_size": 8, "eval_batch_size": 8,
                       "epoch_samples": 24, "max_epochs": 2},
    "segmentation": {"model": "unet", "base_channels": 4, "batch_size": 4, "eval_batch_size": 4,
                     "epoch_samples": 8, "max_epochs": 2},
}


@pytest.mark.parametrize("kind", ["classification", "segmentation"])
def test_both_trainables_train_through_the_path_their_config_names_on_the_same_samples(kind, monkeypatch,
                                                                                       tmp_path):
    """Without augmentation both paths feed the loop the same uint8 batches in the same order,
    so the same seed gives the same training losses; the checkpoint records the path."""
    monkeypatch.chdir(tmp_path)
    trainable = classification_trainable if kind == "classification" else segmentation_trainable
    runs = {}

    real_fit = engine.fit

    def recording_fit(**kwargs):
        reports = []
        real_fit(**kwargs, report=lambda metrics, checkpoint=None: reports.append(metrics))
        runs[kwargs["meta"]["data_path"]] = [round(r["train_loss"], 5) for r in reports]

    monkeypatch.setattr(engine, "fit", recording_fit)
    for path in ("device", "loader"):
        trainable({**TINY_CONFIGS[kind], "data_path": path, "seed": 5}, data=tiny_data(kind),
                  monitor=Monitor("val_macro_f1" if kind == "classification" else "val_dice_per_image", "max"))
    assert set(runs) == {"device", "loader"} and len(runs["device"]) == 2
    assert runs["device"] == runs["loader"]
