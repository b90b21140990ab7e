"""The ``leakage`` policy on datasets whose own files fix the splits (``bccd``, ``chestmnist``,
``bccd_detection``): ``warn`` (the default), ``drop`` and ``fail`` act on a planted copy across
splits, and ``group``, which would decide the splits, is refused with the data settings,
before any data is read and before Ray."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import sweeps.sweep
from sweeps.data import prepare_sweep_data
from sweeps.registry import get_sweep
from sweeps.run import main
from sweeps.space import resolve
from tests.conftest import make_voc
from trainables.datasets import DATASETS, FIXED_SPLIT_DATASETS
from trainables.datasets.base import DatasetError
from trainables.datasets.detection import read_bccd_detection


def _jpeg(seed: int) -> bytes:
    """A smooth random 64x48 JPEG (a photo's gradients, which the near-duplicate check needs)."""
    small = np.random.default_rng(seed).integers(0, 255, (6, 8, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(small).resize((64, 48), Image.Resampling.BICUBIC).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def planted_voc(root: Path) -> Path:
    """A VOC tree whose train image ``img_a`` (one RBC) is copied as test image ``img_b`` (two WBC)."""
    shared = _jpeg(5)
    return make_voc(root, {
        "img_a": {"split": "train", "boxes": [("RBC", 2, 2, 20, 20)], "jpeg_bytes": shared},
        "img_b": {"split": "test", "boxes": [("WBC", 5, 5, 30, 30), ("WBC", 32, 8, 60, 40)], "jpeg_bytes": shared},
        "img_c": {"split": "val", "boxes": [("RBC", 2, 2, 20, 20)], "jpeg_bytes": _jpeg(6)},
    })


def test_bccd_detection_warns_by_default_about_the_planted_copy(tmp_path):
    splits, audit = read_bccd_detection(planted_voc(tmp_path / "BCCD"), image_size=32)
    assert audit.leakage["exact"] == [["test/img_b", "train/img_a"]]
    assert audit.leakage["policy"] == "warn" and audit.leakage["actions"] == []
    assert list(splits["test"].sources) == ["img_b"]


def test_bccd_detection_drop_removes_the_test_copy_and_its_boxes_from_the_counts(tmp_path):
    _, warned = read_bccd_detection(planted_voc(tmp_path / "BCCD"), image_size=32)
    splits, audit = read_bccd_detection(tmp_path / "BCCD", image_size=32, leakage="drop")
    assert len(splits["test"]) == 0 and list(splits["train"].sources) == ["img_a"]
    assert audit.kept["test"]["WBC"] == warned.kept["test"]["WBC"] - 2
    assert audit.leakage["actions"] == ["dropped test/img_b (duplicate of train/img_a)"]


@pytest.mark.parametrize("policy, message", [("fail", "leakage policy fail.*test/img_b"),
                                             ("group", "'group' does not apply to dataset bccd_detection")])
def test_bccd_detection_fail_and_group_are_errors(policy, message, tmp_path):
    with pytest.raises(DatasetError, match=message):
        read_bccd_detection(planted_voc(tmp_path / "BCCD"), image_size=32, leakage=policy)


def test_the_bccd_detection_study_passes_its_leakage_setting_to_the_reader(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDSWEEP_CACHE_DIR", str(tmp_path / "cache"))
    planted_voc(tmp_path / "data" / "BCCD_Dataset" / "BCCD")
    resolved = resolve(get_sweep("bccd_detection"), profile="cpu", smoke=True,
                       overrides=("preprocessing=raw", "image_size=32", "leakage=drop"))
    assert prepare_sweep_data(resolved, data_dir=str(tmp_path / "data")).audit.leakage["policy"] == "drop"


def test_every_fixed_split_dataset_is_declared_and_takes_a_leakage_setting():
    assert set(FIXED_SPLIT_DATASETS) == {"bccd", "chestmnist", "bccd_detection"}
    assert all("leakage" in DATASETS[name].options.keys() for name in FIXED_SPLIT_DATASETS)


@pytest.mark.parametrize("study, dataset", [("bccd_imbalance", "bccd"), ("bccd_detection", "bccd_detection")])
def test_group_on_a_fixed_split_dataset_is_refused_before_the_audit_and_ray(study, dataset, capsys, tmp_path,
                                                                             monkeypatch):
    monkeypatch.setattr(sweeps.sweep, "ensure_ray", lambda *a, **k: pytest.fail("Ray was asked to start"))
    monkeypatch.setattr(sweeps.sweep, "prepare_sweep_data", lambda *a, **k: pytest.fail("the data audit ran"))
    assert main([study, "--smoke", "--check-data", "--set", "leakage=group", "--storage", str(tmp_path)]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(errors) == 1
    assert errors[0].startswith(f"error: --set leakage=group: data setting 'leakage' cannot be 'group' for {dataset}")
