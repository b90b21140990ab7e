"""Taleqani ALL classification: folder names, the two loading options, decoding, cache, leakage."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.synthetic_data import TALEQANI_SHORT_CLASSES, write_taleqani
from tests.synthetic_data import main as synthetic_main
from trainables.datasets import taleqani_classification
from trainables.datasets.base import DatasetError
from trainables.datasets.download import DataNotFoundError, cache_dir
from trainables.datasets.images import decode_rgb
from trainables.datasets.taleqani_classification import (
    CLASSIFICATION_CLASSES,
    assign_splits,
    class_folders,
    list_labelled_images,
    prepare_taleqani_classification,
    read_taleqani_classification,
)
from trainables.datasets.taleqani_common import split_sizes
from trainables.datasets.taleqani_segmentation import prepare_taleqani_segmentation

SPLITS = ("train", "val", "test")
KAGGLE_FOLDERS = {"Benign": "Benign", "Early": "[Malignant] early Pre-B",
                  "Pre": "[Malignant] Pre-B", "Pro": "[Malignant] Pro-B"}


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDSWEEP_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def kaggle_tree(tmp_path_factory) -> Path:
    """32 synthetic 48x48 smears under the Kaggle folder names (4 classes x 8); read-only."""
    return write_taleqani(tmp_path_factory.mktemp("kaggle"), per_class=8, size=48, seed=3)


@pytest.fixture(scope="module")
def uneven_tree(tmp_path_factory) -> Path:
    """Classes of 10, 7, 4 and 9 images (Kaggle names, 40x40), so per-class and global
    splitting give different sizes; read-only."""
    root = write_taleqani(tmp_path_factory.mktemp("uneven"), per_class=10, size=40, seed=5)
    for folder, keep in zip(KAGGLE_FOLDERS.values(), (10, 7, 4, 9)):
        for path in sorted((root / "Original" / folder).iterdir())[keep:]:
            path.unlink()
    return root


def _read(root: Path, option: int, **kwargs):
    return read_taleqani_classification(root, image_size=32, loading_option=option, **kwargs)


def _split_of(data, source: str) -> str:
    return next(name for name, split in data.splits.items() if source in split.sources)


# --- folder names ----------------------------------------------------------------------------

@pytest.mark.parametrize("folder, expected", [
    ("Benign", "Benign"), ("benign", "Benign"), ("Benign_cells", "Benign"), ("Hematogones", "Benign"),
    ("[Malignant] early Pre-B", "Early"), ("Early", "Early"), ("early_pre_b", "Early"),
    ("Early Pre-B", "Early"), ("early-pre-b", "Early"),
    ("[Malignant] Pre-B", "Pre"), ("Pre", "Pre"), ("Pre-B", "Pre"), ("pre_b", "Pre"),
    ("[Malignant] Pro-B", "Pro"), ("Pro", "Pro"), ("Pro-B", "Pro"), ("PRO_B", "Pro"),
])
def test_folder_name_variants_map_to_their_class(tmp_path, folder, expected):
    (tmp_path / folder).mkdir()
    assert class_folders(tmp_path) == {CLASSIFICATION_CLASSES.index(expected): tmp_path / folder}


def test_an_unknown_folder_is_an_error_naming_it_and_the_valid_names_before_decoding(tmp_path, monkeypatch):
    root = write_taleqani(tmp_path, per_class=1, size=32)
    (root / "Original" / "Lymphoma").mkdir()

    def must_not_decode(path):
        raise AssertionError("decoded before the folder names were checked")

    monkeypatch.setattr(taleqani_classification, "decode_rgb", must_not_decode)
    with pytest.raises(DatasetError) as error:
        _read(root, 2)
    message = str(error.value)
    assert "'Lymphoma' is not a Taleqani class" in message
    for name in ("Benign", "Early Pre-B", "Pre-B", "Pro-B"):
        assert name in message


def test_two_folders_of_one_class_are_an_error_naming_both(tmp_path):
    root = write_taleqani(tmp_path, per_class=1, size=32)
    (root / "Original" / "Pre").mkdir()
    with pytest.raises(DatasetError, match=r"Pre and .*\[Malignant\] Pre-B both map to class Pre"):
        _read(root, 1)


def test_short_folder_names_give_the_same_data_and_split_as_the_kaggle_names(kaggle_tree, tmp_path):
    short = write_taleqani(tmp_path, per_class=8, size=48, seed=3, classes=TALEQANI_SHORT_CLASSES)
    for option in (1, 2):
        kaggle_data, kaggle_audit = _read(kaggle_tree, option)
        short_data, short_audit = _read(short, option)
        for split in SPLITS:
            assert np.array_equal(kaggle_data.splits[split].labels, short_data.splits[split].labels)
            assert np.array_equal(kaggle_data.splits[split].images, short_data.splits[split].images)
        assert "Early ← Original/[Malignant] early Pre-B" in kaggle_audit.format()
        assert "Early ← Original/Early" in short_audit.format()
        assert f"loading option {option}" in short_audit.format()


def test_the_audit_says_when_a_class_has_no_folder(tmp_path):
    root = write_taleqani(tmp_path, per_class=3, size=32, classes=("Benign", "Pro"))
    data, audit = _read(root, 2)
    assert "Early ← no folder, Pre ← no folder, Pro ← Original/Pro" in audit.format()
    assert data.num_classes == 4


def test_an_original_folder_without_images_is_an_error(tmp_path):
    (tmp_path / "Original" / "Benign").mkdir(parents=True)
    with pytest.raises(DataNotFoundError, match="has no images in class folders"):
        list_labelled_images(tmp_path)


# --- the loading options ---------------------------------------------------------------------

def test_option_1_splits_each_class_70_15_15_on_its_own(uneven_tree):
    data, audit = _read(uneven_tree, 1)
    for label, count in enumerate((10, 7, 4, 9)):
        sizes = [int((data.splits[s].labels == label).sum()) for s in SPLITS]
        assert sizes == split_sizes(count)
    assert dict(audit.images_listed) == {"train": 20, "val": 5, "test": 5}


def test_option_2_splits_one_global_shuffle_70_15_15(uneven_tree):
    data, audit = _read(uneven_tree, 2)
    assert [len(data.splits[s]) for s in SPLITS] == split_sizes(30) == [22, 4, 4]
    assert dict(audit.images_listed) == {"train": 22, "val": 4, "test": 4}


@pytest.mark.parametrize("option", [1, 2])
def test_splits_are_disjoint_and_cover_every_image(uneven_tree, option):
    data, audit = _read(uneven_tree, option)
    listing, _ = list_labelled_images(uneven_tree)
    sources = [set(data.splits[s].sources) for s in SPLITS]
    assert sum(len(s) for s in sources) == len(set.union(*sources)) == 30
    assert set.union(*sources) == {item.source for item in listing}
    assert audit.total_kept() == 30 and not audit.dropped
    train = data.splits["train"]
    assert train.images.dtype == np.uint8 and train.images.shape[1:] == (32, 32, 3)
    assert train.labels.dtype == np.int64
    for split in data.splits.values():
        assert all(CLASSIFICATION_CLASSES[label] == source.split("/")[0]
                   for label, source in zip(split.labels, split.sources))


@pytest.mark.parametrize("option", [1, 2])
def test_the_same_seed_gives_the_same_split_and_another_seed_a_different_one(uneven_tree, option):
    first, _ = _read(uneven_tree, option, seed=7)
    again, _ = _read(uneven_tree, option, seed=7)
    other, _ = _read(uneven_tree, option, seed=8)
    assert all(np.array_equal(first.splits[s].sources, again.splits[s].sources) for s in SPLITS)
    assert first.fingerprint == again.fingerprint != other.fingerprint
    assert set(first.splits["test"].sources) != set(other.splits["test"].sources)


@pytest.mark.parametrize("option", [0, 3, "2", True])
def test_an_unknown_loading_option_is_refused_naming_the_valid_ones(kaggle_tree, option):
    with pytest.raises(DatasetError, match="loading_option must be one of 1, 2"):
        prepare_taleqani_classification(data_dir=str(kaggle_tree), image_size=32, loading_option=option)


def test_assign_splits_handles_an_empty_class():
    labels = np.array([0, 0, 0, 3, 3, 3, 3])
    parts = assign_splits(labels, 1)
    assert sorted(np.concatenate(parts).tolist()) == list(range(7))
    assert [len(p) for p in parts] == [a + b for a, b in zip(split_sizes(3), split_sizes(4))] == [3, 2, 2]


# --- decoding, the audit and the cache -------------------------------------------------------

def test_a_corrupt_image_is_dropped_from_its_split_with_the_reason(tmp_path):
    root = write_taleqani(tmp_path, per_class=4, size=32)
    broken = root / "Original" / "[Malignant] Pro-B" / "malignant_pro_b_1.jpg"
    broken.write_bytes(broken.read_bytes()[:200])
    data, audit = _read(root, 2)
    [dropped] = audit.dropped
    assert dropped.item == "Pro/malignant_pro_b_1.jpg" and dropped.reason.startswith("corrupt image:")
    assert sum(audit.images_listed.values()) == 16
    assert sum(audit.images_read.values()) == 15 == audit.total_kept()
    assert audit.images_listed[dropped.split] == audit.images_read[dropped.split] + 1
    assert "Pro/malignant_pro_b_1.jpg" not in {s for split in data.splits.values() for s in split.sources}


def test_both_options_share_one_decode_cache_and_it_returns_identical_arrays(kaggle_tree, monkeypatch):
    fresh = {option: _read(kaggle_tree, option, use_cache=False) for option in (1, 2)}
    assert not (cache_dir() / "decoded").exists()
    prepare_taleqani_classification(data_dir=str(kaggle_tree), image_size=32, loading_option=1)
    assert len(list((cache_dir() / "decoded").glob("taleqani-classification-*.npz"))) == 1

    def must_not_decode(*args, **kwargs):
        raise AssertionError("the cache was not used")

    monkeypatch.setattr(taleqani_classification, "decode_listing", must_not_decode)
    for option in (1, 2):
        cached, audit = prepare_taleqani_classification(data_dir=str(kaggle_tree), image_size=32,
                                                        loading_option=option)
        data, fresh_audit = fresh[option]
        assert cached.fingerprint == data.fingerprint
        for split in SPLITS:
            assert np.array_equal(cached.splits[split].images, data.splits[split].images)
            assert np.array_equal(cached.splits[split].labels, data.splits[split].labels)
            assert list(cached.splits[split].sources) == list(data.splits[split].sources)
        assert audit.to_dict() == fresh_audit.to_dict()


def test_decoded_images_are_the_resized_originals(kaggle_tree):
    data, _ = _read(kaggle_tree, 2)
    split = data.splits["val"]
    source = split.sources[0]
    class_name, name = source.split("/")
    original = decode_rgb(kaggle_tree / "Original" / KAGGLE_FOLDERS[class_name] / name)
    assert np.array_equal(split.images[0], taleqani_classification.resize_square(original, 32))
    assert data.name == "taleqani" and data.class_names == ("Benign", "Early", "Pre", "Pro")


# --- leakage ---------------------------------------------------------------------------------

@pytest.mark.parametrize("option", [1, 2])
def test_generated_data_has_no_leaks(kaggle_tree, option):
    _, audit = _read(kaggle_tree, option)
    assert audit.leakage["images"] == 32
    assert audit.leakage["exact_groups"] == 0 and audit.leakage["near_pairs"] == 0


@pytest.mark.parametrize("option", [1, 2])
def test_a_planted_copy_in_another_class_is_an_exact_duplicate_when_split_apart(tmp_path, option):
    root = write_taleqani(tmp_path, per_class=6, size=40, seed=2)
    shutil.copy(root / "Original" / "Benign" / "benign_0.jpg",
                root / "Original" / "[Malignant] Pro-B" / "copy_of_benign_0.jpg")
    original, copy = "Benign/benign_0.jpg", "Pro/copy_of_benign_0.jpg"
    seed_apart, seed_together = _seeds_separating(root, option, original, copy)

    data, audit = _read(root, option, seed=seed_apart, leakage="warn")
    expected = sorted([f"{_split_of(data, original)}/{original}", f"{_split_of(data, copy)}/{copy}"])
    assert audit.leakage["exact_groups"] == 1 and audit.leakage["exact"] == [expected]
    assert f"exact: {' = '.join(expected)}" in audit.format()

    _, together = _read(root, option, seed=seed_together)
    assert together.leakage["exact_groups"] == 0


def _seeds_separating(root: Path, option: int, a: str, b: str) -> tuple[int, int]:
    """The first seed that puts sources ``a`` and ``b`` in different splits, and the first that
    puts them in the same split."""
    listing, _ = list_labelled_images(root)
    labels = np.array([item.label for item in listing])
    index = {item.source: i for i, item in enumerate(listing)}
    apart = {}
    for seed in range(100):
        parts = assign_splits(labels, option, seed=seed)
        split_of = {i: n for n, part in enumerate(parts) for i in part}
        apart.setdefault(split_of[index[a]] != split_of[index[b]], seed)
        if len(apart) == 2:
            return apart[True], apart[False]
    raise AssertionError("no seed below 100 both separates and joins the two copies")


# --- locating and the synthetic writer -------------------------------------------------------

def test_classification_needs_only_original_while_segmentation_says_what_is_missing(tmp_path):
    root = write_taleqani(tmp_path / "leukemia", per_class=3, size=32)
    shutil.rmtree(root / "Segmented")
    data, _ = prepare_taleqani_classification(data_dir=str(tmp_path), image_size=32)
    assert sum(len(s) for s in data.splits.values()) == 12
    with pytest.raises(DataNotFoundError) as error:
        prepare_taleqani_segmentation(data_dir=str(tmp_path), image_size=32)
    message = str(error.value)
    assert "a folder with Original/ and Segmented/" in message
    assert f"{root} has Original/ but not Segmented/, which this task needs." in message


def test_classification_not_found_names_original_only(tmp_path):
    with pytest.raises(DataNotFoundError, match=r"a folder with Original/\) was not found"):
        prepare_taleqani_classification(data_dir=str(tmp_path), image_size=32)


def test_the_synthetic_cli_writes_short_names_and_a_class_cue(tmp_path, capsys):
    assert synthetic_main(["taleqani", str(tmp_path), "--per-class", "2", "--size", "32",
                           "--short-names", "--class-cue"]) == 0
    assert sorted(p.name for p in (tmp_path / "Original").iterdir()) == sorted(TALEQANI_SHORT_CLASSES)
    assert "8 Original/Segmented pairs" in capsys.readouterr().out
    segmented = {name: decode_rgb(next((tmp_path / "Segmented" / name).glob("*.jpg"))).astype(int)
                 for name in ("Benign", "Early")}
    cells = {name: image[image.sum(axis=-1) > 90] for name, image in segmented.items()}
    assert cells["Benign"][:, 0].mean() > cells["Early"][:, 0].mean() + 30   # purple vs blue blasts
