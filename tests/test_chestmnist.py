"""ChestMNIST: the single-label filter, locating and downloading, malformed files, the audit."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import assert_same_data
from tests.synthetic_data import main as synthetic_main
from tests.synthetic_data import write_chestmnist
from trainables.datasets import chestmnist
from trainables.datasets.base import DatasetError
from trainables.datasets.chestmnist import (
    CLASS_NAMES,
    MalformedNpzError,
    prepare_chestmnist,
    read_chestmnist,
    search_dirs,
)
from trainables.datasets.download import DataNotFoundError, cache_dir

SPLITS = ("train", "val", "test")


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """A private cache, no data directory from the environment, and no real download."""
    monkeypatch.setenv("MEDSWEEP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("MEDSWEEP_DATA_DIR", raising=False)

    def not_installed(folder, image_size):
        raise ImportError("No module named 'medmnist'")

    monkeypatch.setattr(chestmnist, "download_with_medmnist", not_installed)


@pytest.fixture(scope="module")
def npz28(tmp_path_factory) -> Path:
    """The default synthetic chestmnist.npz (40/10/10 rows); read-only."""
    return write_chestmnist(tmp_path_factory.mktemp("chest28"))


def _expected_rows(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows with exactly one finding, that finding Cardiomegaly (1) or Pneumothorax (7), and
    their classes."""
    single = labels.sum(axis=1) == 1
    rows = np.flatnonzero(single & ((labels[:, 1] == 1) | (labels[:, 7] == 1)))
    return rows, labels[rows, 7].astype(np.int64)


def _rewrite(source: Path, target: Path, **changes) -> Path:
    """A copy of the npz at ``source`` with arrays replaced (or removed when None)."""
    with np.load(source) as stored:
        arrays = {key: stored[key] for key in stored.files}
    arrays.update(changes)
    np.savez(target, **{k: v for k, v in arrays.items() if v is not None})
    return target


# --- the filter ------------------------------------------------------------------------------

def test_only_single_label_cardiomegaly_and_pneumothorax_rows_are_kept(npz28):
    splits, audit = read_chestmnist(npz28, image_size=28)
    with np.load(npz28) as raw:
        for split in SPLITS:
            rows, classes = _expected_rows(raw[f"{split}_labels"])
            got = splits[split]
            assert list(got.sources) == [f"{split}/{row}" for row in rows]
            assert np.array_equal(got.labels, classes) and got.labels.dtype == np.int64
            assert got.images.shape == (len(rows), 28, 28, 1) and got.images.dtype == np.uint8
            assert np.array_equal(got.images[..., 0], raw[f"{split}_images"][rows])
            assert audit.kept[split] == {"Cardiomegaly": int((classes == 0).sum()),
                                         "Pneumothorax": int((classes == 1).sum())}
    assert [len(splits[s]) for s in SPLITS] == [24, 6, 6]
    assert set(splits["train"].labels) == {0, 1}


def test_the_generator_writes_every_kind_of_row_and_distinct_classes(npz28):
    with np.load(npz28) as raw:
        labels, images = raw["train_labels"], raw["train_images"].astype(float)
    positives = labels.sum(axis=1)
    assert labels.dtype == np.uint8 and labels.shape == (40, 14)
    assert (positives == 0).sum() == 8 and (positives > 1).sum() == 4
    assert ((positives == 1) & (labels[:, 1] == 0) & (labels[:, 7] == 0)).sum() == 4
    rows, classes = _expected_rows(labels)
    heart = images[rows][:, 15:20, 12:17].mean(axis=(1, 2))     # bright heart when enlarged
    assert heart[classes == 0].min() > heart[classes == 1].max()


def test_the_audit_summarises_left_out_rows_per_split_and_reason(npz28):
    _, audit = read_chestmnist(npz28, image_size=28)
    assert dict(audit.images_listed) == dict(audit.images_read) == {"train": 40, "val": 10, "test": 10}
    by_split = {}
    for item in audit.dropped:
        by_split.setdefault(item.split, []).append(item)
    assert all(len(items) == 3 for items in by_split.values()) and len(audit.dropped) == 9
    train = {item.reason.split(" (")[0].split(":")[0]: item.item for item in by_split["train"]}
    assert train == {"no finding": "8 images", "one other finding": "4 images",
                     "more than one finding": "4 images"}
    text = audit.format()
    assert "[train] 8 images: no finding (all 14 labels 0)" in text
    assert "[val] 1 image: more than one finding (1 of them include Cardiomegaly or Pneumothorax)" in text
    assert f"Data audit: chestmnist at {npz28}" in text


