"""What the ``group`` leakage policy records and prints (issue 18, point 3): each group of
duplicates found before splitting with the links that joined it (exact: the same SHA-256; near:
hash bits and aligned similarity), the time taken, and console lines a person can read: counts
per split, the similarity of the grouped pairs, a few examples, no line over 200 characters."""

from __future__ import annotations

import shutil
import time

import numpy as np
import pytest
from PIL import Image

from tests.conftest import real_taleqani_root
from tests.synthetic_data import write_taleqani
from trainables.datasets.audit import DataAudit
from trainables.datasets.images import decode_rgb
from trainables.datasets.leakage import (
    LINE_WIDTH,
    MIN_SIMILARITY,
    NEAR_DISTANCE,
    format_leakage,
    number_gap,
    without_timing,
)
from trainables.datasets.taleqani_classification import read_taleqani_classification

TURNED, TURNED_COPY = "Benign/benign_0.jpg", "Benign/benign_7.jpg"
COPIED, EXACT_COPY = "Benign/benign_5.jpg", "Benign/benign_6.jpg"


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """Generated smears plus a 90° turned copy of one (near) and a byte copy of another (exact),
    read under the default policy ``group``."""
    root = write_taleqani(tmp_path_factory.mktemp("smears"), per_class=6, size=48, seed=2, class_cue=True)
    folder = root / "Original" / "Benign"
    Image.fromarray(np.ascontiguousarray(np.rot90(decode_rgb(folder / "benign_0.jpg")))).save(
        folder / "benign_7.jpg", quality=80)
    shutil.copyfile(folder / "benign_5.jpg", folder / "benign_6.jpg")
    data, audit = read_taleqani_classification(root, image_size=32, use_cache=False)
    return root, data, audit


def _split_of(data, source: str) -> str:
    return next(name for name, split in data.splits.items() if source in split.sources)


def test_each_group_records_its_split_files_and_the_links_that_joined_it(planted):
    root, data, audit = planted
    groups = {tuple(group["members"]): group for group in audit.leakage["groups"]}
    assert set(groups) == {(TURNED, TURNED_COPY), (COPIED, EXACT_COPY)}
    [near] = groups[(TURNED, TURNED_COPY)]["links"]
    assert (near["a"], near["b"], near["kind"]) == (TURNED, TURNED_COPY, "near")
    assert near["bits"] <= NEAR_DISTANCE and near["similarity"] >= MIN_SIMILARITY
    assert groups[(COPIED, EXACT_COPY)]["links"] == [{"a": COPIED, "b": EXACT_COPY, "kind": "exact", "bits": 0,
                                                     "similarity": None}]
    for members, group in groups.items():
        assert {_split_of(data, source) for source in members} == {group["split"]}
        assert group["files"] == {source: str(root / "Original" / source) for source in members}
    assert audit.leakage["grouping_seconds"] >= 0 and audit.leakage["seconds"] >= 0
    assert DataAudit.from_dict(audit.to_dict()).leakage == without_timing(audit.leakage)


def test_the_console_says_in_counts_what_the_grouping_did(planted):
    _, data, audit = planted
    text = audit.format()
    per_split = sorted(_split_of(data, members[0]) for members in ((TURNED,), (COPIED,)))
    counts = ", ".join(f"{per_split.count(split)} {split}" for split in ("train", "val", "test") if split in per_split)
    assert (f"Leakage policy group: 2 group(s) of 4 images found before splitting (the check's criterion), "
            f"each kept in one split, so 0 cross the splits.\n  Groups per split: {counts}.") in text
    assert "  Links: 1 exact copy pair(s) (same SHA-256), 1 near pair(s); aligned similarity of the near pairs" in text
    assert "of 2 grouped pairs, 1 are numbered 1 apart, 0 2-5 apart." in text
    assert (f"Leakage check over {audit.leakage['images']} images: 0 exact duplicate group(s) and 0 near-duplicate "
            f"pair(s) across splits, in ") in text
    assert max(map(len, text.splitlines())) <= LINE_WIDTH


