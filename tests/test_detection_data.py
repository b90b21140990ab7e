"""Detection data: VIA and COCO polygon readers, BCCD boxes, scaling, preprocessing, flips, the
lymphoblast split and locating, the audit of bad annotations, and the cache."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from sweeps.data import prepare_sweep_data
from sweeps.registry import get_sweep
from sweeps.space import SearchSpaceError, resolve
from tests.conftest import make_voc
from tests.synthetic_data import main as synthetic_main
from tests.synthetic_data import write_lymphoblast
from trainables.datasets.detection import (
    FLIP_MODES,
    LISTING,
    AnnotationFileChoiceError,
    DetectionData,
    DetectionSplit,
    MalformedAnnotationFileError,
    bccd_boxes,
    flip_sample,
    load_detection_splits,
    lymphoblast,
    mask_box,
    polygon_mask,
    prepare_bccd_detection,
    prepare_lymphoblast,
    preprocess,
    read_bccd_detection,
    read_lymphoblast,
    save_detection_splits,
)
from trainables.datasets.detection import coco as coco_reader
from trainables.datasets.download import DataNotFoundError
from trainables.datasets.voc import parse_annotation


@pytest.fixture(scope="module")
def via_smears(tmp_path_factory) -> Path:
    """Ten synthetic 64x48 smears with VIA 2.x project annotations; tests must not modify it."""
    return write_lymphoblast(tmp_path_factory.mktemp("via"), images=10, size=64, seed=3)


@pytest.fixture(scope="module")
def coco_smears(tmp_path_factory) -> Path:
    """The same smears as ``via_smears`` with COCO annotations."""
    return write_lymphoblast(tmp_path_factory.mktemp("coco"), images=10, size=64, seed=3, form="coco")


def _assert_same_splits(a: dict[str, DetectionSplit], b: dict[str, DetectionSplit]) -> None:
    assert list(a) == list(b)
    for name in a:
        assert list(a[name].sources) == list(b[name].sources)
        for field in ("images", "boxes", "labels", "masks"):
            first, second = getattr(a[name], field), getattr(b[name], field)
            assert (first is None) == (second is None), field
            assert all(np.array_equal(x, y) for x, y in zip(first or (), second or ())), field


def _reasons(audit) -> dict[str, str]:
    return {d.item: d.reason for d in audit.dropped}


def _save_image(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, format="PNG" if path.suffix == ".png" else "JPEG", quality=95)


def _polygon(xs, ys, label="lymphoblast") -> dict:
    return {"shape_attributes": {"name": "polygon", "all_points_x": xs, "all_points_y": ys},
            "region_attributes": {"label": label}}


def _rect(x, y, width, height, label="lymphoblast") -> dict:
    return {"shape_attributes": {"name": "rect", "x": x, "y": y, "width": width, "height": height},
            "region_attributes": {"label": label}}


def _write_via(folder: Path, regions: dict[str, list[dict]]) -> Path:
    """A VIA 2.x annotation export in ``folder/annotations.json`` with the given regions per file."""
    folder.mkdir(parents=True, exist_ok=True)
    doc = {f"{name}-1": {"filename": name, "size": -1, "regions": rs, "file_attributes": {}}
           for name, rs in regions.items()}
    (folder / "annotations.json").write_text(json.dumps(doc))
    return folder


def _pink(width: int, height: int) -> np.ndarray:
    return np.full((height, width, 3), (240, 218, 224), np.uint8)


# --- geometry ----------------------------------------------------------------------------------

def test_a_polygon_mask_holds_every_pixel_it_touches_and_its_box_is_the_masks_extent():
    mask = polygon_mask([np.array([[2, 1], [6, 1], [6, 4], [2, 4]])], 8, 10)
    expected = np.zeros((8, 10), np.uint8)
    expected[1:5, 2:7] = 1
    assert mask.dtype == np.uint8 and np.array_equal(mask, expected)
    assert mask_box(mask).tolist() == [2, 1, 7, 5]


def test_boxes_and_masks_are_scaled_with_the_image_masks_drawn_at_the_scaled_size(tmp_path):
    _save_image(tmp_path / "images" / "a.png", _pink(40, 30))
    _write_via(tmp_path, {"a.png": [_polygon([8, 31, 31, 8], [6, 6, 21, 21]), _rect(10, 4, 10, 8)]})
    splits, audit = read_lymphoblast(tmp_path, image_size=20)
    train = splits["train"]
    assert train.images[0].shape == (15, 20, 3)
    # vertices map pixel centre to centre: (p + 0.5) * 0.5 - 0.5, rounded: 8→4, 31→15, 6→3, 21→10
    assert train.boxes[0].tolist() == [[4, 3, 16, 11], [5, 2, 10, 6]]
    assert train.masks[0].shape == (2, 15, 20)
    assert np.array_equal(train.masks[0][0], polygon_mask([np.array([[4, 3], [15, 3], [15, 10], [4, 10]])], 15, 20))
    assert train.masks[0][1].sum() == 5 * 4 and mask_box(train.masks[0][1]).tolist() == [5, 2, 10, 6]
    assert audit.total_kept() == 2 and audit.dropped == []


@pytest.mark.parametrize("mode", ["x", "y", "xy"])
def test_flips_move_image_boxes_and_masks_together_and_twice_is_identity(mode):
    height, width = 12, 20
    polygon = np.array([[3, 2], [9, 1], [11, 7], [5, 9]])
    mask = polygon_mask([polygon], height, width)
    image = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
    boxes = mask_box(mask)[None]
    flipped_image, flipped_boxes, flipped_masks = flip_sample(image, boxes, mask[None], mode)
    axes = tuple(axis for axis, letter in ((1, "x"), (0, "y")) if letter in mode)
    assert np.array_equal(flipped_image, np.flip(image, axis=axes))
    assert np.array_equal(flipped_masks[0], np.flip(mask, axis=axes))
    assert flipped_boxes[0].tolist() == mask_box(flipped_masks[0]).tolist()
    again = flip_sample(flipped_image, flipped_boxes, flipped_masks, mode)
    assert np.array_equal(again[0], image) and np.array_equal(again[1], boxes) and np.array_equal(again[2][0], mask)


def _mirrored(polygon: np.ndarray, mode: str, height: int, width: int) -> np.ndarray:
    """The polygon's vertices (pixel positions) flipped as ``flip_sample`` flips pixels."""
    mirrored = polygon.copy()
    if "x" in mode:
        mirrored[:, 0] = width - 1 - mirrored[:, 0]
    if "y" in mode:
        mirrored[:, 1] = height - 1 - mirrored[:, 1]
    return mirrored


