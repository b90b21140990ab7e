"""Taleqani ALL segmentation: the mask rule, pairing and its audit, the split, locating, caching."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from tests.conftest import assert_same_data
from tests.synthetic_data import main as synthetic_main
from tests.synthetic_data import write_taleqani
from trainables.datasets import taleqani_segmentation
from trainables.datasets.download import DataNotFoundError, cache_dir
from trainables.datasets.images import decode_rgb, resize_square
from trainables.datasets.mask_audit import write_mask_figures
from trainables.datasets.taleqani_common import locate_taleqani, split_sizes
from trainables.datasets.taleqani_segmentation import (
    EMPTY_BELOW,
    MASK_THRESHOLD,
    cell_mask,
    prepare_taleqani_segmentation,
    read_segmentation_pairs,
    segmentation_mask,
)

PURPLE = (122, 72, 162)


@pytest.fixture(scope="module")
def forty_pairs(tmp_path_factory) -> Path:
    """40 synthetic 48x48 pairs (4 classes x 10); tests must not modify it."""
    return write_taleqani(tmp_path_factory.mktemp("taleqani40"), per_class=10, size=48, seed=1)


def _jpeg(image: np.ndarray, quality: int = 92) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _write_square_pair(root: Path, source: str, *, box=(8, 24, 24, 40), size=48) -> None:
    """A pink Original with a purple square at rows/cols ``box`` and its black Segmented."""
    y0, y1, x0, x1 = box
    original = np.full((size, size, 3), (240, 218, 224), np.uint8)
    original[y0:y1, x0:x1] = PURPLE
    segmented = np.zeros_like(original)
    segmented[y0:y1, x0:x1] = PURPLE
    for side, image in (("Original", original), ("Segmented", segmented)):
        path = root / side / f"{source}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_jpeg(image, quality=95))


def _reasons(audit) -> dict[str, str]:
    return {d.item: d.reason for d in audit.dropped}


# --- the mask rule ---------------------------------------------------------------------------

@pytest.mark.parametrize("background", [0, 255])
def test_a_pixel_is_cell_only_when_a_channel_differs_by_more_than_the_threshold(background):
    image = np.full((8, 8, 3), background, np.uint8)
    step = MASK_THRESHOLD if background == 0 else -MASK_THRESHOLD
    image[2, 2, 0] = background + step + (1 if step > 0 else -1)   # 31 away: cell
    image[5, 5, 2] = background + step                              # exactly 30 away: background
    mask = segmentation_mask(image)
    assert mask.dtype == bool and mask.shape == (8, 8)
    assert np.argwhere(mask).tolist() == [[2, 2]]


def test_the_background_is_the_border_median_so_a_cell_touching_the_edge_is_still_cell():
    image = np.zeros((10, 10, 3), np.uint8)
    image[0:4, 0:4] = PURPLE
    assert segmentation_mask(image).sum() == 16


def test_jpeg_noise_on_the_background_stays_background():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 12, (48, 48, 3)).astype(np.uint8)
    image[10:30, 15:35] = PURPLE
    mask = segmentation_mask(np.asarray(Image.open(io.BytesIO(_jpeg(image, quality=75)))))
    expected = np.zeros((48, 48), bool)
    expected[10:30, 15:35] = True
    assert mask[12:28, 17:33].all()
    assert (mask != expected).mean() < 0.02


def test_a_non_rgb_array_is_refused():
    with pytest.raises(ValueError, match="HxWx3"):
        segmentation_mask(np.zeros((4, 4), np.uint8))


def test_the_cell_mask_drops_specks_and_keeps_cells():
    image = np.zeros((224, 224, 3), np.uint8)
    cv2.circle(image, (60, 60), 12, PURPLE, -1)                 # a blast: ~450 px
    rng = np.random.default_rng(3)
    for y, x in rng.integers(100, 220, (40, 2)):                 # ringing: 40 specks of 1-4 px
        image[y:y + rng.integers(1, 3), x:x + rng.integers(1, 3)] = PURPLE
    image[150:156, 20:26] = PURPLE                               # a 36 px fleck, under 64 px
    raw, clean = segmentation_mask(image), cell_mask(image)
    assert raw[100:, 100:].sum() > 40 and clean[100:, 100:].sum() == 0
    assert clean[150:156, 20:26].sum() == 0
    disc = np.zeros((224, 224), np.uint8)
    cv2.circle(disc, (60, 60), 12, 1, -1)
    assert (clean != disc.astype(bool)).sum() <= 8               # the cell itself kept, edge aside


def _write_nearly_empty_pair(root: Path, source: str, *, size=48) -> None:
    original = np.full((size, size, 3), (240, 218, 224), np.uint8)
    original[10:20, 10:20] = PURPLE
    for side, image in (("Original", original), ("Segmented", np.zeros_like(original))):
        path = root / side / f"{source}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_jpeg(image, quality=95))


def test_near_empty_masks_are_listed_by_name_and_dropped_or_kept_by_the_setting(tmp_path):
    for name in "abcd":
        _write_square_pair(tmp_path, f"Benign/{name}")
    _write_nearly_empty_pair(tmp_path, "Pro/empty_1")
    _write_nearly_empty_pair(tmp_path, "Pro/empty_2")
    dropped, audit = read_segmentation_pairs(tmp_path, image_size=24, leakage="warn")
    assert [item["source"] for item in audit.masks["near_empty"]] == ["Pro/empty_1", "Pro/empty_2"]
    assert all(item["fraction"] < EMPTY_BELOW for item in audit.masks["near_empty"])
    assert audit.masks["policy"] == "drop" and "opening" in audit.masks["rule"]
    kept_sources = {s for split in dropped.values() for s in split.sources}
    assert kept_sources == {f"Benign/{name}" for name in "abcd"} and audit.total_kept() == 4
    assert sum(audit.images_read.values()) == 6 and not audit.dropped   # listed, not damage: --strict-data passes
    kept, kept_audit = read_segmentation_pairs(tmp_path, image_size=24, leakage="warn", empty_masks="keep")
    assert {s for split in kept.values() for s in split.sources} >= {"Pro/empty_1", "Pro/empty_2"}
    assert kept_audit.masks["policy"] == "keep" and len(kept_audit.masks["near_empty"]) == 2
    with pytest.raises(ValueError, match="empty_masks 'skip' is unknown; valid: drop, keep"):
        read_segmentation_pairs(tmp_path, image_size=24, empty_masks="skip")


def test_the_masks_section_describes_the_distribution_and_its_figures_are_written(tmp_path):
    for name in "abcdef":
        _write_square_pair(tmp_path / "data", f"Benign/{name}")
    _write_nearly_empty_pair(tmp_path / "data", "Pro/empty")
    (tmp_path / "data/Segmented/Benign/f.jpg").write_bytes(_jpeg(np.zeros((40, 48, 3), np.uint8)))
    _, audit = read_segmentation_pairs(tmp_path / "data", image_size=24, leakage="warn")
    masks = audit.masks
    assert masks["fraction_quantiles"]["p50"] == pytest.approx(256 / 48**2, abs=0.03)
    assert sum(masks["histogram"]["counts"]) == 6                  # decoded pairs; the mismatched one is not
    assert masks["mismatched"] == [{"source": "Benign/f", "reason": "size mismatch: Original 48x48, Segmented 48x40"}]
    assert masks["examples"][0]["source"] == "Pro/empty" and len(masks["examples"]) <= 8
    written = write_mask_figures(masks, tmp_path / "figures")
    assert [path.name for path in written] == ["mask_fractions.png", "mask_examples.png"]
    for path in written:
        assert decode_rgb(path).shape[0] > 100


# --- pairing and the audit -------------------------------------------------------------------

def test_unmatched_corrupt_and_mismatched_files_are_dropped_with_reasons(tmp_path):
    root = write_taleqani(tmp_path, per_class=3, size=48, classes=("Benign", "[Malignant] Pro-B"))
    (root / "Segmented/Benign/benign_0.jpg").unlink()
    shutil.copy(root / "Segmented/Benign/benign_1.jpg", root / "Segmented/Benign/stray.jpg")
    truncated = (root / "Original/[Malignant] Pro-B/malignant_pro_b_0.jpg")
    truncated.write_bytes(truncated.read_bytes()[:300])
    (root / "Segmented/Benign/benign_2.jpg").write_bytes(_jpeg(np.zeros((40, 48, 3), np.uint8)))
    (root / "Original/Benign/notes.txt").write_text("not an image")

    splits, audit = read_segmentation_pairs(root, image_size=24)
    reasons = _reasons(audit)
    assert reasons["Original/Benign/benign_0.jpg"] == "no matching Segmented/Benign/benign_0.* file"
    assert reasons["Segmented/Benign/stray.jpg"] == "no matching Original/Benign/stray.* file"
    assert reasons["[Malignant] Pro-B/malignant_pro_b_0"].startswith("corrupt image:")
    assert reasons["Benign/benign_2"] == "size mismatch: Original 48x48, Segmented 48x40"
    assert len(reasons) == 4
    assert sum(audit.images_listed.values()) == 5      # matched pairs
    assert sum(audit.images_read.values()) == 4        # both images decoded
    assert audit.total_kept() == 3 == sum(len(s) for s in splits.values())
    kept_sources = {s for split in splits.values() for s in split.sources}
    assert kept_sources == {"Benign/benign_1", "[Malignant] Pro-B/malignant_pro_b_1",
                            "[Malignant] Pro-B/malignant_pro_b_2"}
    kept_per_folder = audit.to_dict()["kept"]
    assert sum(c.get("[Malignant] Pro-B", 0) for c in kept_per_folder.values()) == 2
    assert "Dropped 4 item(s)" in audit.format()


# --- the split -------------------------------------------------------------------------------

def test_one_global_shuffle_splits_70_15_15_into_disjoint_sets(forty_pairs):
    splits, audit = read_segmentation_pairs(forty_pairs, image_size=24)
    assert [len(splits[s]) for s in ("train", "val", "test")] == [28, 6, 6]
    sources = [set(splits[s].sources) for s in ("train", "val", "test")]
    assert sum(len(s) for s in sources) == len(set.union(*sources)) == 40
    assert dict(audit.images_listed) == {"train": 28, "val": 6, "test": 6}
    train = splits["train"]
    assert train.images.shape == (28, 24, 24, 3) and train.images.dtype == np.uint8
    assert train.labels.shape == (28, 24, 24) and train.labels.dtype == np.uint8
    assert set(np.unique(train.labels)) == {0, 1}


def test_the_same_seed_gives_the_same_split_and_another_seed_a_different_one(forty_pairs):
    first, _ = read_segmentation_pairs(forty_pairs, image_size=24, seed=7)
    again, _ = read_segmentation_pairs(forty_pairs, image_size=24, seed=7)
    other, _ = read_segmentation_pairs(forty_pairs, image_size=24, seed=8)
    assert all(np.array_equal(first[s].sources, again[s].sources) for s in first)
    assert all(np.array_equal(first[s].labels, again[s].labels) for s in first)
    assert set(first["test"].sources) != set(other["test"].sources)


@pytest.mark.parametrize("count, sizes", [(3, [1, 1, 1]), (4, [2, 1, 1]), (20, [14, 3, 3]),
                                          (2, [2, 0, 0])])
def test_split_sizes_round_and_leave_no_split_empty_from_three_pairs(count, sizes):
    assert split_sizes(count) == sizes


# --- resizing and alignment ------------------------------------------------------------------

def test_masks_are_resized_nearest_from_the_full_resolution_mask(tmp_path):
    for name in "abc":   # odd edges, where bilinear and nearest resizing differ at 30 px
        _write_square_pair(tmp_path, f"Benign/{name}", box=(9, 24, 23, 40))
    full_mask = cell_mask(decode_rgb(tmp_path / "Segmented/Benign/a.jpg")).astype(np.uint8)
    original = decode_rgb(tmp_path / "Original/Benign/a.jpg")
    doubled = full_mask.repeat(2, 0).repeat(2, 1)
    nearest = cv2.resize(full_mask, (30, 30), interpolation=cv2.INTER_NEAREST)
    for size, expected in ((96, doubled), (30, nearest)):
        splits, _ = read_segmentation_pairs(tmp_path, image_size=size)
        split = next(s for s in splits.values() if "Benign/a" in s.sources)
        index = list(split.sources).index("Benign/a")
        assert np.array_equal(split.labels[index], expected)
        assert np.array_equal(split.images[index], resize_square(original, size))


def test_downsized_masks_stay_binary_and_sit_on_the_square(tmp_path):
    for name in "abc":
        _write_square_pair(tmp_path, f"Benign/{name}", box=(8, 24, 24, 40))
    # Three identical pairs: under ``warn`` they stay one per split, so every split is checked.
    splits, _ = read_segmentation_pairs(tmp_path, image_size=24, leakage="warn")
    expected = np.zeros((24, 24), np.uint8)
    expected[4:12, 12:20] = 1
    for split in splits.values():
        assert set(np.unique(split.labels)) == {0, 1}
        for mask, image in zip(split.labels, split.images):
            assert (mask != expected).mean() < 0.03
            assert image[8, 16, 2] > image[8, 16, 1] + 50          # purple inside the mask
            assert image[20, 4].min() > 200                         # pink background outside


def test_synthetic_segmented_images_are_the_originals_blasts_on_black(forty_pairs):
    name = "[Malignant] Pre-B/malignant_pre_b_3.jpg"
    original = decode_rgb(forty_pairs / "Original" / name).astype(int)
    segmented = decode_rgb(forty_pairs / "Segmented" / name).astype(int)
    mask = segmentation_mask(segmented.astype(np.uint8))
    assert 0.02 < mask.mean() < 0.5
    assert (original[mask][:, 2] > original[mask][:, 1] + 40).mean() > 0.9   # purple blasts
    assert np.abs(original[mask] - segmented[mask]).mean() < 12


def test_the_synthetic_cli_writes_the_layout(tmp_path, capsys):
    assert synthetic_main(["taleqani", str(tmp_path), "--per-class", "1", "--size", "32"]) == 0
    assert len(list((tmp_path / "Original").glob("*/*.jpg"))) == 4
    assert len(list((tmp_path / "Segmented").glob("*/*.jpg"))) == 4
    assert "--data-dir" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        synthetic_main(["taleqani", "--help"])
    assert exit_info.value.code == 0


# --- locating --------------------------------------------------------------------------------

def test_locate_accepts_the_folder_itself_a_subfolder_or_the_environment(tmp_path, monkeypatch):
    direct = tmp_path / "direct"
    for side in ("Original", "Segmented"):
        (direct / side).mkdir(parents=True)
        (tmp_path / "shared" / "leukemia" / side).mkdir(parents=True)
    (tmp_path / "shared" / "BCCD_Dataset").mkdir()
    assert locate_taleqani(str(direct)) == direct
    assert locate_taleqani(str(tmp_path / "shared")) == tmp_path / "shared" / "leukemia"
    monkeypatch.setenv("MEDSWEEP_DATA_DIR", str(tmp_path / "shared"))
    assert locate_taleqani(None) == tmp_path / "shared" / "leukemia"


def test_locate_names_every_place_looked_and_how_to_get_the_data(tmp_path, monkeypatch):
    (tmp_path / "BCCD_Dataset").mkdir()
    (tmp_path / "half" / "Original").mkdir(parents=True)
    with pytest.raises(DataNotFoundError) as error:
        locate_taleqani(str(tmp_path))
    message = str(error.value)
    for place in (tmp_path, tmp_path / "BCCD_Dataset", tmp_path / "half"):
        assert f"  {place}\n" in message
    assert "cannot be downloaded automatically" in message and "Kaggle" in message
    assert "--data-dir" in message
    monkeypatch.delenv("MEDSWEEP_DATA_DIR", raising=False)
    with pytest.raises(DataNotFoundError, match="Neither --data-dir nor MEDSWEEP_DATA_DIR"):
        locate_taleqani(None)


# --- preparing and caching -------------------------------------------------------------------

def test_the_cache_returns_equal_arrays_and_the_same_audit(forty_pairs, monkeypatch):
    data, audit = prepare_taleqani_segmentation(data_dir=str(forty_pairs), image_size=24)
    assert data.name == "taleqani_segmentation" and data.class_names == ("background", "cell")
    assert list((cache_dir() / "masks").glob("taleqani-*.npz"))

    def must_not_read(*args, **kwargs):
        raise AssertionError("the cache was not used")

    monkeypatch.setattr(taleqani_segmentation, "read_segmentation_pairs", must_not_read)
    cached, cached_audit = prepare_taleqani_segmentation(data_dir=str(forty_pairs), image_size=24)
    assert_same_data(data, cached)
    assert cached_audit.to_dict() == audit.to_dict()
