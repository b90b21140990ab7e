"""STUDIES.md §5's mistake, simulated on synthetic Taleqani smears: balancing the classes by
augmented copies *before* splitting puts copies of one image into different splits, and the
leakage check's hashes find them as candidates (the pixel confirmation only confirms copies
aligned by a right angle or a flip, so most small-angle-turned copies stay unconfirmed
candidates); splitting first and balancing only the training split leaks nothing."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.synthetic_data import TALEQANI_CLASSES, write_taleqani
from trainables.augment import build_augmentation
from trainables.datasets.images import decode_rgb
from trainables.datasets.leakage import NEAR_DISTANCE, check_leakage, image_print, near_duplicate_pairs
from trainables.datasets.taleqani_common import SPLITS, split_sizes

# Images per class, 4% of the real Taleqani classes (504, 985, 963, 804), and the balanced
# count, above the largest class as the document's 1,000 is.
CLASS_COUNTS = (20, 39, 38, 32)
BALANCED = 50
SIZE = 96
AUGMENTATION = "all_inception_nasnet"
# Measured over seeds 0-9 of this simulation: 92-100% of the cross-split copy pairs are found
# (98% of 443), none wrongly; the difference hash alone found 3%.
MIN_SHARE = 0.75


@dataclass(frozen=True)
class Item:
    """One image of the simulated dataset: its name, the Original it was made from, its file."""

    source: str
    original: str
    path: Path


@pytest.fixture(scope="module")
def originals(tmp_path_factory) -> list[Item]:
    """The unbalanced synthetic Originals: the first ``CLASS_COUNTS[c]`` images of class c."""
    root = write_taleqani(tmp_path_factory.mktemp("taleqani"), per_class=max(CLASS_COUNTS), size=SIZE, seed=5)
    items = []
    for class_name, count in zip(TALEQANI_CLASSES, CLASS_COUNTS):
        paths = sorted((root / "Original" / class_name).glob("*.jpg"), key=lambda p: int(p.stem.rsplit("_", 1)[1]))
        items += [Item(f"{class_name}/{p.stem}", f"{class_name}/{p.stem}", p) for p in paths[:count]]
    return items


def balance(items: list[Item], target: int, folder: Path, seed: int) -> list[Item]:
    """``items`` plus, per class, augmented copies of randomly chosen images of that class up to
    ``target`` images, each written as a JPEG. Seeded: the pipeline's own generators by
    ``set_random_seed``, the choice of images by a numpy generator."""
    augment = build_augmentation(AUGMENTATION)
    augment.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    balanced = list(items)
    for class_name in TALEQANI_CLASSES:
        members = [item for item in items if item.source.startswith(f"{class_name}/")]
        for number in range(target - len(members)):
            chosen = members[rng.integers(len(members))]
            copy = augment(image=decode_rgb(chosen.path))["image"]
            path = folder / f"{chosen.source.replace('/', '_')}_copy{number}.jpg"
            path.write_bytes(_jpeg(copy))
            balanced.append(Item(f"{chosen.source}~copy{number}", chosen.original, path))
    return balanced


def _jpeg(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def split(items: list[Item], seed: int) -> dict[str, list[Item]]:
    """One global shuffle, then 70/15/15 (the project's split sizes)."""
    order = np.random.default_rng(seed).permutation(len(items))
    bounds = np.cumsum([0, *split_sizes(len(items))])
    return {name: [items[i] for i in order[start:stop]]
            for name, start, stop in zip(SPLITS, bounds[:-1], bounds[1:])}


def prints_of(splits: dict[str, list[Item]]):
    return [image_print(name, item.source, item.path, decode_rgb(item.path))
            for name, items in splits.items() for item in items]


def cross_split_copy_pairs(splits: dict[str, list[Item]]) -> set[frozenset[str]]:
    """Every pair of images made from the same Original that sit in different splits."""
    placed = [(name, item) for name, items in splits.items() for item in items]
    return {frozenset((f"{a_split}/{a.source}", f"{b_split}/{b.source}"))
            for k, (a_split, a) in enumerate(placed) for b_split, b in placed[k + 1:]
            if a.original == b.original and a_split != b_split}


def found_pairs(prints) -> set[frozenset[str]]:
    return {frozenset((pair["a"], pair["b"])) for pair in near_duplicate_pairs(prints, NEAR_DISTANCE)}


def test_the_simulated_balancing_is_reproducible(originals, tmp_path):
    first = balance(originals, BALANCED, tmp_path / "first", seed=3)
    second = balance(originals, BALANCED, tmp_path / "second", seed=3)
    assert [item.source for item in first] == [item.source for item in second]
    assert all(a.path.read_bytes() == b.path.read_bytes() for a, b in zip(first, second))


def test_balancing_before_splitting_leaks_copies_and_the_check_reports_them(originals, tmp_path):
    balanced = balance(originals, BALANCED, tmp_path / "copies", seed=0)
    assert len(balanced) == BALANCED * len(TALEQANI_CLASSES)
    splits = split(balanced, seed=0)
    prints = prints_of(splits)
    truth = cross_split_copy_pairs(splits)
    found = found_pairs(prints)
    report = check_leakage(prints)
    confirmed = {frozenset((pair["a"], pair["b"])) for pair in report["near"]}
    assert report["exact_groups"] == 0 and report["candidates"] == len(found)
    assert len(truth) >= 20
    assert found <= truth, f"pairs that are not copies of one image: {sorted(map(sorted, found - truth))}"
    assert confirmed <= found
    assert len(found) / len(truth) >= MIN_SHARE, f"found {len(found)} of {len(truth)} cross-split copy pairs"


def test_splitting_first_and_balancing_only_the_training_split_leaks_nothing(originals, tmp_path):
    splits = split(originals, seed=0)
    counts = [sum(item.source.startswith(f"{c}/") for item in splits["train"]) for c in TALEQANI_CLASSES]
    splits["train"] = balance(splits["train"], max(counts) + 5, tmp_path / "copies", seed=0)
    assert len(splits["train"]) > sum(counts)
    report = check_leakage(prints_of(splits))
    assert (report["exact_groups"], report["candidates"], report["near_pairs"]) == (0, 0, 0), report
