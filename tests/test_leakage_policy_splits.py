"""The ``leakage`` policy where medsweep makes the split itself, beyond Taleqani classification:
Taleqani segmentation pairs and the lymphoblast detection images. A planted flipped or turned
copy that the plain seeded split separates is kept in one split (``group``, the default),
reported (``warn``), dropped from the later split (``drop``) or refused (``fail``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sweeps.data import prepare_sweep_data
from sweeps.registry import get_sweep
from sweeps.space import resolve
from tests.synthetic_data import write_lymphoblast, write_taleqani
from trainables.datasets.base import DatasetError
from trainables.datasets.detection import prepare_lymphoblast, read_lymphoblast
from trainables.datasets.images import decode_rgb
from trainables.datasets.leakage_policy import SPLIT_ORDER
from trainables.datasets.taleqani_common import SPLIT_FRACTIONS, split_sizes
from trainables.datasets.taleqani_segmentation import read_segmentation_pairs

SEGMENTATION_CLASS = "Benign"


@dataclass(frozen=True)
class Planted:
    """Data holding ``original`` and its planted ``copy`` (each with ``instances`` counted
    objects), read by ``read(seed, leakage)``; ``seed`` is one whose plain split separates them."""

    read: Callable[[int, str | None], tuple[dict, object]]
    original: str
    copy: str
    instances: int
    seed: int


def _split_of(splits: dict, source: str) -> str | None:
    return next((name for name, split in splits.items() if source in split.sources), None)


def _separating_seed(read, original: str, copy: str) -> int:
    for seed in range(50):
        splits, _ = read(seed, "warn")
        if _split_of(splits, original) != _split_of(splits, copy):
            return seed
    raise AssertionError(f"no seed below 50 splits {original} and {copy} apart")


def _save(path: Path, image: np.ndarray) -> None:
    Image.fromarray(np.ascontiguousarray(image)).save(path, quality=90)


@pytest.fixture(scope="module")
def segmentation(tmp_path_factory) -> Planted:
    """Generated pairs plus a pair whose Original and Segmented are a 90° turn of another's."""
    root = write_taleqani(tmp_path_factory.mktemp("pairs"), per_class=6, size=48, seed=2,
                          classes=(SEGMENTATION_CLASS, "Early", "Pre", "Pro"))
    for side in ("Original", "Segmented"):
        folder = root / side / SEGMENTATION_CLASS
        _save(folder / "turned_copy.jpg", np.rot90(decode_rgb(folder / "benign_0.jpg")))
    original, copy = f"{SEGMENTATION_CLASS}/benign_0", f"{SEGMENTATION_CLASS}/turned_copy"

    def read(seed: int, leakage: str | None):
        return read_segmentation_pairs(root, image_size=32, seed=seed, leakage=leakage)

    return Planted(read, original, copy, 1, _separating_seed(read, original, copy))


def _flipped_entry(metadata: dict, name: str, copy_name: str, width: int) -> dict:
    """The VIA entry of ``name`` for its left-right mirror saved as ``copy_name``."""
    entry = next(e for e in metadata.values() if e["filename"] == name)
    regions = [{**region, "shape_attributes": {**region["shape_attributes"], "all_points_x": [
        width - 1 - x for x in region["shape_attributes"]["all_points_x"]]}} for region in entry["regions"]]
    return {**entry, "filename": copy_name, "regions": regions}


@pytest.fixture(scope="module")
def lymphoblast(tmp_path_factory) -> Planted:
    """Generated smears plus a left-right mirror of one, annotated with mirrored polygons."""
    root = write_lymphoblast(tmp_path_factory.mktemp("smears"), images=12, size=64, seed=3)
    original, copy = "smear_000.jpg", "mirrored_copy.jpg"
    image = decode_rgb(root / "images" / original)
    _save(root / "images" / copy, image[:, ::-1])
    project = json.loads((root / "annotations.json").read_text())
    entry = _flipped_entry(project["_via_img_metadata"], original, copy, image.shape[1])
    project["_via_img_metadata"][copy] = entry
    project["_via_image_id_list"].append(copy)
    (root / "annotations.json").write_text(json.dumps(project))

    def read(seed: int, leakage: str | None):
        return read_lymphoblast(root, image_size=64, seed=seed, leakage=leakage)

    return Planted(read, original, copy, len(entry["regions"]), _separating_seed(read, original, copy))


@pytest.fixture(params=["segmentation", "lymphoblast"])
def planted(request) -> Planted:
    return request.getfixturevalue(request.param)