@pytest.mark.parametrize("mode", ["x", "y", "xy"])
def test_a_flipped_polygon_mask_is_the_mask_of_the_flipped_polygon(mode):
    height, width = 30, 40
    l_shape = np.array([[4, 3], [20, 3], [20, 10], [11, 10], [11, 24], [4, 24]])
    mask = polygon_mask([l_shape], height, width)
    flipped = flip_sample(np.zeros((height, width, 3), np.uint8), mask_box(mask)[None], mask[None], mode)[2][0]
    assert np.array_equal(flipped, polygon_mask([_mirrored(l_shape, mode, height, width)], height, width))


@pytest.mark.parametrize("mode", ["x", "y", "xy"])
def test_with_slanted_edges_they_differ_only_by_rasterisation_on_the_outline(mode):
    """cv2.fillPoly rounds slanted edges asymmetrically, so re-drawing a mirrored polygon may
    gain or lose a pixel along the outline; flipping the mask is the exact transform."""
    height, width = 60, 80
    angles = np.linspace(0, 2 * np.pi, 20, endpoint=False)
    radii = 15 * np.random.default_rng(2).uniform(0.9, 1.1, 20)
    polygon = np.round(np.stack([40 + radii * np.cos(angles), 30 + radii * np.sin(angles)], axis=1)).astype(int)
    mask = polygon_mask([polygon], height, width)
    flipped = flip_sample(np.zeros((height, width, 3), np.uint8), mask_box(mask)[None], mask[None], mode)[2][0]
    redrawn = polygon_mask([_mirrored(polygon, mode, height, width)], height, width)
    outline = cv2.dilate(cv2.morphologyEx(redrawn, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)),
                         np.ones((3, 3), np.uint8)).astype(bool)
    differing = flipped != redrawn
    assert not (differing & ~outline).any()
    assert differing.sum() <= 0.03 * redrawn.sum()


def test_flipping_box_only_data_keeps_boxes_ordered_and_masks_none():
    image = np.zeros((10, 20, 3), np.uint8)
    _, boxes, masks = flip_sample(image, np.array([[2, 1, 5, 4]], np.float32), None, "xy")
    assert boxes.tolist() == [[15, 6, 18, 9]] and masks is None
    assert flip_sample(image, boxes, None, "none")[1].tolist() == boxes.tolist()
    with pytest.raises(ValueError, match="valid modes: none, x, y, xy"):
        flip_sample(image, boxes, None, "diagonal")
    assert FLIP_MODES == ("none", "x", "y", "xy")


