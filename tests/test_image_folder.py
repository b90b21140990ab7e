"""The generic ``image_folder`` format: class folders (split here), split folders (fixed, a
missing split cut from train), a CSV with or without a split column; any common image format;
the audit, cache, channels, leakage policy and the header-only survey. Tiny images, no Ray."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trainables.config import ConfigError
from trainables.datasets import DATASETS, image_folder
from trainables.datasets.base import DatasetError
from trainables.datasets.image_folder import (
    ImageFolderOptions,
    decode_image,
    list_images,
    prepare_image_folder,
    read_image_folder,
    survey_image_folder,
)

SPLITS = ("train", "val", "test")
SIZE = 8           # decoded side; the files are 16 x 12 (width x height)
REAL_ORIGINAL = Path("/work/shared/data/ALL_Taleqani/Original")


def write_image(path: Path, seed: int, *, mode: str = "RGB", suffix: str = ".png") -> Path:
    """A distinct 16 x 12 noise image of ``mode`` saved as ``path`` with ``suffix``."""
    rng = np.random.default_rng(seed)
    path = path.with_suffix(suffix)
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "I;16":
        image = Image.fromarray(rng.integers(0, 4000, (12, 16), dtype=np.uint16))
    elif mode in ("L", "1"):
        image = Image.fromarray(rng.integers(0, 256, (12, 16), dtype=np.uint8)).convert(mode)
    else:
        image = Image.fromarray(rng.integers(0, 256, (12, 16, 4), dtype=np.uint8), "RGBA").convert(mode)
    image.save(path)
    return path


def write_classes(root: Path, counts: dict[str, int], *, mode: str = "RGB", seed: int = 0) -> Path:
    """``root/<class>/<class>_<i>.png`` with ``counts[class]`` images each."""
    for number, (name, count) in enumerate(counts.items()):
        for index in range(count):
            write_image(root / name / f"{name}_{index}", seed * 1000 + number * 100 + index, mode=mode)
    return root


def prepare(root: Path, **options):
    return prepare_image_folder(data_dir=None, image_size=SIZE, root=str(root), **options)


def sources(data) -> dict[str, list[str]]:
    return {split: list(data.splits[split].sources) for split in SPLITS}


# --- class folders: medsweep splits ----------------------------------------------------------

def test_class_folders_are_split_per_class_seeded_and_every_class_reaches_every_split(tmp_path):
    write_classes(tmp_path / "pets", {"dog": 10, "cat": 10, "eel": 20})
    data, audit = prepare_image_folder(data_dir=str(tmp_path), image_size=SIZE, root="pets", use_cache=False)
    assert data.name == "image_folder" and data.class_names == ("cat", "dog", "eel")
    assert {split: np.bincount(data.splits[split].labels, minlength=3).tolist() for split in SPLITS} == {
        "train": [6, 6, 14], "val": [2, 2, 3], "test": [2, 2, 3]}
    train = data.splits["train"]
    assert train.images.shape[1:] == (SIZE, SIZE, 3) and train.images.dtype == np.uint8
    assert train.labels.dtype == np.int64 and data.channels == 3 and data.mean == (0.485, 0.456, 0.406)
    assert all(source.split("/")[0] == data.class_names[label] for split in data.splits.values()
               for source, label in zip(split.sources, split.labels))
    assert sum(len(s) for s in sources(data).values()) == len({s for v in sources(data).values() for s in v}) == 40
    assert audit.images_listed == {"train": 26, "val": 7, "test": 7} and audit.total_kept() == 40
    assert audit.kept["val"] == {"cat": 2, "dog": 2, "eel": 3} and not audit.dropped
    assert audit.notes[0].startswith("Layout: class folders") and audit.leakage["policy"] == "group"


def test_the_split_and_fingerprint_are_deterministic_and_follow_the_fractions(tmp_path):
    root = write_classes(tmp_path, {"a": 10, "b": 10})
    first, _ = prepare(root, use_cache=False)
    again, _ = prepare(root, use_cache=False)
    other, _ = prepare(root, split_fractions=[0.6, 0.1, 0.3], use_cache=False)
    assert sources(first) == sources(again) and first.fingerprint == again.fingerprint
    assert other.fingerprint != first.fingerprint and len(other.splits["test"]) == 6 != len(first.splits["test"])
    moved, _ = prepare(shutil.copytree(root, tmp_path.parent / f"{tmp_path.name}-moved"))
    assert sources(moved) == sources(first) and moved.fingerprint == first.fingerprint
    listing = list_images(root)
    reseeded, _ = read_image_folder(listing, image_size=SIZE, seed=7, use_cache=False)
    assert set(reseeded.splits["test"].sources) != set(first.splits["test"].sources)


def test_a_cached_read_returns_identical_arrays_without_decoding(tmp_path, monkeypatch):
    root = write_classes(tmp_path / "data", {"a": 4, "b": 4})
    fresh, fresh_audit = prepare(root, use_cache=False)
    prepare(root)

    def must_not_decode(*args, **kwargs):
        raise AssertionError("the cache was not used")

    monkeypatch.setattr(image_folder, "decode_files", must_not_decode)
    cached, audit = prepare(root)
    assert cached.fingerprint == fresh.fingerprint and audit.to_dict() == fresh_audit.to_dict()
    for split in SPLITS:
        for field in ("images", "labels", "sources"):
            assert np.array_equal(getattr(cached.splits[split], field), getattr(fresh.splits[split], field))


# --- split folders: the data fixes the splits ------------------------------------------------

def test_split_folders_with_any_usual_spelling_fix_the_splits(tmp_path):
    write_classes(tmp_path / "Train", {"a": 5, "b": 5})
    write_classes(tmp_path / "valid", {"a": 2, "b": 2}, seed=1)
    write_classes(tmp_path / "TESTING", {"a": 3}, seed=2)
    data, audit = prepare(tmp_path, use_cache=False)
    assert data.class_names == ("a", "b")
    assert {split: sorted(data.splits[split].sources)[0] for split in SPLITS} == {
        "train": "Train/a/a_0.png", "val": "valid/a/a_0.png", "test": "TESTING/a/a_0.png"}
    assert [len(data.splits[s]) for s in SPLITS] == [10, 4, 3]
    assert audit.kept["test"] == {"a": 3, "b": 0} and audit.leakage["policy"] == "warn"
    assert "the folders fix the splits" in audit.notes[0]


def test_a_missing_test_folder_is_cut_from_train_per_class_and_the_audit_says_so(tmp_path):
    write_classes(tmp_path / "train", {"a": 10, "b": 10})
    write_classes(tmp_path / "val", {"a": 1, "b": 1}, seed=1)
    data, audit = prepare(tmp_path, use_cache=False)
    assert [len(data.splits[s]) for s in SPLITS] == [16, 2, 4]
    assert np.bincount(data.splits["test"].labels).tolist() == [2, 2]
    assert all(source.startswith("train/") for source in data.splits["test"].sources)
    assert any(note.startswith("No test images in the data: test was cut from train, 15% of each train class")
               for note in audit.notes)
    again, _ = prepare(tmp_path, use_cache=False)
    assert sources(again) == sources(data)


def test_group_is_refused_for_split_folders_and_drop_removes_the_later_copy(tmp_path):
    write_classes(tmp_path / "train", {"a": 3, "b": 3})
    write_classes(tmp_path / "test", {"a": 1, "b": 1}, seed=1)
    write_classes(tmp_path / "val", {"a": 1, "b": 1}, seed=2)
    shutil.copyfile(tmp_path / "train" / "a" / "a_0.png", tmp_path / "test" / "b" / "copy.png")
    with pytest.raises(DatasetError, match=r"leakage 'group' cannot apply to this layout \(split folders"):
        prepare(tmp_path, leakage="group")
    warned, audit = prepare(tmp_path, use_cache=False)
    assert audit.leakage["exact"] == [["test/test/b/copy.png", "train/train/a/a_0.png"]]
    dropped, _ = prepare(tmp_path, leakage="drop", use_cache=False)
    assert "test/b/copy.png" in warned.splits["test"].sources
    assert "test/b/copy.png" not in dropped.splits["test"].sources
    with pytest.raises(DatasetError, match="duplicate"):
        prepare(tmp_path, leakage="fail", use_cache=False)


def test_an_exact_copy_in_class_folders_is_grouped_into_one_split_by_default(tmp_path):
    root = write_classes(tmp_path, {"a": 6, "b": 6})
    shutil.copyfile(root / "a" / "a_0.png", root / "b" / "copy.png")
    pair = {"a/a_0.png", "b/copy.png"}
    listing = list_images(root)
    seed = next(seed for seed in range(50) if not any(
        pair <= set(split.sources)
        for split in read_image_folder(listing, image_size=SIZE, seed=seed, leakage="warn")[0].splits.values()))
    _, warned = read_image_folder(listing, image_size=SIZE, seed=seed, leakage="warn")
    assert warned.leakage["exact_groups"] == 1
    data, audit = read_image_folder(listing, image_size=SIZE, seed=seed)
    [together] = [name for name, split in data.splits.items() if pair <= set(split.sources)]
    assert audit.leakage["exact_groups"] == 0
    assert audit.leakage["actions"] == [f"kept together in {together}: a/a_0.png, b/copy.png"]


# --- CSV -------------------------------------------------------------------------------------

def test_a_csv_with_a_split_column_fixes_the_splits_and_drops_a_missing_file(tmp_path):
    for index in range(6):
        write_image(tmp_path / "images" / f"img{index}", index)
    table = tmp_path / "lists" / "labels.csv"
    table.parent.mkdir()
    table.write_text("Path,Label,Split\n" + "".join(
        f"../images/img{i}.png,{'sick' if i % 2 else 'well'},{('Training', 'dev', 'TEST')[i // 2]}\n"
        for i in range(6)) + "../images/gone.png,well,test\n")
    data, audit = prepare_image_folder(data_dir=str(tmp_path), image_size=SIZE, csv="lists/labels.csv",
                                       use_cache=False)
    assert data.class_names == ("sick", "well")
    assert sources(data) == {"train": ["images/img0.png", "images/img1.png"],
                             "val": ["images/img2.png", "images/img3.png"],
                             "test": ["images/img4.png", "images/img5.png"]}
    assert [(d.split, d.item) for d in audit.dropped] == [("test", "images/gone.png")]
    assert audit.dropped[0].reason.startswith("file not found:")
    assert audit.leakage["policy"] == "warn" and "CSV labels.csv (path,label,split)" in audit.notes[0]


def test_a_csv_without_a_split_column_is_split_here_and_its_labels_are_in_the_fingerprint(tmp_path):
    for index in range(20):
        write_image(tmp_path / f"img{index}", index)
    table = tmp_path / "labels.csv"
    table.write_text("path,label\n" + "".join(f"img{i}.png,{'ab'[i % 2]}\n" for i in range(20)))
    data, audit = prepare(tmp_path, csv="labels.csv", use_cache=False)
    assert [np.bincount(data.splits[s].labels).tolist() for s in SPLITS] == [[6, 6], [2, 2], [2, 2]]
    assert audit.leakage["policy"] == "group"
    table.write_text("path,label\n" + "".join(f"img{i}.png,{'ba'[i % 2]}\n" for i in range(20)))
    relabelled, _ = prepare(tmp_path, csv="labels.csv", use_cache=False)
    assert relabelled.fingerprint != data.fingerprint


@pytest.mark.parametrize("text,message", [
    ("file,label\nx.png,a\n", "the header row must name the columns path and label"),
    ("path,label,split\nx.png,a,holdout\ny.png,b,train\n", "row 2 has split 'holdout'"),
    ("path,label\nx.png,a\nx.png,b\n", "row 3 lists x.png again"),
    ("path,label\nx.png,a\n", "at least 2 classes, found only a"),
    ("path,label,split\nx.png,a,val\ny.png,b,test\n", "no row has split train"),
])
def test_a_bad_csv_is_an_error_naming_the_file_and_row(tmp_path, text, message):
    (tmp_path / "labels.csv").write_text(text)
    with pytest.raises(DatasetError, match=message) as caught:
        prepare(tmp_path, csv="labels.csv")
    assert str(tmp_path / "labels.csv") in str(caught.value)


# --- formats, channels, damaged and other files ----------------------------------------------

def test_common_formats_16_bit_grey_and_rgba_are_read(tmp_path):
    made = [write_image(tmp_path / "a" / "png", 1), write_image(tmp_path / "a" / "jpeg", 2, suffix=".JPG"),
            write_image(tmp_path / "a" / "bmp", 3, suffix=".bmp"),
            write_image(tmp_path / "a" / "tiff", 4, suffix=".tif"),
            write_image(tmp_path / "b" / "grey16", 5, mode="I;16", suffix=".tiff"),
            write_image(tmp_path / "b" / "rgba", 6, mode="RGBA"), write_image(tmp_path / "b" / "bits", 7, mode="1")]
    data, audit = prepare(tmp_path, use_cache=False)
    assert audit.total_kept() == len(made) and not audit.dropped and data.channels == 3
    wide, grey = decode_image(tmp_path / "b" / "grey16.tiff")
    assert grey and wide.shape == (12, 16, 3) and (wide.min(), wide.max()) == (0, 255)
    assert np.array_equal(wide[..., 0], wide[..., 2])
    rgba, grey = decode_image(tmp_path / "b" / "rgba.png")
    assert not grey and rgba.shape == (12, 16, 3)


def test_webp_is_read_where_pillow_reads_it(tmp_path):
    if ".webp" not in image_folder.IMAGE_SUFFIXES:
        pytest.skip("this Pillow has no WebP support")
    write_image(tmp_path / "a" / "one", 1, suffix=".webp")
    write_image(tmp_path / "b" / "two", 2, suffix=".WEBP")
    data, audit = prepare(tmp_path, use_cache=False)
    assert audit.total_kept() == 2 and not audit.dropped and data.splits["train"].images.shape[1:] == (SIZE, SIZE, 3)


def test_all_grey_images_give_one_channel_unless_three_are_asked_for(tmp_path):
    write_classes(tmp_path / "a", {"x": 3, "y": 3}, mode="L")
    write_image(tmp_path / "a" / "x" / "wide", 9, mode="I;16", suffix=".png")
    data, audit = prepare(tmp_path / "a", use_cache=False)
    assert data.channels == 1 and data.mean == (0.485,) and data.std == (0.229,)
    assert "Channels: 1 (7 of 7 readable images are grey)" in audit.notes
    forced, _ = prepare(tmp_path / "a", channels=3, use_cache=False)
    assert forced.channels == 3
    assert np.array_equal(forced.splits["train"].images[..., :1], data.splits["train"].images)
    write_classes(tmp_path / "c", {"x": 3, "y": 3})
    assert prepare(tmp_path / "c", use_cache=False)[0].channels == 3
    assert prepare(tmp_path / "c", channels=1, use_cache=False)[0].splits["val"].images.shape[-1] == 1


def test_a_corrupt_image_is_dropped_by_name_and_other_files_are_skipped_with_one_note(tmp_path):
    root = write_classes(tmp_path, {"a": 4, "b": 4})
    broken = root / "b" / "b_1.png"
    broken.write_bytes(broken.read_bytes()[:60])
    (root / "a" / "notes.txt").write_text("not an image")
    (root / "a" / ".hidden.png").write_bytes(b"junk")
    (root / "README.md").write_text("about")
    data, audit = prepare(root, use_cache=False)
    [dropped] = audit.dropped
    assert dropped.item == "b/b_1.png" and dropped.reason.startswith("corrupt image:")
    assert sum(audit.images_listed.values()) == 8 and audit.total_kept() == 7
    assert "b/b_1.png" not in {s for split in data.splits.values() for s in split.sources}
    assert [note for note in audit.notes if note.startswith("Skipped")] == [
        f"Skipped 2 file(s) that are not images ({', '.join(image_folder.IMAGE_SUFFIXES)}) in the class folders "
        f"and ROOT: a/notes.txt, README.md"]


# --- layouts that cannot be read -------------------------------------------------------------

def test_a_mixed_layout_is_an_error_saying_how_to_lay_it_out(tmp_path):
    write_classes(tmp_path / "train", {"a": 2, "b": 2})
    write_classes(tmp_path, {"cats": 2})
    with pytest.raises(DatasetError, match=r"mixed layout: split folders \(train\) beside other folders \(cats\)"):
        prepare(tmp_path)
    with pytest.raises(DatasetError, match="mixed layout"):
        survey_image_folder(tmp_path)


def test_one_class_is_an_error_pointing_at_the_folder_below(tmp_path):
    write_classes(tmp_path / "Original", {"a": 2, "b": 2})
    with pytest.raises(DatasetError, match=f"found only Original; if Original/ holds the class folders, set root "
                                           f"to {tmp_path / 'Original'}"):
        prepare(tmp_path)


def test_no_images_no_train_folder_and_no_folder_are_errors(tmp_path, monkeypatch):
    (tmp_path / "empty" / "a").mkdir(parents=True)
    (tmp_path / "empty" / "b").mkdir()
    with pytest.raises(DatasetError, match="no image files"):
        prepare(tmp_path / "empty")
    write_classes(tmp_path / "splits" / "val", {"a": 1, "b": 1})
    with pytest.raises(DatasetError, match="no train folder"):
        prepare(tmp_path / "splits")
    with pytest.raises(DatasetError, match="nowhere .*is not a folder"):
        prepare(tmp_path / "nowhere")
    monkeypatch.delenv("MEDSWEEP_DATA_DIR", raising=False)
    with pytest.raises(DatasetError, match="folder holding the class folders, or pass --data-dir"):
        prepare_image_folder(data_dir=None, image_size=SIZE)


# --- options and registry --------------------------------------------------------------------

@pytest.mark.parametrize("key,value,message", [
    ("channels", 2, "data setting 'channels' must be 1 (grey), 3 (colour) or null"),
    ("split_fractions", [0.5, 0.5], "'split_fractions' must be 3 positive numbers"),
    ("root", "", "data setting 'root' must be a path, or null"),
    ("leakage", "often", "leakage 'often' is unknown"),
])
def test_options_are_validated_naming_the_key(key, value, message):
    with pytest.raises(ConfigError) as caught:
        ImageFolderOptions(**{key: value})
    assert message in str(caught.value) and caught.value.key == key


def test_the_registry_entry_leaves_the_split_decision_to_the_layout():
    entry = DATASETS["image_folder"]
    assert entry.prepare is prepare_image_folder and entry.options is ImageFolderOptions
    assert not entry.fixed_splits
    assert ImageFolderOptions(root="mine", leakage="group", channels=1).keywords() == {
        "leakage": "group", "root": "mine", "csv": None, "split_fractions": [0.7, 0.15, 0.15], "channels": 1}


# --- survey ----------------------------------------------------------------------------------

def test_the_survey_of_class_folders_counts_readable_images_and_reads_sizes_from_headers(tmp_path):
    root = write_classes(tmp_path, {"a": 3, "b": 2})
    (root / "b" / "b_0.png").write_bytes(b"not a png")
    survey = survey_image_folder(root)
    assert (survey.format, survey.task, survey.fixed_splits) == ("image_folder", "classification", False)
    assert survey.counts == {"all": {"a": 3, "b": 1}} and survey.total_items == 4
    assert survey.image_sizes == ((16, 12),) * 4 and survey.channels == 3
    assert survey.options == {"root": str(root.resolve())} and survey.layout.startswith("class folders")
    assert len(survey.problems) == 1 and survey.problems[0].startswith("b/b_0.png: cannot read the image header")


def test_the_survey_of_split_folders_counts_each_split_and_sees_grey(tmp_path):
    write_classes(tmp_path / "training", {"a": 3, "b": 2}, mode="L")
    write_classes(tmp_path / "Validation", {"a": 1}, mode="L", seed=1)
    survey = survey_image_folder(tmp_path)
    assert survey.counts == {"train": {"a": 3, "b": 2}, "val": {"a": 1, "b": 0}}
    assert survey.fixed_splits and survey.channels == 1 and survey.class_names == ("a", "b")
    assert survey.notes == ("No test images: preparing the data cuts test from train, by its split fraction per "
                            "class",)


def test_the_survey_of_a_csv_names_it_in_the_options_and_a_missing_file_as_a_problem(tmp_path):
    write_image(tmp_path / "x", 1)
    write_image(tmp_path / "y", 2)
    (tmp_path / "list.csv").write_text("path,label\nx.png,a\ny.png,b\nz.png,b\n")
    survey = survey_image_folder(tmp_path, csv="list.csv")
    assert survey.options == {"root": str(tmp_path.resolve()), "csv": str((tmp_path / "list.csv").resolve())}
    assert survey.counts == {"all": {"a": 1, "b": 1}} and not survey.fixed_splits
    assert survey.problems == ("z.png: listed in the CSV but the file is missing",)


def test_the_survey_of_the_real_taleqani_originals_finds_four_classes_quickly():
    if not REAL_ORIGINAL.is_dir():
        pytest.skip(f"the real Taleqani images are not at {REAL_ORIGINAL}")
    survey = survey_image_folder(REAL_ORIGINAL)
    assert survey.class_names == ("Benign", "Early", "Pre", "Pro") and survey.total_items == 3256
    assert survey.counts == {"all": {"Benign": 504, "Early": 985, "Pre": 963, "Pro": 804}}
    assert len(survey.image_sizes) == image_folder.SURVEY_SAMPLE and survey.channels == 3 and not survey.problems