def test_group_the_default_keeps_the_planted_copy_in_one_split(planted):
    warned_splits, _ = planted.read(planted.seed, "warn")
    splits, audit = planted.read(planted.seed, None)
    together = _split_of(splits, planted.original)
    assert together is not None and _split_of(splits, planted.copy) == together
    assert audit.leakage["policy"] == "group" and audit.leakage["near_pairs"] == 0
    assert audit.leakage["actions"] == [f"kept together in {together}: "
                                        f"{', '.join(sorted([planted.original, planted.copy]))}"]
    assert sum(map(len, splits.values())) == sum(map(len, warned_splits.values()))


def test_warn_reports_the_pair_and_leaves_it_separated(planted):
    splits, audit = planted.read(planted.seed, "warn")
    names = {f"{_split_of(splits, source)}/{source}" for source in (planted.original, planted.copy)}
    assert [{pair["a"], pair["b"]} for pair in audit.leakage["near"]] == [names]
    assert audit.leakage["policy"] == "warn" and audit.leakage["actions"] == []
    assert "Leakage policy warn: nothing moved or dropped." in audit.format()


def test_drop_removes_the_later_split_member(planted):
    warned_splits, warned = planted.read(planted.seed, "warn")
    splits, audit = planted.read(planted.seed, "drop")
    first, later = sorted((planted.original, planted.copy),
                          key=lambda source: SPLIT_ORDER.index(_split_of(warned_splits, source)))
    later_split = _split_of(warned_splits, later)
    assert _split_of(splits, later) is None and _split_of(splits, first) == _split_of(warned_splits, first)
    assert len(splits[later_split]) == len(warned_splits[later_split]) - 1
    assert sum(audit.kept[later_split].values()) == sum(warned.kept[later_split].values()) - planted.instances
    assert audit.leakage["actions"] == [f"dropped {later_split}/{later} (duplicate of "
                                        f"{_split_of(warned_splits, first)}/{first})"]


def test_fail_raises_naming_the_copy(planted):
    with pytest.raises(DatasetError, match=f"leakage policy fail.*{planted.copy}"):
        planted.read(planted.seed, "fail")


@pytest.mark.parametrize("dataset", ["segmentation", "lymphoblast"])
def test_without_duplicates_group_gives_the_plain_seeded_split(dataset, tmp_path):
    """One permutation by the seed of the sorted listing, cut by the fractions, as before."""
    if dataset == "segmentation":
        root = write_taleqani(tmp_path, per_class=5, size=48, seed=4)
        splits, _ = read_segmentation_pairs(root, image_size=32, seed=9)
        fractions = SPLIT_FRACTIONS
    else:
        root = write_lymphoblast(tmp_path, images=15, size=64, seed=4)
        splits, _ = read_lymphoblast(root, image_size=64, seed=9)
        fractions = (0.7, 0.2, 0.1)
    listing = sorted(source for split in splits.values() for source in split.sources)
    order = [listing[i] for i in np.random.default_rng(9).permutation(len(listing))]
    bounds = np.cumsum([0, *split_sizes(len(listing), fractions)])
    assert [list(splits[name].sources) for name in SPLIT_ORDER] == [
        order[start:stop] for start, stop in zip(bounds[:-1], bounds[1:])]


def test_lymphoblast_with_its_own_split_folders_refuses_group_and_warns_by_default(tmp_path):
    for number, split in enumerate(SPLIT_ORDER):
        write_lymphoblast(tmp_path / split, images=3, size=48, seed=number)
    with pytest.raises(DatasetError, match="leakage policy 'group' does not apply to dataset lymphoblast .*"
                                           "allowed: warn, drop, fail"):
        prepare_lymphoblast(data_dir=str(tmp_path), image_size=48, leakage="group", use_cache=False)
    _, audit = prepare_lymphoblast(data_dir=str(tmp_path), image_size=48, use_cache=False)
    assert audit.leakage["policy"] == "warn"


@pytest.mark.parametrize("sweep, overrides", [("all_unet", ("image_size=32",)),
                                              ("lymphoblast_maskrcnn", ("preprocessing=raw", "image_size=64"))])
@pytest.mark.parametrize("policy", ["group", "drop"])
def test_the_leakage_setting_reaches_both_readers(sweep, overrides, policy, tmp_path, monkeypatch):
    monkeypatch.setenv("MEDSWEEP_CACHE_DIR", str(tmp_path / "cache"))
    if sweep == "all_unet":
        write_taleqani(tmp_path / "data", per_class=3, size=48)
    else:
        write_lymphoblast(tmp_path / "data" / "lymphoblast", images=6, size=64)
    resolved = resolve(get_sweep(sweep), profile="cpu", smoke=True, overrides=(*overrides, f"leakage={policy}"))
    assert prepare_sweep_data(resolved, data_dir=str(tmp_path / "data")).audit.leakage["policy"] == policy