def test_the_leakage_check_finds_a_planted_copy_and_nothing_in_generated_data(npz28, tmp_path):
    _, clean = read_chestmnist(npz28, image_size=28)
    assert clean.leakage["images"] == 36
    assert clean.leakage["exact_groups"] == 0 and clean.leakage["near_pairs"] == 0
    with np.load(npz28) as raw:
        train_rows, _ = _expected_rows(raw["train_labels"])
        val_rows, _ = _expected_rows(raw["val_labels"])
        val_images = raw["val_images"].copy()
        val_images[val_rows[0]] = raw["train_images"][train_rows[0]]
    planted = _rewrite(npz28, tmp_path / "chestmnist.npz", val_images=val_images)
    _, audit = read_chestmnist(planted, image_size=28)
    assert audit.leakage["exact"] == [[f"train/{train_rows[0]}", f"val/{val_rows[0]}"]]


# --- locating, naming and downloading ----------------------------------------------------------

def test_the_file_name_follows_medmnist_per_size(tmp_path):
    assert write_chestmnist(tmp_path, per_split=(10, 5, 5), size=64).name == "chestmnist_64.npz"
    data, audit = prepare_chestmnist(data_dir=str(tmp_path), image_size=64)
    assert data.splits["train"].images.shape[1:] == (64, 64, 1)
    assert audit.root == str(tmp_path / "chestmnist_64.npz")
    with pytest.raises(DataNotFoundError, match=r"ChestMNIST \(chestmnist\.npz\) was not found"):
        prepare_chestmnist(data_dir=str(tmp_path), image_size=28)


def test_an_image_size_medmnist_does_not_have_is_refused_listing_the_sizes(npz28):
    with pytest.raises(DatasetError, match="image sizes 28, 64, 128, 224"):
        prepare_chestmnist(data_dir=str(npz28.parent), image_size=32)


def test_the_medmnist_subfolder_and_the_environment_are_searched(npz28, tmp_path, monkeypatch):
    nested = tmp_path / "shared"
    write_chestmnist(nested / "medmnist", per_split=(10, 5, 5))
    data, audit = prepare_chestmnist(data_dir=str(nested), image_size=28)
    assert audit.root == str(nested / "medmnist" / "chestmnist.npz")
    monkeypatch.setenv("MEDSWEEP_DATA_DIR", str(npz28.parent))
    _, from_env = prepare_chestmnist(data_dir=None, image_size=28)
    assert from_env.root == str(npz28)
    assert search_dirs("d")[:3] == [Path("d"), Path("d/medmnist"), Path("d/chestmnist")]
    assert search_dirs(None)[-1] == cache_dir() / "medmnist"


def test_a_missing_file_names_every_place_looked_and_the_fix(tmp_path):
    with pytest.raises(DataNotFoundError) as error:
        prepare_chestmnist(data_dir=str(tmp_path / "data"), image_size=28)
    message = str(error.value)
    assert "the medmnist package is not installed" in message
    for place in (tmp_path / "data", tmp_path / "data" / "medmnist", tmp_path / "data" / "chestmnist",
                  cache_dir() / "medmnist"):
        assert f"  {place}\n" in message
    assert "pip install medmnist" in message and "--data-dir" in message


def test_a_failed_download_says_why(tmp_path, monkeypatch):
    def offline(folder, image_size):
        raise RuntimeError("Automatic download failed!")

    monkeypatch.setattr(chestmnist, "download_with_medmnist", offline)
    with pytest.raises(DataNotFoundError, match="the download failed: Automatic download failed!"):
        prepare_chestmnist(data_dir=None, image_size=28)


