"""The generic ``coco`` dataset: its layouts (one file split here, one file per split), classes
from the categories, masks from polygons and RLE or boxes only, every dropped image and
annotation named in the audit, the leakage policy, the cache and fingerprint, the survey, and
BCCD's VOC boxes exported as COCO and read back."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.coco_export import export_bccd_as_coco
from tests.conftest import REPO
from trainables.config import ConfigError
from trainables.datasets import get_dataset_entry
from trainables.datasets.base import DatasetError
from trainables.datasets.detection import CocoOptions, coco_format, prepare_coco, survey_coco
from trainables.datasets.voc import parse_annotation, read_split_list

CATEGORIES = [{"id": 7, "name": "nucleus"}, {"id": 2, "name": "cell"}]   # listed out of id order
SIZE = (32, 24)


def _write_image(path: Path, seed: int, size: tuple[int, int] = SIZE) -> None:
    """A tiny noise image (distinct per seed, so no two are duplicates)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def _annotation(number: int, image_id: int, category_id: int = 2, kind: str = "polygon", x: int = 4) -> dict:
    """An 8x8 square at (x, 4) as a polygon, an RLE mask or a bare box."""
    annotation = {"id": number, "image_id": image_id, "category_id": category_id, "iscrowd": 0}
    if kind == "polygon":
        return annotation | {"segmentation": [[x, 4, x + 7, 4, x + 7, 11, x, 11]]}
    if kind == "rle":
        from pycocotools import mask
        square = np.zeros((SIZE[1], SIZE[0]), np.uint8, order="F")
        square[4:12, x:x + 8] = 1
        rle = mask.encode(square)
        return annotation | {"segmentation": {"size": rle["size"], "counts": rle["counts"].decode()}}
    return annotation | {"bbox": [x, 4, 8, 8]}


def _write_coco(path: Path, names: list[str], *, kinds=("polygon", "polygon"), categories=CATEGORIES,
                image_dir: Path | None = None, first_seed: int = 0) -> dict:
    """A COCO file at ``path`` listing ``names`` (each with one annotation per ``kinds``, of the
    classes cell then nucleus), their images written into ``image_dir`` (default: beside it)."""
    images = [{"id": number, "file_name": name, "width": SIZE[0], "height": SIZE[1]}
              for number, name in enumerate(names, start=1)]
    annotations = [_annotation(len(names) * k + number, number, (2, 7)[k % 2], kind, x=4 + 12 * k)
                   for number in range(1, len(names) + 1) for k, kind in enumerate(kinds)]
    doc = {"images": images, "annotations": annotations, "categories": categories}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    for number, name in enumerate(names):
        _write_image((image_dir or path.parent) / name, first_seed + number)
    return doc


def _names(count: int, prefix: str = "img") -> list[str]:
    return [f"{prefix}_{number:02d}.png" for number in range(count)]


def _prepare(root: Path, **options):
    return prepare_coco(data_dir=None, root=str(root), image_size=32, use_cache=False, **options)


def _reasons(audit) -> dict[str, str]:
    return {dropped.item: dropped.reason for dropped in audit.dropped}


def _per_split(root: Path, *, counts=(4, 2, 2), categories=(CATEGORIES,) * 3, kinds=("polygon", "polygon")) -> Path:
    """``annotations/instances_<split>.json`` with the images in ``images/``."""
    seed = 0
    for split, count, listed in zip(("train", "val", "test"), counts, categories):
        _write_coco(root / "annotations" / f"instances_{split}.json", _names(count, split), kinds=kinds,
                    categories=listed, image_dir=root / "images", first_seed=seed)
        seed += count
    return root


# --- layouts ------------------------------------------------------------------------------------

def test_one_file_is_split_70_15_15_here_with_classes_in_category_id_order(tmp_path):
    _write_coco(tmp_path / "cells.json", _names(20))
    data, audit = _prepare(tmp_path)
    assert data.class_names == ("cell", "nucleus") and data.name == "coco"
    assert dict(audit.images_listed) == {"train": 14, "val": 3, "test": 3}
    sources = [set(split.sources) for split in data.splits.values()]
    assert sum(map(len, sources)) == 20 and len(set.union(*sources)) == 20
    assert audit.leakage["policy"] == "group"
    assert audit.notes[0] == "Annotations: cells.json (COCO); split 70/15/15 by one shuffle with seed 42."
    assert audit.notes[1] == "Classes from the categories, in id order: 2 cell, 7 nucleus."
    train = data.splits["train"]
    assert [label.tolist() for label in train.labels[:2]] == [[0, 1], [0, 1]]
    assert train.boxes[0].tolist() == [[4, 4, 12, 12], [16, 4, 24, 12]]