# --- preprocessing -----------------------------------------------------------------------------

def test_segmented_keeps_exactly_the_dark_green_disc_of_the_raw_image():
    image = np.full((32, 32, 3), (200, 230, 210), np.uint8)
    yy, xx = np.mgrid[:32, :32]
    disc = (yy - 14) ** 2 + (xx - 17) ** 2 <= 64
    image[disc] = (150, 40, 170)
    expected = np.where(disc[..., None], image, 0)
    assert np.array_equal(preprocess(image, "segmented"), expected)
    assert preprocess(image, "raw") is image


def test_an_unknown_preprocessing_variant_lists_the_valid_ones():
    with pytest.raises(ValueError, match="valid variants: raw, segmented"):
        preprocess(np.zeros((4, 4, 3), np.uint8), "equalised")


def test_the_bilateral_filter_smooths_a_noisy_image_first():
    noisy = np.random.default_rng(1).normal(128, 30, (32, 32, 3)).clip(0, 255).astype(np.uint8)
    filtered = preprocess(noisy, "raw", bilateral=True)
    assert not np.array_equal(filtered, noisy)
    assert cv2.Laplacian(filtered, cv2.CV_64F).std() < cv2.Laplacian(noisy, cv2.CV_64F).std()


# --- VIA and COCO readers ----------------------------------------------------------------------

def test_via_project_export_and_1x_dict_regions_and_coco_give_the_same_targets(via_smears, coco_smears, tmp_path):
    project, _ = read_lymphoblast(via_smears, image_size=64)
    coco, coco_audit = read_lymphoblast(coco_smears, image_size=64)
    _assert_same_splits(project, coco)
    doc = json.loads((via_smears / "annotations.json").read_text())["_via_img_metadata"]
    export = shutil.copytree(via_smears, tmp_path / "export")
    (export / "annotations.json").write_text(json.dumps(doc))
    _assert_same_splits(read_lymphoblast(export, image_size=64)[0], project)
    old = shutil.copytree(via_smears, tmp_path / "old")
    (old / "annotations.json").unlink()
    for entry in doc.values():
        entry["regions"] = {str(i): region for i, region in enumerate(entry["regions"])}
    (old / "via_region_data.json").write_text(json.dumps(doc))
    _assert_same_splits(read_lymphoblast(old, image_size=64)[0], project)
    assert coco_audit.dropped == [] and coco_audit.total_kept() == coco_audit.total_read() > 10


def test_the_two_synthetic_cell_kinds_look_different_where_their_masks_are(via_smears):
    splits, _ = read_lymphoblast(via_smears, image_size=64)
    brightness = {0: [], 1: []}
    for split in splits.values():
        for image, labels, masks in zip(split.images, split.labels, split.masks):
            for label, mask in zip(labels, masks):
                brightness[int(label)].append(image[mask.astype(bool)].mean())
    assert brightness[0] and brightness[1]
    assert max(brightness[0]) < min(brightness[1])


def test_indonesian_labels_are_mapped_and_the_mapping_is_in_the_audit_notes(via_smears):
    _, audit = read_lymphoblast(via_smears, image_size=64)
    notes = "\n".join(audit.notes)
    assert "'limfoblas' → lymphoblast" in notes and "'non-limfoblas' → non-lymphoblast" in notes
    assert "VIA 2.x project, class attribute 'label'" in notes


