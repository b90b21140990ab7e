"""The VOC reader and the data audit, on generated trees and on the real BCCD copy."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tests.conftest import make_voc
from trainables.datasets.bccd import prepare_bccd, read_voc_patches
from trainables.datasets.voc import MissingSplitListError

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<annotation><filename>&lol2;</filename></annotation>"""


def _jpeg_bytes(seed=0) -> bytes:
    buffer = io.BytesIO()
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


def _reasons(audit) -> dict[str, str]:
    return {d.item: d.reason for d in audit.dropped}


def test_valid_boxes_become_padded_resized_patches(tmp_path):
    root = make_voc(tmp_path, {"a": {"boxes": [("RBC", 10, 10, 20, 20), ("WBC", 30, 5, 60, 40)]},
                               "b": {"split": "val", "boxes": [("Platelets", 0, 0, 5, 5)]}})
    splits, audit = read_voc_patches(root, image_size=16, padding=10)
    assert splits["train"].images.shape == (2, 16, 16, 3)
    assert list(splits["train"].labels) == [0, 1]
    assert list(splits["val"].labels) == [2]
    assert list(splits["train"].sources) == ["a", "a"]
    assert audit.dropped == []
    assert audit.total_read() == 3 and audit.total_kept() == 3


def test_zero_area_outside_and_unknown_class_boxes_are_dropped_by_name(tmp_path):
    root = make_voc(tmp_path, {"img": {"boxes": [
        ("RBC", 5, 5, 5, 5), ("RBC", 50, 40, 70, 60), ("Monocyte", 1, 1, 9, 9), ("WBC", 1, 1, 9, 9)]}})
    splits, audit = read_voc_patches(root, image_size=8, padding=2)
    reasons = _reasons(audit)
    assert reasons["img box 0 RBC (5, 5, 5, 5)"] == "zero-area box"
    assert reasons["img box 1 RBC (50, 40, 70, 60)"] == "box outside the 64x48 image"
    assert reasons["img box 2 Monocyte (1, 1, 9, 9)"].startswith("unknown class 'Monocyte'")
    assert len(splits["train"]) == 1 and audit.total_read() == 4


def test_an_inverted_box_is_reported_as_inverted_and_only_a_flat_one_as_zero_area(tmp_path):
    root = make_voc(tmp_path, {"img": {"boxes": [
        ("RBC", 20, 5, 10, 15), ("RBC", 5, 20, 15, 10), ("WBC", 20, 20, 10, 10), ("RBC", 5, 5, 5, 9),
        ("RBC", 20, 9, 10, 9)]}})
    _, audit = read_voc_patches(root, image_size=8, padding=2)
    assert [d.reason for d in audit.dropped] == [
        "inverted box (xmin > xmax)", "inverted box (ymin > ymax)", "inverted box (xmin > xmax, ymin > ymax)",
        "zero-area box", "inverted box (xmin > xmax)"]


def test_malformed_and_hostile_xml_are_skipped_and_reported(tmp_path):
    root = make_voc(tmp_path, {"broken": {"xml": "<annotation><size><width>64"},
                               "nosize": {"xml": "<annotation><object/></annotation>"},
                               "hostile": {"xml": BILLION_LAUGHS},
                               "good": {"boxes": [("RBC", 1, 1, 9, 9)]}})
    splits, audit = read_voc_patches(root, image_size=8, padding=0)
    reasons = _reasons(audit)
    assert "not valid or not safe XML" in reasons["broken"]
    assert "missing or non-numeric" in reasons["nosize"]
    assert "not valid or not safe XML" in reasons["hostile"]
    assert len(splits["train"]) == 1


def test_truncated_and_garbage_jpegs_are_reported_not_trained_on(tmp_path):
    good = _jpeg_bytes()
    root = make_voc(tmp_path, {"truncated": {"boxes": [("RBC", 1, 1, 9, 9)], "jpeg_bytes": good[: len(good) // 2]},
                               "garbage": {"boxes": [("RBC", 1, 1, 9, 9)], "jpeg_bytes": b"not a jpeg at all"},
                               "fine": {"boxes": [("WBC", 1, 1, 9, 9)], "jpeg_bytes": good}})
    splits, audit = read_voc_patches(root, image_size=8, padding=0)
    reasons = _reasons(audit)
    assert reasons["truncated"].startswith("corrupt image (1 boxes lost)")
    assert reasons["garbage"].startswith("corrupt image (1 boxes lost)")
    assert list(splits["train"].labels) == [1]
    assert audit.images_read["train"] == 1


def test_split_list_naming_missing_files_is_reported(tmp_path):
    root = make_voc(tmp_path, {"noimage": {"boxes": [("RBC", 1, 1, 9, 9)], "jpeg_bytes": None},
                               "noxml": {"xml": None}})
    _, audit = read_voc_patches(root, image_size=8, padding=0)
    reasons = _reasons(audit)
    assert reasons["noimage"] == "image noimage.jpg is missing (1 boxes lost)"
    assert reasons["noxml"] == "annotation noxml.xml is missing"


def test_missing_split_list_is_a_clear_error(tmp_path):
    root = make_voc(tmp_path, {"a": {"boxes": [("RBC", 1, 1, 9, 9)]}})
    (root / "ImageSets" / "Main" / "val.txt").unlink()
    with pytest.raises(MissingSplitListError, match=r"ImageSets/Main/val.txt"):
        read_voc_patches(root, image_size=8, padding=0)


def test_real_bccd_counts_match_the_xml(shared_data_dir):
    data, audit = prepare_bccd(data_dir=str(shared_data_dir), image_size=16)
    assert audit.total_read() == 4888
    assert audit.total_kept() == 4886
    assert sorted(d.item.split(" ")[0] for d in audit.dropped) == ["BloodImage_00338", "BloodImage_00343"]
    assert all(d.reason == "zero-area box" for d in audit.dropped)
    assert dict(audit.images_listed) == {"train": 205, "val": 87, "test": 72}
    assert dict(audit.kept["train"]) == {"RBC": 2381, "WBC": 214, "Platelets": 209}
    assert dict(audit.kept["val"]) == {"RBC": 967, "WBC": 87, "Platelets": 83}
    assert dict(audit.kept["test"]) == {"RBC": 805, "WBC": 71, "Platelets": 69}
    assert list(data.class_counts("val")) == [967, 87, 83]


def test_second_prepare_reads_the_cache_and_gives_identical_arrays(shared_data_dir, monkeypatch):
    first, _ = prepare_bccd(data_dir=str(shared_data_dir), image_size=12)
    monkeypatch.setattr("trainables.datasets.bccd.read_voc_patches",
                        lambda *a, **k: pytest.fail("cache miss: JPEGs were decoded again"))
    second, audit = prepare_bccd(data_dir=str(shared_data_dir), image_size=12)
    assert np.array_equal(first.splits["train"].images, second.splits["train"].images)
    assert audit.total_kept() == 4886
