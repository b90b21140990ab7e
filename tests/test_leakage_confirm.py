"""A hash match is only a candidate, confirmed by the images' aligned similarity; and the
``leakage`` policy decides what happens to a confirmed duplicate (issue #13 item 8)."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from sweeps.space import DataSettings
from tests.synthetic_data import write_chestmnist, write_taleqani
from trainables.config import ConfigError
from trainables.datasets.base import DatasetError
from trainables.datasets.chestmnist import KEPT_FINDINGS, prepare_chestmnist, read_chestmnist
from trainables.datasets.images import decode_rgb
from trainables.datasets.leakage import MIN_SIMILARITY, aligned_similarity
from trainables.datasets.taleqani_classification import (
    assign_splits,
    list_labelled_images,
    read_taleqani_classification,
)

COPIES = ("JPEG 50", "resized up", "resized down", "horizontal flip", "vertical flip",
          "90° turn", "180° turn", "270° turn")


def jpeg(image: np.ndarray, quality: int = 90) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(buffer))


def planted_copy(image: np.ndarray, change: str) -> np.ndarray:
    height, width = image.shape[:2]
    return {"JPEG 50": lambda: jpeg(image, 50),
            "resized up": lambda: cv2.resize(image, (width * 2, height * 2)),
            "resized down": lambda: cv2.resize(image, (width * 3 // 4, height * 3 // 4), interpolation=cv2.INTER_AREA),
            "horizontal flip": lambda: jpeg(np.ascontiguousarray(image[:, ::-1])),
            "vertical flip": lambda: jpeg(np.ascontiguousarray(image[::-1])),
            "90° turn": lambda: jpeg(np.ascontiguousarray(np.rot90(image, 1))),
            "180° turn": lambda: jpeg(np.ascontiguousarray(np.rot90(image, 2))),
            "270° turn": lambda: jpeg(np.ascontiguousarray(np.rot90(image, 3)))}[change]()


@pytest.fixture(scope="module")
def smears(tmp_path_factory):
    root = write_taleqani(tmp_path_factory.mktemp("smears"), per_class=40, size=64, class_cue=True, seed=2)
    return root


@pytest.fixture(scope="module")
def chest_file(tmp_path_factory):
    return write_chestmnist(tmp_path_factory.mktemp("chest"), per_split=(400, 100, 100), size=28)


@pytest.mark.parametrize("change", COPIES)
def test_planted_copies_of_smears_and_x_rays_are_confirmed(smears, chest_file, change):
    smear = decode_rgb(sorted(smears.glob("Original/Benign/*.jpg"))[0])
    x_ray = np.load(chest_file)["train_images"][0]
    for image in (smear, x_ray):
        assert aligned_similarity(image, planted_copy(image, change)) >= MIN_SIMILARITY


def test_distinct_generated_smears_are_never_a_confirmed_pair(smears):
    _, audit = read_taleqani_classification(smears, image_size=32, leakage="warn", use_cache=False)
    assert (audit.leakage["exact_groups"], audit.leakage["near_pairs"]) == (0, 0), audit.leakage["near"]


def test_distinct_generated_x_rays_are_hash_candidates_but_never_a_confirmed_pair(chest_file):
    _, audit = read_chestmnist(chest_file, image_size=28)
    assert audit.leakage["candidates"] > 0
    assert (audit.leakage["exact_groups"], audit.leakage["near_pairs"]) == (0, 0), audit.leakage["near"]


def _kept_row(labels: np.ndarray, start: int = 0) -> int:
    """The first single-label Cardiomegaly or Pneumothorax row from ``start``."""
    single = (labels.sum(axis=1) == 1) & np.isin(labels.argmax(axis=1), KEPT_FINDINGS)
    return int(np.flatnonzero(single[start:])[0]) + start


@pytest.fixture
def leaky_chest(tmp_path, chest_file):
    """The generated file with a flipped copy of a kept train image over a kept val image;
    returns the folder and the two sources."""
    arrays = dict(np.load(chest_file))
    train_row, val_row = _kept_row(arrays["train_labels"]), _kept_row(arrays["val_labels"])
    arrays["val_images"][val_row] = arrays["train_images"][train_row][:, ::-1]
    arrays["val_labels"][val_row] = arrays["train_labels"][train_row]
    np.savez_compressed(tmp_path / "chestmnist.npz", **arrays)
    return tmp_path, f"train/{train_row}", f"val/{val_row}"


def test_drop_removes_the_val_member_of_a_confirmed_pair(leaky_chest):
    folder, original, copy = leaky_chest
    _, warned = prepare_chestmnist(data_dir=str(folder), image_size=28, use_cache=False)
    data, audit = prepare_chestmnist(data_dir=str(folder), image_size=28, leakage="drop", use_cache=False)
    assert [(pair["a"], pair["b"]) for pair in audit.leakage["near"]] == [(original, copy)]
    assert original in data.splits["train"].sources and copy not in data.splits["val"].sources
    assert sum(audit.kept["val"].values()) == sum(warned.kept["val"].values()) - 1 == len(data.splits["val"])
    assert audit.leakage["actions"] == [f"dropped {copy} (duplicate of {original})"]
    assert (f"Leakage policy drop: dropped 1 image(s), each a duplicate of one kept in an earlier split:\n"
            f"  dropped {copy} (duplicate of {original})") in audit.format()
    assert "Leakage policy warn: nothing moved or dropped." in warned.format()


def test_fail_raises_naming_the_pair(leaky_chest):
    folder, original, copy = leaky_chest
    with pytest.raises(DatasetError, match=f"{original} ~ {copy} \\(similarity "):
        prepare_chestmnist(data_dir=str(folder), image_size=28, leakage="fail", use_cache=False)


def test_group_on_fixed_splits_is_an_error_naming_the_allowed_policies(leaky_chest):
    folder, _, _ = leaky_chest
    with pytest.raises(DatasetError, match="allowed: warn, drop, fail"):
        prepare_chestmnist(data_dir=str(folder), image_size=28, leakage="group", use_cache=False)


def test_group_puts_a_planted_pair_into_one_split_that_plain_splitting_separates(tmp_path):
    root = write_taleqani(tmp_path, per_class=6, size=48, seed=2, class_cue=True)
    original_path = root / "Original" / "Benign" / "benign_0.jpg"
    copy_path = root / "Original" / "[Malignant] Pro-B" / "copy_of_benign_0.jpg"
    Image.fromarray(np.ascontiguousarray(np.rot90(decode_rgb(original_path)))).save(copy_path, quality=80)
    original, copy = "Benign/benign_0.jpg", "Pro/copy_of_benign_0.jpg"
    listing, _ = list_labelled_images(root)
    index = {item.source: i for i, item in enumerate(listing)}
    labels = np.array([item.label for item in listing])
    seed = next(seed for seed in range(50) if not any(index[original] in part and index[copy] in part
                                                      for part in assign_splits(labels, 2, seed=seed)))

    warned_data, warned = read_taleqani_classification(root, image_size=32, seed=seed, leakage="warn", use_cache=False)
    assert warned.leakage["near_pairs"] == 1
    data, audit = read_taleqani_classification(root, image_size=32, seed=seed, use_cache=False)
    together = [name for name, split in data.splits.items() if {original, copy} <= set(split.sources)]
    assert len(together) == 1 and audit.leakage["near_pairs"] == 0
    assert audit.leakage["actions"] == [f"kept together in {together[0]}: {original}, {copy}"]
    assert sum(map(len, data.splits.values())) == sum(map(len, warned_data.splits.values()))


def test_the_leakage_data_setting_takes_only_the_four_policies():
    settings = DataSettings.from_mapping({"dataset": "chestmnist", "image_size": 28, "leakage": "drop"})
    assert settings.options.leakage == "drop"
    with pytest.raises(ConfigError, match="leakage 'sometimes' is unknown; valid: warn, group, drop, fail"):
        DataSettings.from_mapping({"dataset": "chestmnist", "image_size": 28, "leakage": "sometimes"})