def test_a_download_lands_in_the_cache_and_is_used(monkeypatch):
    calls = []

    def fake_medmnist(folder, image_size):
        calls.append((folder, image_size))
        write_chestmnist(folder, per_split=(20, 10, 10), size=image_size)

    monkeypatch.setattr(chestmnist, "download_with_medmnist", fake_medmnist)
    data, audit = prepare_chestmnist(data_dir=None, image_size=64)
    assert calls == [(cache_dir() / "medmnist", 64)]
    assert audit.root == str(cache_dir() / "medmnist" / "chestmnist_64.npz")
    assert data.name == "chestmnist" and data.class_names == CLASS_NAMES
    assert data.mean == (0.485,) and data.std == (0.229,)
    prepare_chestmnist(data_dir=None, image_size=64)
    assert len(calls) == 1


# --- malformed files -------------------------------------------------------------------------

def test_a_missing_key_is_an_error_naming_the_file_and_key(npz28, tmp_path):
    broken = _rewrite(npz28, tmp_path / "chestmnist.npz", val_labels=None)
    with pytest.raises(MalformedNpzError, match=rf"{re.escape(str(broken))}: key 'val_labels' is missing"):
        read_chestmnist(broken, image_size=28)


@pytest.mark.parametrize("key, value, message", [
    ("train_labels", np.zeros((40, 13), np.uint8), r"train_labels has shape \(40, 13\); expected N x 14"),
    ("test_images", np.zeros((10, 64, 64), np.uint8), r"test_images has shape \(10, 64, 64\).*N x 28 x 28"),
    ("val_images", np.zeros((10, 28, 28), np.float32), r"val_images .* dtype float32; expected uint8"),
    ("val_labels", np.zeros((9, 14), np.uint8), r"val_labels has 9 rows but val_images has 10"),
    ("train_labels", np.full((40, 14), 2, np.uint8), r"train_labels holds values other than 0 and 1"),
])
def test_wrong_shapes_and_values_are_errors_naming_the_key(npz28, tmp_path, key, value, message):
    broken = _rewrite(npz28, tmp_path / "chestmnist.npz", **{key: value})
    with pytest.raises(MalformedNpzError, match=message):
        read_chestmnist(broken, image_size=28)


def test_a_file_that_is_not_an_npz_is_an_error_naming_it(tmp_path):
    garbage = tmp_path / "chestmnist.npz"
    garbage.write_bytes(b"not a zip file")
    with pytest.raises(MalformedNpzError, match=rf"{re.escape(str(garbage))}: cannot read it as an npz file"):
        prepare_chestmnist(data_dir=str(tmp_path), image_size=28)


# --- caching and the synthetic CLI -----------------------------------------------------------

def test_the_cache_returns_equal_arrays_and_the_same_audit(npz28, monkeypatch):
    data, audit = prepare_chestmnist(data_dir=str(npz28.parent), image_size=28)
    assert list((cache_dir() / "filtered").glob("chestmnist-*.npz"))

    def must_not_read(*args, **kwargs):
        raise AssertionError("the cache was not used")

    monkeypatch.setattr(chestmnist, "read_chestmnist", must_not_read)
    cached, cached_audit = prepare_chestmnist(data_dir=str(npz28.parent), image_size=28)
    assert_same_data(data, cached)
    assert cached_audit.to_dict() == audit.to_dict()


def test_the_synthetic_cli_writes_a_medmnist_file(tmp_path, capsys):
    assert synthetic_main(["chestmnist", str(tmp_path), "--size", "64", "--per-split", "5,2,3",
                           "--seed", "4"]) == 0
    assert "--data-dir" in capsys.readouterr().out
    with np.load(tmp_path / "chestmnist_64.npz") as stored:
        assert {k: stored[k].shape for k in stored.files} == {
            "train_images": (5, 64, 64), "train_labels": (5, 14), "val_images": (2, 64, 64),
            "val_labels": (2, 14), "test_images": (3, 64, 64), "test_labels": (3, 14)}
    for bad in (["--per-split", "5,2"], ["--size", "32"]):
        with pytest.raises(SystemExit) as exit_info:
            synthetic_main(["chestmnist", str(tmp_path), *bad])
        assert exit_info.value.code == 2


def test_the_generator_is_deterministic_per_seed(tmp_path):
    first = write_chestmnist(tmp_path / "a", seed=1)
    again = write_chestmnist(tmp_path / "b", seed=1)
    other = write_chestmnist(tmp_path / "c", seed=2)
    with np.load(first) as a, np.load(again) as b, np.load(other) as c:
        assert all(np.array_equal(a[k], b[k]) for k in a.files)
        assert not np.array_equal(a["train_images"], c["train_images"])