def test_bad_annotations_and_images_are_each_dropped_with_their_reason(tmp_path):
    _save_image(tmp_path / "a.jpg", _pink(32, 24))
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    square = ([4, 12, 12, 4], [4, 4, 12, 12])
    _write_via(tmp_path, {
        "a.jpg": [_polygon(*square), _polygon([1, 5, 9], [1, 5, 9]), _polygon([1, 5, 1], [1, 5, 1]),
                  _polygon([40, 50, 50, 40], [2, 2, 8, 8]), _polygon([28, 36, 36, 28], [10, 10, 16, 16]),
                  _polygon(*square, label="monocyte"), _rect(3, 3, 0, 5),
                  {"shape_attributes": {"name": "circle", "cx": 5, "cy": 5, "r": 3},
                   "region_attributes": {"label": "lymphoblast"}},
                  _polygon([1, 2, "a"], [1, 2, 3]), {"shape_attributes": _polygon(*square)["shape_attributes"],
                                                     "region_attributes": {}}],
        "missing.jpg": [_polygon(*square)], "corrupt.jpg": [_polygon(*square)]})
    splits, audit = read_lymphoblast(tmp_path, image_size=32)
    reasons = _reasons(audit)
    assert "zero area" in reasons["a.jpg region 1"]
    assert "2 distinct point(s)" in reasons["a.jpg region 2"]
    assert reasons["a.jpg region 3"] == "outside the 32x24 image"
    assert reasons["a.jpg region 5"].startswith("unknown class 'monocyte' (valid: lymphoblast, non-lymphoblast;")
    assert "limfoblas" in reasons["a.jpg region 5"]
    assert "degenerate rectangle" in reasons["a.jpg region 6"]
    assert "'circle' is not supported" in reasons["a.jpg region 7"]
    assert "malformed polygon" in reasons["a.jpg region 8"]
    assert "holds 0 labels" in reasons["a.jpg region 9"]
    assert reasons["missing.jpg"].startswith("image file not found") and "images/missing.jpg" in reasons["missing.jpg"]
    assert reasons["corrupt.jpg"].startswith("corrupt image (1 annotation(s) lost)")
    assert len(audit.dropped) == 10 and audit.total_read() == 12 and audit.total_kept() == 2
    kept = next(split for split in splits.values() if len(split))
    assert kept.boxes[0].tolist() == [[4, 4, 13, 13], [28, 10, 32, 17]]
    assert "1 annotation(s) crossed the image edge and were clipped to it." in audit.notes


def test_a_file_that_is_not_json_is_an_error_naming_the_file(tmp_path):
    (tmp_path / "annotations.json").write_text('{"a.jpg": {"filename": "a.jpg", ')
    with pytest.raises(MalformedAnnotationFileError, match=r"annotations\.json: not valid JSON .*line 1"):
        read_lymphoblast(tmp_path, image_size=32)


@pytest.mark.parametrize("doc, key", [
    ({"a.jpg1": {"filename": "a.jpg", "size": 1}}, "entry 'a.jpg1' key 'regions'"),
    ({"_via_img_metadata": {"a.jpg1": {"size": 1, "regions": []}}}, "entry 'a.jpg1' has no 'filename'"),
    ({"images": {}, "annotations": [], "categories": []}, "key 'images'"),
    ({"images": [{"file_name": "a.jpg"}], "annotations": [], "categories": []}, r"images\[0\]"),
    ([1, 2], "neither VIA nor COCO"),
])
def test_a_file_of_the_wrong_shape_is_an_error_naming_the_file_and_key(tmp_path, doc, key):
    (tmp_path / "annotations.json").write_text(json.dumps(doc))
    with pytest.raises(MalformedAnnotationFileError, match=rf"{tmp_path}/annotations\.json: .*{key}"):
        read_lymphoblast(tmp_path, image_size=32)


def test_the_class_attribute_is_the_one_naming_classes_and_ambiguity_is_an_error(tmp_path):
    _save_image(tmp_path / "a.jpg", _pink(32, 24))
    region = _polygon([4, 12, 12, 4], [4, 4, 12, 12], label="limfoblas")
    region["region_attributes"]["quality"] = "sharp"
    _write_via(tmp_path, {"a.jpg": [region]})
    splits, audit = read_lymphoblast(tmp_path, image_size=32)
    assert audit.total_kept() == 1 and splits["train"].labels[0].tolist() == [0]
    region["region_attributes"]["second_opinion"] = "non-limfoblas"
    _write_via(tmp_path, {"a.jpg": [region]})
    with pytest.raises(MalformedAnnotationFileError, match="several attributes .*class_attribute="):
        read_lymphoblast(tmp_path, image_size=32)
    splits, _ = read_lymphoblast(tmp_path, image_size=32, class_attribute="second_opinion")
    assert splits["train"].labels[0].tolist() == [1]


def _coco_with(annotations: list[dict], *, width=32, height=24) -> dict:
    return {"images": [{"id": 1, "file_name": "a.jpg", "width": width, "height": height}],
            "annotations": annotations,
            "categories": [{"id": 1, "name": "Lymphoblast"}, {"id": 2, "name": "other"}]}


