"""The leakage check: exact and near-duplicate images across splits, in the audit."""

from __future__ import annotations

import hashlib
import io

import albumentations as A
import numpy as np
import pytest
from PIL import Image

from tests.conftest import make_voc
from trainables.datasets.audit import DataAudit
from trainables.datasets.bccd import read_voc_patches
from trainables.datasets.leakage import (
    ImagePrint,
    check_leakage,
    difference_hash,
    format_leakage,
    ring_hash,
    without_timing,
)


def smear(seed: int, size=(64, 48)) -> np.ndarray:
    """A smooth random image (a real photo's gradients, not white noise)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize(size, Image.Resampling.BICUBIC))


def jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


DECODED: dict[str, np.ndarray] = {}   # the image of each print made by ``printed``, by its SHA-256


def printed(split, source, data: bytes) -> ImagePrint:
    image = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    DECODED[hashlib.sha256(data).hexdigest()] = image
    return ImagePrint(split, source, hashlib.sha256(data).hexdigest(), difference_hash(image), ring_hash(image))


def check(prints: list[ImagePrint]) -> dict:
    """``check_leakage`` confirming candidates on the images ``printed`` decoded."""
    return check_leakage(prints, pixels=lambda item: DECODED[item.sha256])


def turned(image: np.ndarray, degrees: float) -> np.ndarray:
    """``image`` turned about its centre with black corners, as augmentation does."""
    return A.Rotate(limit=(degrees, degrees), border_mode=0, p=1.0)(image=image)["image"]


def test_exact_duplicates_across_splits_are_found_and_within_a_split_are_not():
    a, b = jpeg(smear(1)), jpeg(smear(2))
    report = check([printed("train", "a", a), printed("test", "a_copy", a),
                            printed("train", "b", b), printed("train", "b_copy", b)])
    assert report["exact_groups"] == 1 and report["exact"] == [["test/a_copy", "train/a"]]


def test_a_reencoded_brighter_copy_is_a_near_duplicate_and_distinct_images_are_not():
    original = smear(3)
    brighter = np.clip(original.astype(int) + 12, 0, 255).astype(np.uint8)
    prints = [printed("train", "x", jpeg(original, 95)), printed("val", "x_again", jpeg(brighter, 60))]
    prints += [printed("test", f"other{i}", jpeg(smear(10 + i))) for i in range(8)]
    report = check(prints)
    assert report["exact_groups"] == 0
    assert [(p["a"], p["b"]) for p in report["near"]] == [("train/x", "val/x_again")]


@pytest.mark.parametrize("change", ["horizontal flip", "vertical flip", "90° turn"])
def test_a_flipped_or_turned_copy_in_another_split_is_a_near_duplicate(change):
    original = smear(3)   # 64 x 48: a right-angle turn also changes the shape
    copy = {"horizontal flip": original[:, ::-1], "vertical flip": original[::-1],
            "90° turn": np.rot90(original)}[change]
    prints = [printed("train", "x", jpeg(original)), printed("test", "x_copy", jpeg(np.ascontiguousarray(copy), 70))]
    prints += [printed("val", f"other{i}", jpeg(smear(10 + i))) for i in range(8)]
    report = check(prints)
    assert [(p["a"], p["b"]) for p in report["near"]] == [("train/x", "test/x_copy")]
    assert report["near"][0]["similarity"] >= report["min_similarity"]
    assert "any flip or turn" in "\n".join(format_leakage(report))


@pytest.mark.parametrize("degrees", [15, -20])
def test_a_copy_turned_by_a_small_angle_is_a_candidate_the_pixels_do_not_confirm(degrees):
    original = smear(3)
    prints = [printed("train", "x", jpeg(original)), printed("test", "x_copy", jpeg(turned(original, degrees), 70))]
    report = check(prints)
    assert (report["candidates"], report["near_pairs"]) == (1, 0)
    assert "1 hash match(es) rejected" in "\n".join(format_leakage(report))


def test_a_print_without_a_ring_hash_is_compared_by_its_difference_hash_only():
    original = smear(3)
    flipped = printed("test", "x_flipped", jpeg(np.ascontiguousarray(original[:, ::-1])))
    plain = ImagePrint(flipped.split, flipped.source, flipped.sha256, flipped.dhash)
    assert check([printed("train", "x", jpeg(original)), flipped])["near_pairs"] == 1
    assert check([printed("train", "x", jpeg(original)), plain])["near_pairs"] == 0


def test_grey_images_hash_like_their_grey_rgb_copy():
    grey = np.asarray(Image.fromarray(smear(4)).convert("L"))
    rgb = np.repeat(grey[..., None], 3, axis=2)
    for hashing in (difference_hash, ring_hash):
        assert hashing(grey) == hashing(grey[..., None]) == hashing(rgb)


def test_the_bccd_reader_puts_a_planted_duplicate_into_the_audit(tmp_path):
    shared = jpeg(smear(5))
    root = make_voc(tmp_path / "BCCD", {
        "img_a": {"split": "train", "boxes": [("RBC", 2, 2, 20, 20)], "jpeg_bytes": shared},
        "img_b": {"split": "test", "boxes": [("WBC", 5, 5, 30, 30)], "jpeg_bytes": shared},
        "img_c": {"split": "val", "boxes": [("RBC", 2, 2, 20, 20)], "jpeg_bytes": jpeg(smear(6))},
    })
    _, audit = read_voc_patches(root, image_size=16, padding=2)
    assert audit.leakage["exact"] == [["test/img_b", "train/img_a"]]
    text = audit.format()
    assert "1 exact duplicate group(s)" in text and "test/img_b = train/img_a" in text
    assert DataAudit.from_dict(audit.to_dict()).leakage == without_timing(audit.leakage)
    assert "seconds" in audit.leakage and "seconds" not in audit.to_dict()["leakage"]
