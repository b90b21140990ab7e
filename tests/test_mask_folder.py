"""The generic ``mask_folder`` segmentation format: pairing, class maps, the audit's dropped
files, split folders, the cache, leakage grouping, the options' JSON round trip and the survey,
on tiny images written into tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import trainables.datasets.mask_folder as mask_folder
from trainables.config import ConfigError
from trainables.datasets import get_dataset_entry
from trainables.datasets.base import DatasetError
from trainables.datasets.mask_folder import MaskFolderOptions, prepare_mask_folder, survey_mask_folder

SIZE = 16
THREE = {0: "background", 128: "cytoplasm", 255: "nucleus"}


def noise(seed: int, size: int = SIZE) -> np.ndarray:
    """A distinct RGB image per seed (no two are near-duplicates)."""
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def half_mask(value: int = 255, size: int = SIZE) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    mask[:, size // 2:] = value
    return mask


def block_mask(values=(0, 128, 255)) -> np.ndarray:
    """2 x 2 blocks whose value cycles through ``values`` along the diagonals, so any
    nearest-neighbour halving keeps block (i, j) as pixel (i, j)."""
    blocks = np.add.outer(np.arange(SIZE // 2), np.arange(SIZE // 2)) % len(values)
    return np.asarray(values, np.uint8)[blocks].repeat(2, axis=0).repeat(2, axis=1)


def write_pair(folder: Path, name: str, *, seed: int, mask: np.ndarray | None = None, mask_name: str | None = None,
               image: np.ndarray | None = None) -> None:
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    Image.fromarray(noise(seed) if image is None else image).save(folder / "images" / f"{name}.png")
    Image.fromarray(half_mask() if mask is None else mask).save(folder / "masks" / f"{mask_name or name}.png")


def binary_folder(root: Path, count: int = 10, value: int = 255) -> Path:
    for i in range(count):
        write_pair(root, f"case{i:02d}", seed=i, mask=half_mask(value))
    return root


def prepare(root: Path, **options):
    return prepare_mask_folder(data_dir=str(root), image_size=8, use_cache=False, **options)


def sources(data) -> dict[str, list[str]]:
    return {name: list(split.sources) for name, split in data.splits.items()}


def dropped(audit) -> dict[str, str]:
    return {d.item: d.reason for d in audit.dropped}


@pytest.mark.parametrize("value", [255, 1])
def test_binary_pairs_become_two_classes_split_70_15_15(tmp_path, value):
    data, audit = prepare(binary_folder(tmp_path, value=value))
    assert data.name == "mask_folder" and data.class_names == ("background", "foreground")
    assert [len(data.splits[s]) for s in ("train", "val", "test")] == [6, 2, 2]
    for split in data.splits.values():
        assert split.images.shape[1:] == (8, 8, 3) and split.images.dtype == np.uint8
        assert split.labels.dtype == np.uint8
        assert (split.labels == half_mask(1, 8)).all()
    assert audit.dropped == [] and audit.kept["train"] == {"background": 6, "foreground": 6}
    assert audit.masks["pixel_shares"]["train"] == {"background": 0.5, "foreground": 0.5}
    assert "Pixels per class in train: background 50.0%, foreground 50.0%" in audit.format()


def test_several_nonzero_values_without_a_classes_map_is_an_error_giving_the_map(tmp_path):
    binary_folder(tmp_path, count=4)
    write_pair(tmp_path, "other", seed=9, mask=half_mask(128))
    with pytest.raises(DatasetError, match=r"128 in 1 mask\(s\), 255 in 4 mask\(s\).*classes: \{0: background, "
                                           r"128: class_128, 255: class_255\}"):
        prepare(tmp_path)


def test_three_mask_values_map_to_three_class_indices_after_a_nearest_resize(tmp_path):
    for i in range(6):
        write_pair(tmp_path, f"c{i}", seed=i, mask=block_mask())
    data, audit = prepare(tmp_path, classes=THREE)
    assert data.class_names == ("background", "cytoplasm", "nucleus")
    expected = np.add.outer(np.arange(8), np.arange(8)) % 3
    for split in data.splits.values():
        assert (split.labels == expected).all()
    larger, _ = prepare_mask_folder(data_dir=str(tmp_path), image_size=24, classes=THREE, use_cache=False)
    assert set(np.unique(larger.splits["train"].labels)) == {0, 1, 2}
    assert audit.kept["train"] == {"background": 4, "cytoplasm": 4, "nucleus": 4}
    assert audit.masks["values"] == {"0": 6, "128": 6, "255": 6}


def test_sixteen_bit_and_palette_masks_are_read_by_their_values(tmp_path):
    for i in range(3):
        write_pair(tmp_path, f"deep{i}", seed=i, mask=half_mask(1).astype(np.uint16) * 1000)
        palette = Image.fromarray(half_mask(2)).convert("P")
        write_pair(tmp_path, f"pal{i}", seed=10 + i)
        palette.save(tmp_path / "masks" / f"pal{i}.png")
    assert Image.open(tmp_path / "masks" / "deep0.png").mode == "I;16"
    assert Image.open(tmp_path / "masks" / "pal0.png").mode == "P"
    data, audit = prepare(tmp_path, classes={0: "background", 2: "cell", 1000: "nucleus"})
    assert audit.dropped == [] and audit.masks["values"] == {"0": 6, "2": 3, "1000": 3}
    for split in data.splits.values():
        for source, labels in zip(split.sources, split.labels):
            assert (labels == half_mask(1 if source.startswith("pal") else 2, 8)).all()


def test_a_value_named_background_is_class_zero_whatever_its_value(tmp_path):
    for i in range(4):
        write_pair(tmp_path, f"c{i}", seed=i)
    data, _ = prepare(tmp_path, classes={0: "cell", 255: "background"})
    assert data.class_names == ("background", "cell")
    assert (data.splits["train"].labels == 1 - half_mask(1, 8)).all()


def test_masks_pair_by_stem_with_or_without_a_mask_suffix_and_in_subfolders(tmp_path):
    write_pair(tmp_path, "a", seed=1, mask_name="a_mask")
    write_pair(tmp_path, "b", seed=2, mask_name="b-mask")
    write_pair(tmp_path, "c", seed=3)
    (tmp_path / "images" / "patient1").mkdir()
    (tmp_path / "masks" / "patient1").mkdir()
    Image.fromarray(noise(4)).save(tmp_path / "images" / "patient1" / "d.jpg")
    Image.fromarray(half_mask()).save(tmp_path / "masks" / "patient1" / "d_mask.png")
    data, audit = prepare(tmp_path)
    assert sorted(s for split in data.splits.values() for s in split.sources) == ["a.png", "b.png", "c.png",
                                                                                  "patient1/d.jpg"]
    assert audit.dropped == []


def test_unpaired_images_and_masks_are_listed_and_dropped(tmp_path):
    binary_folder(tmp_path, count=4)
    Image.fromarray(noise(20)).save(tmp_path / "images" / "lonely.png")
    Image.fromarray(half_mask()).save(tmp_path / "masks" / "orphan.png")
    data, audit = prepare(tmp_path)
    assert sum(len(s) for s in data.splits.values()) == 4
    reasons = dropped(audit)
    assert reasons["images/lonely.png"] == "no mask lonely.*, lonely_mask.* or lonely-mask.* in masks/"
    assert reasons["masks/orphan.png"] == "no image orphan.* in images/"
    assert {d.split for d in audit.dropped} == {"unpaired"}
    assert "images/lonely.png" in {item["source"] for item in audit.masks["mismatched"]}


def test_a_size_mismatch_is_listed_and_dropped(tmp_path):
    binary_folder(tmp_path, count=4)
    write_pair(tmp_path, "big", seed=30, mask=np.zeros((20, 20), np.uint8))
    data, audit = prepare(tmp_path)
    assert "big.png" not in {s for split in data.splits.values() for s in split.sources}
    assert dropped(audit)["images/big.png"].startswith("size mismatch: image 16x16, mask big.png 20x20")


def test_mask_values_outside_the_map_are_listed_with_their_pixel_counts(tmp_path):
    binary_folder(tmp_path, count=4)
    odd = half_mask()
    odd[0, :5] = 7
    write_pair(tmp_path, "odd", seed=31, mask=odd)
    data, audit = prepare(tmp_path, classes={0: "background", 255: "cell"})
    assert sum(len(s) for s in data.splits.values()) == 4
    assert "values outside the classes map: 7 (5 px)" in dropped(audit)["images/odd.png"]


def test_corrupt_images_and_masks_are_listed_and_dropped(tmp_path):
    binary_folder(tmp_path, count=4)
    write_pair(tmp_path, "broken", seed=32)
    write_pair(tmp_path, "broken_mask", seed=33)
    (tmp_path / "images" / "broken.png").write_bytes(b"not a png")
    (tmp_path / "masks" / "broken_mask.png").write_bytes((tmp_path / "masks" / "broken_mask.png").read_bytes()[:40])
    data, audit = prepare(tmp_path)
    assert sum(len(s) for s in data.splits.values()) == 4
    reasons = dropped(audit)
    assert reasons["images/broken.png"].startswith("corrupt file:")
    assert reasons["images/broken_mask.png"].startswith("corrupt file:") and "cannot decode mask" in reasons[
        "images/broken_mask.png"]


def test_a_colour_mask_is_an_error_naming_the_file_and_a_grey_rgb_mask_is_read(tmp_path):
    binary_folder(tmp_path, count=4)
    Image.fromarray(np.stack([half_mask()] * 3, axis=-1)).save(tmp_path / "masks" / "case00.png")
    data, _ = prepare(tmp_path)
    assert sum(len(s) for s in data.splits.values()) == 4
    colour = np.zeros((SIZE, SIZE, 3), np.uint8)
    colour[..., 0] = 255
    Image.fromarray(colour).save(tmp_path / "masks" / "case01.png")
    with pytest.raises(DatasetError, match=r"case01.png is a colour mask .* single-channel"):
        prepare(tmp_path)


def fixed_folder(root: Path, splits=(("train", 6), ("validation", 2), ("testing", 2))) -> Path:
    seed = 0
    for folder, count in splits:
        for i in range(count):
            write_pair(root / folder, f"{folder}{i}", seed=seed)
            seed += 1
    return root


def test_split_folders_are_the_splits_and_refuse_the_group_policy(tmp_path):
    data, audit = prepare(fixed_folder(tmp_path))
    assert {s: sorted(data.splits[s].sources) for s in ("val", "test")} == {
        "val": ["validation0.png", "validation1.png"], "test": ["testing0.png", "testing1.png"]}
    assert len(data.splits["train"]) == 6 and audit.leakage["policy"] == "warn"
    with pytest.raises(DatasetError, match=r"'group' does not apply .*train/, validation/, testing/"):
        prepare(tmp_path, leakage="group")


def test_missing_val_and_test_folders_are_cut_from_train_seeded(tmp_path):
    fixed_folder(tmp_path, splits=(("train", 10), ("test", 2)))
    first, _ = prepare(tmp_path)
    again, _ = prepare(tmp_path)
    assert [len(first.splits[s]) for s in ("train", "val", "test")] == [8, 2, 2]
    assert sorted(first.splits["test"].sources) == ["test0.png", "test1.png"]
    assert all(s.startswith("train") for s in first.splits["val"].sources)
    assert sources(first) == sources(again)


def test_the_split_and_fingerprint_are_deterministic_and_follow_the_data(tmp_path):
    binary_folder(tmp_path, count=20)
    first, _ = prepare(tmp_path)
    again, _ = prepare(tmp_path)
    assert first.fingerprint == again.fingerprint and len(first.fingerprint) == 64
    assert sources(first) == sources(again)
    other, _ = prepare(tmp_path, split_fractions=[0.5, 0.25, 0.25])
    assert len(other.splits["train"]) == 10 and other.fingerprint != first.fingerprint
    Image.fromarray(half_mask(255)[:, ::-1].copy()).save(tmp_path / "masks" / "case03.png")
    changed, _ = prepare(tmp_path)
    assert changed.fingerprint != first.fingerprint


def test_a_cache_hit_gives_the_same_data_and_audit_without_reading(tmp_path, monkeypatch):
    binary_folder(tmp_path, count=6)
    first, audit = prepare_mask_folder(data_dir=str(tmp_path), image_size=8)

    def read_again(*args, **kwargs):
        raise AssertionError("read although cached")

    monkeypatch.setattr(mask_folder, "read_mask_folder", read_again)
    cached, cached_audit = prepare_mask_folder(data_dir=str(tmp_path), image_size=8)
    assert cached.fingerprint == first.fingerprint and cached.class_names == first.class_names
    for name, split in first.splits.items():
        assert (cached.splits[name].images == split.images).all()
        assert (cached.splits[name].labels == split.labels).all()
        assert list(cached.splits[name].sources) == list(split.sources)
    assert json.loads(json.dumps(cached_audit.to_dict())) == json.loads(json.dumps(audit.to_dict()))


def test_an_exact_duplicate_image_is_grouped_into_one_split_by_default(tmp_path):
    binary_folder(tmp_path, count=12)
    write_pair(tmp_path, "copy", seed=5)     # the bytes of case05's image
    assert (tmp_path / "images" / "copy.png").read_bytes() == (tmp_path / "images" / "case05.png").read_bytes()
    data, audit = prepare(tmp_path)
    where = {source: split for split, arrays in data.splits.items() for source in arrays.sources}
    assert where["copy.png"] == where["case05.png"]
    assert audit.leakage["policy"] == "group" and audit.leakage["exact"] == []
    assert [group["members"] for group in audit.leakage["groups"]] == [["case05.png", "copy.png"]]


def test_root_is_taken_from_the_data_dir_and_a_missing_layout_says_what_to_make(tmp_path):
    binary_folder(tmp_path / "study" / "cells", count=4)
    data, _ = prepare_mask_folder(data_dir=str(tmp_path), image_size=8, root="study/cells", use_cache=False)
    assert sum(len(s) for s in data.splits.values()) == 4
    with pytest.raises(DatasetError, match=r"has no images folder \(images/, image/, imgs/\) and no masks folder"):
        prepare_mask_folder(data_dir=str(tmp_path), image_size=8, use_cache=False)
    renamed = tmp_path / "study" / "cells"
    (renamed / "masks").rename(renamed / "ground_truth")
    data, _ = prepare_mask_folder(data_dir=str(renamed), image_size=8, masks="ground_truth", use_cache=False)
    assert sum(len(s) for s in data.splits.values()) == 4


def test_options_with_int_class_keys_survive_a_json_round_trip(tmp_path):
    options = MaskFolderOptions(root=str(tmp_path), classes=THREE)
    saved = json.loads(json.dumps(options.keywords()))
    assert MaskFolderOptions(**saved) == options and options.classes == THREE


def test_the_data_section_with_int_class_keys_survives_the_json_round_trip_of_sweep_json(tmp_path):
    from sweeps.space import DataSettings  # imports torch: only here, so the other tests start fast

    settings = DataSettings.from_mapping({"dataset": "mask_folder", "image_size": 16, "root": str(tmp_path),
                                          "classes": THREE, "split_fractions": [0.6, 0.2, 0.2]})
    saved = json.loads(json.dumps(settings.to_dict()))
    assert saved["classes"] == {"0": "background", "128": "cytoplasm", "255": "nucleus"}
    again = DataSettings.from_mapping(saved)
    assert again == settings and again.options.classes == THREE
    assert get_dataset_entry("mask_folder").options is MaskFolderOptions


@pytest.mark.parametrize(("classes", "message"), [
    ({0: "background", 0.5: "cell"}, "key 0.5 is not a mask pixel value"),
    ({0: "background", "0": "cell"}, "key '0' appears twice"),
    ({0: "cell", 255: "cell"}, "the names cell are given to several values"),
    ({1: "cell", 2: "nucleus"}, "must map value 0 to the background or name one class 'background'"),
    ({0: "background"}, "it must map 2 to 256 values, got 1"),
    ({0: "background", 255: ""}, "the name of value 255 must be a non-empty string"),
    ("0: background", "data setting 'classes' must be dict or null"),
])
def test_bad_classes_maps_are_config_errors_naming_the_key(classes, message):
    with pytest.raises(ConfigError, match=message) as caught:
        MaskFolderOptions(classes=classes)
    assert caught.value.key == "classes"


def test_folders_outside_root_are_refused():
    with pytest.raises(ConfigError, match="'masks' must be a folder inside root") as caught:
        MaskFolderOptions(masks="../masks")
    assert caught.value.key == "masks"


def test_survey_of_binary_pairs_gives_options_that_read_the_folder(tmp_path):
    binary_folder(tmp_path, count=6)
    survey = survey_mask_folder(tmp_path)
    assert (survey.format, survey.task, survey.fixed_splits, survey.channels) == ("mask_folder", "segmentation",
                                                                                   False, 3)
    assert survey.class_names == ("background", "foreground")
    assert survey.counts == {"all": {"background": 6, "foreground": 6}}
    assert survey.options == {"root": str(tmp_path.resolve()), "classes": {0: "background", 255: "foreground"}}
    assert survey.image_sizes == ((SIZE, SIZE),) * 6 and survey.problems == ()
    data, _ = prepare_mask_folder(data_dir=None, image_size=8, use_cache=False,
                                  **MaskFolderOptions(**survey.options).keywords())
    assert data.class_names == survey.class_names


def test_survey_of_multi_valued_masks_names_each_value(tmp_path):
    for i in range(3):
        write_pair(tmp_path, f"c{i}", seed=i, mask=block_mask())
    write_pair(tmp_path, "d", seed=3, mask=half_mask(128))
    survey = survey_mask_folder(tmp_path)
    assert survey.options["classes"] == {0: "background", 128: "class_128", 255: "class_255"}
    assert survey.counts == {"all": {"background": 4, "class_128": 4, "class_255": 3}}


def test_survey_lists_unpaired_mismatched_and_unreadable_files(tmp_path):
    write_pair(tmp_path, "a", seed=1, mask_name="a_mask")
    write_pair(tmp_path, "b", seed=2)
    Image.fromarray(noise(3)).save(tmp_path / "images" / "lonely.png")
    Image.fromarray(half_mask()).save(tmp_path / "masks" / "orphan.png")
    write_pair(tmp_path, "big", seed=4, mask=np.zeros((20, 20), np.uint8))
    write_pair(tmp_path, "broken", seed=5)
    (tmp_path / "images" / "broken.png").write_bytes(b"not a png")
    survey = survey_mask_folder(tmp_path)
    assert survey.counts == {"all": {"background": 2, "foreground": 2}}
    problems = "\n".join(survey.problems)
    for expected in ("images/lonely.png: no mask", "masks/orphan.png: no image orphan.*",
                     "images/big.png: size mismatch: image 16x16, mask big.png 20x20",
                     "images/broken.png: unreadable image or mask"):
        assert expected in problems


def test_survey_of_split_folders_counts_per_split(tmp_path):
    fixed_folder(tmp_path)
    survey = survey_mask_folder(tmp_path)
    assert survey.fixed_splits and survey.layout.startswith("split folders train/images/ + train/masks/")
    assert survey.counts == {split: {"background": n, "foreground": n}
                             for split, n in (("train", 6), ("val", 2), ("test", 2))}


def test_survey_samples_the_masks_of_a_large_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(mask_folder, "SURVEY_MASKS", 4)
    binary_folder(tmp_path, count=10)
    survey = survey_mask_folder(tmp_path)
    assert survey.counts == {"all": {"background": 4, "foreground": 4}} and len(survey.image_sizes) == 10
    assert survey.notes[0] == "mask values and counts come from an evenly spaced sample of 4 of 10 pairs"