def test_coco_problems_are_dropped_and_a_bare_bbox_is_a_box(tmp_path, monkeypatch):
    _save_image(tmp_path / "a.jpg", _pink(32, 24))
    rle = {"size": [24, 32], "counts": [100, 20, 648]}
    annotations = [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 3, 6, 5]},
        {"id": 2, "image_id": 1, "category_id": 1, "segmentation": rle},
        {"id": 3, "image_id": 1, "category_id": 1, "segmentation": [[1, 1, 5, 5]]},
        {"id": 4, "image_id": 1, "category_id": 2, "bbox": [2, 3, 6, 5]},
        {"id": 5, "image_id": 1, "category_id": 9, "bbox": [2, 3, 6, 5]},
        {"id": 6, "image_id": 1, "category_id": 1, "bbox": [2, 3, 6, 5], "iscrowd": 1},
        {"id": 7, "image_id": 8, "category_id": 1, "bbox": [2, 3, 6, 5]},
    ]
    (tmp_path / "annotations.json").write_text(json.dumps(_coco_with(annotations)))
    monkeypatch.setattr(coco_reader, "rle_module", lambda: None)
    splits, audit = read_lymphoblast(tmp_path, image_size=32)
    reasons = _reasons(audit)
    assert "pycocotools" in reasons["a.jpg annotation 2"]
    assert "part 0: degenerate polygon" in reasons["a.jpg annotation 3"]
    assert reasons["a.jpg annotation 4"].startswith("unknown class 'other'")
    assert "category id 9" in reasons["a.jpg annotation 5"]
    assert "crowd" in reasons["a.jpg annotation 6"]
    assert reasons["annotations.json: annotation 7"] == "image id 8 is not among the file's images"
    assert {d.split for d in audit.dropped if d.item.endswith("annotation 7")} == {LISTING}
    assert splits["train"].boxes[0].tolist() == [[2, 3, 8, 8]] and splits["train"].masks[0].sum() == 30


def test_a_negative_width_or_height_is_an_inverted_rectangle_a_zero_one_degenerate(tmp_path):
    _save_image(tmp_path / "a.jpg", _pink(32, 24))
    annotations = [{"id": number, "image_id": 1, "category_id": 1, "bbox": bbox}
                   for number, bbox in enumerate([[8, 3, -6, 5], [2, 8, 6, -5], [2, 3, 0, 5]], start=1)]
    (tmp_path / "annotations.json").write_text(json.dumps(_coco_with(annotations)))
    _, audit = read_lymphoblast(tmp_path, image_size=32)
    reasons = _reasons(audit)
    assert reasons["a.jpg annotation 1"].startswith("inverted rectangle (negative width or height): width -6")
    assert reasons["a.jpg annotation 2"].startswith("inverted rectangle (negative width or height): width 6, height -5")
    assert reasons["a.jpg annotation 3"] == "degenerate rectangle: width 0, height 5"