def _many_groups(count: int) -> dict:
    """A leakage section of ``count`` groups of two long-named neighbouring files, spread over
    the splits, with similarities from 0.95 to 0.99."""
    similarity = np.linspace(0.95, 0.99, count).round(3)
    splits = ["train"] * (count // 2) + ["val"] * (count // 3)
    splits += ["test"] * (count - len(splits))
    groups = []
    for index in range(count):
        a, b = (f"Early/{'long-folder-name-' * 4}WBC-Malignant-Early-{2 * index + step:03d}.jpg" for step in (0, 1))
        groups.append({"members": [a, b], "split": splits[index], "files": {},
                       "links": [{"a": a, "b": b, "kind": "near", "bits": 2, "similarity": float(similarity[index])}]})
    return {"images": 3256, "max_distance": 4, "min_similarity": 0.95, "exact_groups": 0, "candidates": 3,
            "near_pairs": 0, "exact": [], "near": [], "files": {}, "seconds": 0.21, "grouping_seconds": 4.0,
            "policy": "group", "actions": [f"kept together in {g['split']}: {', '.join(g['members'])}" for g in groups],
            "groups": groups}


def test_many_groups_make_short_lines_with_counts_a_few_examples_and_the_similarity_spread():
    lines = format_leakage(_many_groups(15))
    assert max(map(len, lines)) <= LINE_WIDTH
    assert lines[0].endswith("across splits, in 4.2 s (grouping before the split included).")
    assert "15 group(s) of 30 images" in lines[2] and lines[3] == "  Groups per split: 7 train, 5 val, 3 test."
    assert lines[4].endswith("aligned similarity of the near pairs: median 0.970 (min 0.950, max 0.990).")
    assert "of 15 grouped pairs, 15 are numbered 1 apart" in lines[5]
    examples = lines[lines.index("  Examples, least similar first:") + 1:]
    assert len(examples) == 11 and examples[-1] == "  … 5 more in data_audit.json"
    assert examples[0].startswith("  train (2 bits, similarity 0.95): Early/") and examples[0].endswith("…")


def test_drop_and_an_older_group_record_list_counts_and_at_most_ten_examples():
    dropped = [f"dropped val/image_{i} (duplicate of train/image_{i})" for i in range(12)]
    leakage = {**_many_groups(0), "policy": "drop", "actions": dropped}
    lines = format_leakage(leakage)
    start = lines.index("Leakage policy drop: dropped 12 image(s), each a duplicate of one kept in an earlier split:")
    assert lines[start + 1:] == [f"  {action}" for action in dropped[:10]] + ["  … 2 more in data_audit.json"]
    older = {key: value for key, value in _many_groups(12).items() if key not in ("groups", "grouping_seconds")}
    lines = format_leakage(older)
    assert "Leakage policy group: 12 group(s) of duplicates, each kept in one split:" in lines
    assert max(map(len, lines)) <= LINE_WIDTH and lines[-1] == "  … 2 more in data_audit.json"
    assert format_leakage({**leakage, "policy": "warn", "actions": []})[-1] == (
        "Leakage policy warn: nothing moved or dropped.")


def test_number_gap_compares_numbered_files_of_one_folder_only():
    assert number_gap("Pro/WBC-Malignant-Pro-011.jpg", "Pro/WBC-Malignant-Pro-012.jpg") == 1
    assert number_gap("Pro/WBC-Malignant-Pro-011", "Pro/WBC-Malignant-Pro-015") == 4
    assert number_gap("Pro/WBC-Malignant-Pro-011.jpg", "Pre/WBC-Malignant-Pre-012.jpg") is None
    assert number_gap("smear_000.jpg", "mirrored_copy.jpg") is None


def test_the_real_taleqani_copy_groups_neighbouring_frames_each_in_one_split_within_a_minute():
    root = real_taleqani_root()
    started = time.perf_counter()
    data, audit = read_taleqani_classification(root, image_size=32, loading_option=1, fractions=(0.6, 0.2, 0.2))
    elapsed = time.perf_counter() - started
    leakage = audit.leakage
    near = [link for group in leakage["groups"] for link in group["links"] if link["kind"] == "near"]
    assert near and all(link["similarity"] >= MIN_SIMILARITY for link in near)
    gaps = [number_gap(link["a"], link["b"]) for link in near]
    assert sum(gap is not None and gap <= 5 for gap in gaps) >= 0.9 * len(near), gaps
    where = {source: name for name, split in data.splits.items() for source in split.sources}
    assert all({where[source] for source in group["members"]} == {group["split"]} for group in leakage["groups"])
    assert (leakage["exact_groups"], leakage["near_pairs"]) == (0, 0)
    # The whole read (decoding and hashing included) bounds the leakage work.
    assert leakage["seconds"] + leakage["grouping_seconds"] <= elapsed < 60