@pytest.mark.parametrize("layout", ["instances", "folders", "settings"])
def test_one_file_per_split_fixes_the_splits(tmp_path, layout):
    if layout == "instances":
        _per_split(tmp_path)
        options = {}
    else:
        for number, (split, count) in enumerate(zip(("train", "val", "test"), (4, 2, 2))):
            name = "coco.json" if layout == "folders" else f"labels_{split}.json"
            _write_coco(tmp_path / split / name, _names(count, split), first_seed=10 * number)
        options = ({} if layout == "folders" else
                   {split: f"{split}/labels_{split}.json" for split in ("train", "val", "test")})
    data, audit = _prepare(tmp_path, **options)
    assert {name: sorted(split.sources) for name, split in data.splits.items()} == {
        split: _names(count, split) for split, count in zip(("train", "val", "test"), (4, 2, 2))}
    assert audit.notes[0].endswith("; splits fixed by the files.") and audit.leakage["policy"] == "warn"


def test_image_paths_are_relative_to_the_json_file_and_stay_inside_the_root(tmp_path):
    root = tmp_path / "root"
    names = ["../pictures/a.png", "../../b.png", "c.png", "/elsewhere/d.png"]
    _write_coco(root / "annotations" / "instances.json", names, image_dir=tmp_path / "scratch" / "x" / "y")
    for name, where in zip("abcd", ("pictures", "images", "images", "annotations")):
        _write_image(root / where / f"{name}.png", seed=ord(name))
    (tmp_path / "b.png").write_bytes(b"outside the root: never read")
    data, audit = _prepare(root)
    assert sorted(source for split in data.splits.values() for source in split.sources) == sorted(names)
    assert audit.dropped == []


def test_the_root_is_taken_inside_the_data_directory_and_an_absent_one_is_named(tmp_path, monkeypatch):
    _write_coco(tmp_path / "mine" / "cells.json", _names(5))
    monkeypatch.setenv("MEDSWEEP_DATA_DIR", str(tmp_path))
    data, _ = prepare_coco(data_dir=None, root="mine", image_size=32, use_cache=False)
    assert sum(len(split) for split in data.splits.values()) == 5
    data, _ = prepare_coco(data_dir=str(tmp_path / "mine"), image_size=32, use_cache=False)
    assert sum(len(split) for split in data.splits.values()) == 5
    with pytest.raises(DatasetError, match=f"{tmp_path / 'theirs'} .*is not a folder"):
        prepare_coco(data_dir=None, root="theirs", image_size=32)
    monkeypatch.delenv("MEDSWEEP_DATA_DIR")
    with pytest.raises(DatasetError, match="set the data setting 'root'.*--data-dir"):
        prepare_coco(data_dir=None, image_size=32)


def test_a_folder_without_coco_or_with_two_is_an_error_saying_what_to_set(tmp_path):
    (tmp_path / "notes.json").write_text(json.dumps({"lr": 0.1}))
    with pytest.raises(DatasetError, match=r"holds no COCO instances JSON file.*JSON files found: notes.json"):
        _prepare(tmp_path)
    _write_coco(tmp_path / "a.json", _names(3))
    _write_coco(tmp_path / "b.json", _names(3))
    with pytest.raises(DatasetError, match="holds 2 COCO files: a.json, b.json; choose one with the data setting "
                                           "'annotations'"):
        _prepare(tmp_path)
    data, _ = _prepare(tmp_path, annotations="b.json")
    assert sum(len(split) for split in data.splits.values()) == 3
    (tmp_path / "annotations").mkdir()
    _write_coco(tmp_path / "annotations" / "instances_train.json", _names(3))
    with pytest.raises(DatasetError, match="but not instances_val.json, instances_test.json"):
        _prepare(tmp_path)


# --- masks --------------------------------------------------------------------------------------

@pytest.mark.parametrize("kinds", [("polygon", "polygon"), ("rle", "rle"), ("polygon", "rle")])
def test_polygons_and_rle_masks_give_instance_masks(tmp_path, kinds):
    _write_coco(tmp_path / "cells.json", _names(4), kinds=kinds)
    data, audit = _prepare(tmp_path)
    assert data.has_masks
    masks = data.splits["train"].masks[0]
    assert masks.shape == (2, SIZE[1], SIZE[0]) and masks.sum(axis=(1, 2)).tolist() == [64, 64]
    assert data.splits["train"].boxes[0].tolist() == [[4, 4, 12, 12], [16, 4, 24, 12]]
    assert "Masks: all 8 annotations have a polygon or RLE segmentation" in audit.notes[2]