def test_an_image_whose_size_differs_from_the_coco_file_is_dropped(tmp_path):
    _save_image(tmp_path / "a.jpg", _pink(32, 24))
    annotation = {"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 3, 6, 5]}
    (tmp_path / "annotations.json").write_text(json.dumps(_coco_with([annotation], width=64, height=48)))
    _, audit = read_lymphoblast(tmp_path, image_size=32)
    assert _reasons(audit)["a.jpg"] == "image is 32x24 but the annotation file says 64x48 (1 annotation(s) lost)"


def test_coco_rle_masks_are_decoded_when_pycocotools_is_installed(tmp_path):
    pytest.importorskip("pycocotools")
    _save_image(tmp_path / "a.jpg", _pink(32, 24))
    rle = {"size": [24, 32], "counts": [100, 20, 648]}   # column-major: column 4, rows 4..23
    (tmp_path / "annotations.json").write_text(
        json.dumps(_coco_with([{"id": 1, "image_id": 1, "category_id": 1, "segmentation": rle}])))
    splits, _ = read_lymphoblast(tmp_path, image_size=32)
    assert splits["train"].boxes[0].tolist() == [[4, 4, 5, 24]]


# --- the lymphoblast layout, split and locating ------------------------------------------------

def test_the_split_is_70_20_10_disjoint_and_the_same_every_time(tmp_path):
    root = write_lymphoblast(tmp_path, images=20, size=48, seed=5)
    splits, audit = read_lymphoblast(root, image_size=48)
    assert dict(audit.images_listed) == {"train": 14, "val": 4, "test": 2}
    sources = [set(split.sources) for split in splits.values()]
    assert sum(len(s) for s in sources) == 20 and len(set.union(*sources)) == 20
    again, _ = read_lymphoblast(root, image_size=48)
    assert [list(s.sources) for s in again.values()] == [list(s.sources) for s in splits.values()]


def test_train_val_test_folders_with_their_own_files_are_the_splits(tmp_path):
    for number, split in enumerate(("train", "val", "test")):
        write_lymphoblast(tmp_path / split, images=3 - number, size=48, seed=number, form=("via", "coco")[number % 2])
    splits, audit = read_lymphoblast(tmp_path, image_size=48)
    assert {name: len(split) for name, split in splits.items()} == {"train": 3, "val": 2, "test": 1}
    assert "train/annotations.json (VIA 2.x project" in audit.notes[0]
    assert "val/annotations.json (COCO)" in audit.notes[0]


def test_missing_data_says_it_is_private_where_it_looked_and_how_to_generate_some(tmp_path, monkeypatch):
    monkeypatch.delenv("MEDSWEEP_DATA_DIR", raising=False)
    with pytest.raises(DataNotFoundError) as error:
        prepare_lymphoblast(data_dir=str(tmp_path), image_size=32)
    message = str(error.value)
    assert "private" in message and "Sardjito" in message and str(tmp_path / "lymphoblast") in message
    assert "python -m tests.synthetic_data lymphoblast OUT" in message


def test_the_cli_writes_data_that_prepare_finds_in_a_lymphoblast_folder(tmp_path, capsys):
    assert synthetic_main(["lymphoblast", str(tmp_path / "lymphoblast"), "--images", "4", "--size", "48",
                           "--form", "coco"]) == 0
    assert "Wrote 4 lymphoblast smears (COCO annotations)" in capsys.readouterr().out
    data, audit = prepare_lymphoblast(data_dir=str(tmp_path), image_size=48, use_cache=False)
    assert sum(len(split) for split in data.splits.values()) == 4 and data.has_masks
    with pytest.raises(ValueError, match="form must be one of via, coco"):
        write_lymphoblast(tmp_path / "x", form="yaml")


# --- finding the annotation file ---------------------------------------------------------------

def _smears_as(root: Path, name: str, *, form: str = "via", seed: int = 0) -> Path:
    """Four synthetic smears whose annotation file is ``root/name`` instead of annotations.json."""
    write_lymphoblast(root, images=4, size=48, seed=seed, form=form)
    (root / "annotations.json").rename(root / name)
    return root


def _annotation_note(audit) -> str:
    return next(note for note in audit.notes if note.startswith("Annotations: "))


@pytest.mark.parametrize("name, form, shown", [("via_project.json", "via", "via_project.json (VIA 2.x project"),
                                               ("coco.json", "coco", "coco.json (COCO)")])
def test_a_folder_whose_one_via_or_coco_json_has_another_name_is_found(tmp_path, name, form, shown):
    _smears_as(tmp_path, name, form=form)
    data, audit = prepare_lymphoblast(data_dir=str(tmp_path), image_size=48, use_cache=False)
    assert sum(len(split) for split in data.splits.values()) == 4
    assert _annotation_note(audit).startswith(f"Annotations: {shown}")


def test_json_files_that_are_neither_via_nor_coco_are_not_candidates(tmp_path):
    _smears_as(tmp_path, "via_project.json")
    (tmp_path / "settings.json").write_text(json.dumps({"lr": 0.001, "images": 4}))
    (tmp_path / "ids.json").write_text(json.dumps(["smear_000.jpg"]))
    (tmp_path / "broken.json").write_text("{not json")
    _, audit = prepare_lymphoblast(data_dir=str(tmp_path), image_size=48, use_cache=False)
    assert _annotation_note(audit).startswith("Annotations: via_project.json (VIA 2.x project")


def test_two_candidates_are_an_error_listing_both_and_annotations_picks_one(tmp_path):
    _smears_as(tmp_path, "via_project.json")
    _smears_as(tmp_path / "other", "coco.json", form="coco")
    (tmp_path / "coco.json").write_text((tmp_path / "other" / "coco.json").read_text())
    with pytest.raises(AnnotationFileChoiceError) as error:
        prepare_lymphoblast(data_dir=str(tmp_path), image_size=48, use_cache=False)
    message = str(error.value)
    assert f"{tmp_path} holds 2 VIA or COCO annotation files: coco.json, via_project.json" in message
    assert "choose one with --set annotations=FILE" in message
    for name, shown in (("via_project.json", "VIA 2.x project"), ("coco.json", "COCO")):
        data, audit = prepare_lymphoblast(data_dir=str(tmp_path), image_size=48, annotations=name, use_cache=False)
        assert sum(len(split) for split in data.splits.values()) == 4
        assert _annotation_note(audit).startswith(f"Annotations: {name} ({shown}")


def test_the_fixed_names_come_first_when_present(tmp_path):
    write_lymphoblast(tmp_path, images=4, size=48, seed=1)
    _smears_as(tmp_path / "other", "coco.json", form="coco")
    (tmp_path / "coco.json").write_text((tmp_path / "other" / "coco.json").read_text())
    _, audit = prepare_lymphoblast(data_dir=str(tmp_path), image_size=48, use_cache=False)
    assert _annotation_note(audit).startswith("Annotations: annotations.json (VIA 2.x project")


def test_a_missing_named_annotation_file_is_an_error_naming_it_and_the_json_files_found(tmp_path, monkeypatch):
    monkeypatch.delenv("MEDSWEEP_DATA_DIR", raising=False)
    _smears_as(tmp_path, "via_project.json")
    (tmp_path / "images" / "notes.json").write_text("{}")
    with pytest.raises(AnnotationFileChoiceError) as error:
        prepare_lymphoblast(data_dir=str(tmp_path), image_size=48, annotations="via.json", use_cache=False)
    message = str(error.value)
    assert "--set annotations=via.json: no such file in" in message
    assert f"{tmp_path}: images/notes.json, via_project.json" in message
    with pytest.raises(AnnotationFileChoiceError, match=r"relative to the data folder .*no absolute path, no \.\."):
        read_lymphoblast(tmp_path, image_size=48, annotations="../via_project.json")


def test_the_annotations_data_setting_reaches_the_lymphoblast_reader(tmp_path):
    _smears_as(tmp_path / "lymphoblast", "project_a.json", seed=1)
    _smears_as(tmp_path / "b", "project_b.json", seed=2)
    (tmp_path / "lymphoblast" / "project_b.json").write_text((tmp_path / "b" / "project_b.json").read_text())
    resolved = resolve(get_sweep("lymphoblast_maskrcnn"), profile="cpu", smoke=True,
                       overrides=("preprocessing=raw", "annotations=project_b.json"))
    audit = prepare_sweep_data(resolved, data_dir=str(tmp_path)).audit
    assert _annotation_note(audit).startswith("Annotations: project_b.json (VIA 2.x project")


def test_the_annotations_setting_is_refused_for_a_dataset_that_reads_no_annotation_file():
    with pytest.raises(SearchSpaceError, match="--set annotations=a.json: data setting 'annotations' does not apply "
                                               "to dataset bccd"):
        resolve(get_sweep("bccd_imbalance"), profile="cpu", smoke=True, overrides=("annotations=a.json",))


# --- prepare, cache, selection -----------------------------------------------------------------

def test_a_cache_hit_gives_what_a_fresh_read_gives(via_smears, tmp_path, monkeypatch):
    monkeypatch.setenv("MEDSWEEP_CACHE_DIR", str(tmp_path))
    fresh, fresh_audit = prepare_lymphoblast(data_dir=str(via_smears), image_size=48, use_cache=False)
    first, _ = prepare_lymphoblast(data_dir=str(via_smears), image_size=48)
    monkeypatch.setattr(lymphoblast, "read_planned", lambda *a, **k: pytest.fail("cache miss: images decoded again"))
    cached, audit = prepare_lymphoblast(data_dir=str(via_smears), image_size=48)
    assert cached.fingerprint == fresh.fingerprint == first.fingerprint
    _assert_same_splits(cached.splits, fresh.splits)
    assert audit.to_dict() == fresh_audit.to_dict()
    assert len(list((tmp_path / "detection").glob("lymphoblast-*.npz"))) == 1


def test_the_segmented_variant_has_its_own_fingerprint_and_the_same_targets(via_smears):
    raw, _ = prepare_lymphoblast(data_dir=str(via_smears), image_size=48)
    segmented, audit = prepare_lymphoblast(data_dir=str(via_smears), image_size=48, preprocessing="segmented")
    assert raw.fingerprint != segmented.fingerprint
    assert not np.array_equal(raw.splits["train"].images[0], segmented.splits["train"].images[0])
    _assert_same_splits({"t": replace(raw.splits["train"], images=segmented.splits["train"].images)},
                        {"t": segmented.splits["train"]})
    assert "preprocessing: segmented" in "\n".join(audit.notes)


def test_the_cache_layout_round_trips_box_only_and_empty_splits(tmp_path):
    rng = np.random.default_rng(0)
    images = (rng.integers(0, 255, (5, 7, 3), dtype=np.uint8), rng.integers(0, 255, (3, 4, 3), dtype=np.uint8))
    boxes = (np.array([[0, 0, 2, 2], [1, 1, 3, 4]], np.float32), np.zeros((0, 4), np.float32))
    labels = (np.array([1, 0]), np.zeros(0, np.int64))
    with_masks = DetectionSplit(images, boxes, labels, (rng.integers(0, 2, (2, 5, 7), dtype=np.uint8),
                                                        np.zeros((0, 3, 4), np.uint8)), np.array(["a", "b"]))
    splits = {"train": with_masks, "val": replace(with_masks, masks=None),
              "test": DetectionSplit((), (), (), (), np.array([], dtype=str))}
    save_detection_splits(tmp_path / "c.npz", splits, {"note": 1})
    loaded, meta = load_detection_splits(tmp_path / "c.npz")
    _assert_same_splits(loaded, splits)
    assert meta["note"] == 1 and loaded["val"].masks is None and len(loaded["test"]) == 0
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    assert load_detection_splits(tmp_path / "bad.npz") is None


def test_only_subset_sources_and_class_counts(via_smears):
    data, _ = prepare_lymphoblast(data_dir=str(via_smears), image_size=48)
    assert isinstance(data, DetectionData) and data.num_classes == 2 and data.has_masks
    counts = sum(data.class_counts(name) for name in data.splits)
    assert counts.sum() == sum(len(labels) for split in data.splits.values() for labels in split.labels)
    assert list(data.only("train", "val").splits) == ["train", "val"]
    with pytest.raises(KeyError, match=r"unknown split\(s\) \['dev'\]; this dataset has"):
        data.only("dev")
    small = data.subset_sources(2, seed=0)
    assert [len(split) for split in small.splits.values()] == [2, 2, 1]
    train = small.splits["train"]
    original = list(data.splits["train"].sources)
    for source, image, masks in zip(train.sources, train.images, train.masks):
        row = original.index(source)
        assert image is data.splits["train"].images[row] and masks is data.splits["train"].masks[row]
    assert data.splits["train"].take(np.array([True] + [False] * 6)).sources.tolist() == original[:1]


# --- BCCD boxes --------------------------------------------------------------------------------

def test_inverted_voc_boxes_are_reported_as_inverted_not_zero_area(tmp_path):
    root = make_voc(tmp_path, {"img": {"boxes": [("RBC", 20, 5, 10, 15), ("WBC", 5, 20, 15, 10),
                                                 ("RBC", 5, 5, 5, 9), ("Platelets", 1, 1, 9, 9)]}})
    splits, audit = read_bccd_detection(root, image_size=32)
    assert [d.reason for d in audit.dropped] == ["inverted box (xmin > xmax)", "inverted box (ymin > ymax)",
                                                 "zero-area box"]
    assert splits["train"].labels[0].tolist() == [2]


def test_real_bccd_boxes_per_class_and_the_two_zero_area_drops(shared_data_dir, monkeypatch):
    data, audit = prepare_bccd_detection(data_dir=str(shared_data_dir), image_size=64)
    assert data.name == "bccd_detection" and data.class_names == ("RBC", "WBC", "Platelets")
    assert not data.has_masks and data.splits["train"].masks is None
    assert dict(audit.images_listed) == {"train": 205, "val": 87, "test": 72}
    assert dict(audit.kept["train"]) == {"RBC": 2381, "WBC": 214, "Platelets": 209}
    assert list(data.class_counts("val")) == [967, 87, 83] and list(data.class_counts("test")) == [805, 71, 69]
    assert audit.total_read() == 4888 and audit.total_kept() == 4886
    assert sorted(d.item.split(" ")[0] for d in audit.dropped) == ["BloodImage_00338", "BloodImage_00343"]
    assert {d.reason for d in audit.dropped} == {"zero-area box"}
    train = data.splits["train"]
    assert train.images[0].shape == (48, 64, 3)
    xml = parse_annotation(shared_data_dir / "BCCD_Dataset" / "BCCD" / "Annotations" / f"{train.sources[0]}.xml")
    expected = np.array([b.as_tuple() for b in xml.boxes if b.area], np.float32) * 0.1
    assert np.allclose(train.boxes[0], expected)
    monkeypatch.setattr(bccd_boxes, "read_bccd_detection", lambda *a, **k: pytest.fail("cache miss"))
    cached, cached_audit = prepare_bccd_detection(data_dir=str(shared_data_dir), image_size=64)
    _assert_same_splits(cached.splits, data.splits)
    assert cached_audit.total_kept() == 4886