def test_box_only_files_have_no_masks_and_mixed_ones_are_read_as_boxes_with_a_note(tmp_path):
    _write_coco(tmp_path / "boxes" / "cells.json", _names(4), kinds=("box", "box"))
    data, audit = _prepare(tmp_path / "boxes")
    assert not data.has_masks and data.splits["train"].masks is None
    assert data.splits["train"].boxes[0].tolist() == [[4, 4, 12, 12], [16, 4, 24, 12]]
    assert audit.notes[2] == "Masks: none; the 8 annotations are boxes only (Faster R-CNN)."
    _write_coco(tmp_path / "mixed" / "cells.json", _names(4), kinds=("polygon", "box"))
    data, audit = _prepare(tmp_path / "mixed")
    assert not data.has_masks and sum(len(labels) for labels in data.splits["train"].labels) == 4
    assert audit.notes[2].startswith("Masks: 4 of the 8 annotations are bare boxes without a segmentation")


# --- what is dropped, and errors ----------------------------------------------------------------

def test_missing_and_corrupt_images_and_bad_annotations_are_dropped_by_name(tmp_path):
    doc = _write_coco(tmp_path / "cells.json", _names(4), kinds=("polygon",))
    (tmp_path / "img_00.png").unlink()
    (tmp_path / "img_01.png").write_bytes(b"not a png at all")
    doc["annotations"] += [_annotation(20, 3, category_id=99), _annotation(21, 3, x=40),
                           _annotation(22, 9), _annotation(23, 4, kind="box") | {"bbox": [2, 2, 0, 5]}]
    (tmp_path / "cells.json").write_text(json.dumps(doc))
    data, audit = _prepare(tmp_path)
    reasons = _reasons(audit)
    assert reasons["img_00.png"].startswith("image file not found (looked for ")
    assert reasons["img_01.png"].startswith("corrupt image (1 annotation(s) lost)")
    assert reasons["img_02.png annotation 20"] == "category id 99 is not in the file's categories"
    assert reasons["img_02.png annotation 21"] == "outside the 32x24 image"
    assert reasons["cells.json: annotation 22"] == "image id 9 is not among the file's images"
    assert reasons["img_03.png annotation 23"] == "degenerate rectangle: width 0, height 5"
    assert sum(len(split) for split in data.splits.values()) == 2


def test_split_files_with_different_categories_are_an_error_showing_each(tmp_path):
    other = [{"id": 7, "name": "nucleus"}, {"id": 3, "name": "cell"}]
    _per_split(tmp_path, categories=(CATEGORIES, other, CATEGORIES))
    with pytest.raises(DatasetError) as error:
        _prepare(tmp_path)
    message = str(error.value)
    assert "the split files list different categories" in message
    assert "annotations/instances_val.json: 3 cell, 7 nucleus" in message
    assert "annotations/instances_train.json: 2 cell, 7 nucleus" in message


@pytest.mark.parametrize("categories, shown", [([{"id": 1, "name": "Cell"}, {"id": 2, "name": "cell "}], "name"),
                                               ([{"id": 1, "name": "a"}, {"id": 1, "name": "b"}], "id"),
                                               ([{"id": "1", "name": "a"}], "integer 'id'")])
def test_clashing_or_malformed_categories_are_an_error(tmp_path, categories, shown):
    _write_coco(tmp_path / "cells.json", _names(2), categories=categories)
    with pytest.raises(DatasetError, match=shown):
        _prepare(tmp_path)


def test_group_is_refused_for_fixed_splits_and_warn_is_their_default(tmp_path):
    _per_split(tmp_path)
    with pytest.raises(DatasetError, match="leakage policy 'group' does not apply to dataset coco"):
        _prepare(tmp_path, leakage="group")
    _, audit = _prepare(tmp_path, leakage="drop")
    assert audit.leakage["policy"] == "drop"


@pytest.mark.parametrize("options, key, message", [
    ({"train": "a.json"}, "val", "val, test are missing"),
    ({"annotations": "a.json", "train": "b.json", "val": "c.json", "test": "d.json"}, "annotations",
     "exclude each other"),
    ({"test": "../a.json"}, "test", "'test' must be a JSON file's path relative to the root folder"),
    ({"split_fractions": [0.5, 0.5]}, "split_fractions", "must be 3 positive numbers"),
    ({"root": " "}, "root", "'root' must be a folder"),
])
def test_options_are_checked_on_entry_naming_the_key(options, key, message):
    with pytest.raises(ConfigError, match=message) as error:
        CocoOptions(**options)
    assert error.value.key == key


def test_the_registered_entry_reads_coco_with_preprocessing_as_its_variant_axis():
    entry = get_dataset_entry("coco")
    assert entry.prepare is prepare_coco and entry.options is CocoOptions
    assert entry.variant_axis == "preprocessing" and not entry.fixed_splits


# --- determinism, fingerprint, cache ------------------------------------------------------------

def test_the_split_and_fingerprint_are_the_same_every_time_and_follow_the_fractions(tmp_path):
    _write_coco(tmp_path / "cells.json", _names(12))
    first, _ = _prepare(tmp_path)
    again, _ = _prepare(tmp_path)
    assert first.fingerprint == again.fingerprint
    assert [list(s.sources) for s in first.splits.values()] == [list(s.sources) for s in again.splits.values()]
    other, audit = _prepare(tmp_path, split_fractions=[0.5, 0.25, 0.25])
    assert other.fingerprint != first.fingerprint and dict(audit.images_listed) == {"train": 6, "val": 3, "test": 3}


def test_a_cache_hit_decodes_nothing_and_gives_the_same_data(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDSWEEP_CACHE_DIR", str(tmp_path / "cache"))
    _write_coco(tmp_path / "data" / "cells.json", _names(6))
    fresh, fresh_audit = prepare_coco(data_dir=str(tmp_path / "data"), image_size=32)
    monkeypatch.setattr(coco_format, "read_planned", lambda *a, **k: pytest.fail("cache miss: images decoded again"))
    cached, audit = prepare_coco(data_dir=str(tmp_path / "data"), image_size=32)
    assert cached.fingerprint == fresh.fingerprint and cached.has_masks
    assert audit.to_dict() == fresh_audit.to_dict()
    assert len(list((tmp_path / "cache" / "detection").glob("coco-*.npz"))) == 1


# --- survey -------------------------------------------------------------------------------------

def test_the_survey_counts_instances_lists_problems_and_says_which_model(tmp_path):
    doc = _write_coco(tmp_path / "cells.json", _names(3))
    del doc["images"][2]["width"]                       # its size comes from the image header then
    doc["annotations"] += [_annotation(30, 1, category_id=5), _annotation(31, 8)]
    (tmp_path / "cells.json").write_text(json.dumps(doc))
    (tmp_path / "img_01.png").unlink()
    survey = survey_coco(tmp_path)
    assert (survey.format, survey.task, survey.root) == ("coco", "detection", tmp_path)
    assert survey.class_names == ("cell", "nucleus") and not survey.fixed_splits
    assert survey.counts == {"all": {"cell": 3, "nucleus": 3}} and survey.total_items == 6
    assert survey.image_sizes == (SIZE, SIZE) and survey.channels == 3
    assert survey.options == {"root": str(tmp_path)}
    assert survey.layout.startswith("Annotations: cells.json (COCO); split 70/15/15")
    assert any(p.startswith("all: img_01.png: image file not found") for p in survey.problems)
    assert "all: img_00.png annotation 30: category id 5 is not in the file's categories" in survey.problems
    assert "cells.json: annotation 31: image id 8 is not among the file's images" in survey.problems
    assert "instance masks (Mask R-CNN)" in survey.notes[-1]


def test_the_survey_of_per_split_box_files_says_faster_rcnn_and_keeps_the_settings(tmp_path):
    for split in ("train", "val", "test"):
        _write_coco(tmp_path / f"{split}.json", _names(2, split), kinds=("box",))
    files = {split: f"{split}.json" for split in ("train", "val", "test")}
    survey = survey_coco(tmp_path, **files)
    assert survey.fixed_splits and survey.counts == {split: {"cell": 2, "nucleus": 0} for split in files}
    assert survey.options == {"root": str(tmp_path), **files} and survey.problems == ()
    assert "boxes only (Faster R-CNN)" in survey.notes[-1]


# --- BCCD as COCO -------------------------------------------------------------------------------

def test_bccd_exported_as_coco_reads_back_with_its_classes_and_boxes(tmp_path):
    bccd = Path(os.environ.get("MEDSWEEP_DATA_DIR") or REPO.parent / "shared" / "data") / "BCCD_Dataset"
    if not (bccd / "BCCD" / "ImageSets" / "Main").is_dir():
        pytest.skip(f"{bccd} is missing")
    out = export_bccd_as_coco(bccd, tmp_path / "bccd_coco", images_per_split=6)
    assert sorted(p.name for p in (out / "annotations").iterdir()) == [
        "instances_test.json", "instances_train.json", "instances_val.json"]
    data, audit = prepare_coco(data_dir=None, root=str(out), image_size=64, use_cache=False)
    assert data.class_names == ("RBC", "WBC", "Platelets") and not data.has_masks
    for split in ("train", "val", "test"):
        ids = read_split_list(bccd / "BCCD", split)[:6]
        assert sorted(data.splits[split].sources) == sorted(f"{i}.jpg" for i in ids)
        boxes = [parse_annotation(bccd / "BCCD" / "Annotations" / f"{i}.xml").boxes for i in ids]
        assert audit.annotations_read[split] == sum(map(len, boxes))
        kept = sum(len(labels) for labels in data.splits[split].labels)
        assert kept == sum(1 for image in boxes for box in image if box.shape_problem() is None)
    assert survey_coco(out).fixed_splits
