"""A researcher's own data, end to end through the study file ``python -m sweeps.new`` writes
(issue #23): each generic format built in a temp dir (broken files included), then the starter
study's audit (``--check-data``), its smoke sweep through Ray Tune and the report, unchanged.

``image_folder``: class folders of PNG, JPEG, BMP and TIFF pictures, one of them broken.
``mask_folder``: images beside masks with three values (0, 128, 255), one mask unpaired and
one image broken.
``coco``: BCCD's VOC boxes exported as COCO instances files, one per split, one image broken.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from sweeps.new import main as new_main
from sweeps.run import main as run_main

pytestmark = pytest.mark.e2e

SUFFIXES = (".png", ".jpg", ".bmp", ".tif")


def class_folders(root: Path, *, per_class: int = 10) -> Path:
    """Two classes of 20x24 pictures told apart by colour, in four formats, and one broken file."""
    rng = np.random.default_rng(0)
    for name, colour in (("blast", (200, 60, 60)), ("normal", (60, 60, 200))):
        folder = root / name
        folder.mkdir(parents=True)
        for index in range(per_class):
            pixels = np.clip(rng.normal(colour, 25, size=(24, 20, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{name}_{index}{SUFFIXES[index % len(SUFFIXES)]}")
    (root / "blast" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a picture")
    return root


def image_mask_pairs(root: Path, *, count: int = 24) -> Path:
    """Cells on a plain background: a cytoplasm disc (mask 128) around a nucleus disc (255)."""
    rng = np.random.default_rng(1)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    y, x = np.mgrid[:32, :32]
    for index in range(count):
        cy, cx = rng.integers(10, 22, size=2)
        distance = np.hypot(y - cy, x - cx)
        mask = np.where(distance < 4, 255, np.where(distance < 9, 128, 0)).astype(np.uint8)
        image = np.stack([np.full((32, 32), 230), np.full((32, 32), 220), np.full((32, 32), 225)], -1)
        image[mask == 128] = (180, 120, 190)
        image[mask == 255] = (90, 30, 120)
        noisy = np.clip(image + rng.normal(0, 8, image.shape), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(root / "images" / f"cell_{index:02d}.png")
        Image.fromarray(mask).save(root / "masks" / f"cell_{index:02d}.png")
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(root / "masks" / "orphan.png")
    (root / "images" / f"cell_{count - 1:02d}.png").write_bytes(b"truncated")
    return root


def starter(format_name: str, root: Path, out: Path, *options: str) -> Path:
    """The study file ``python -m sweeps.new`` writes for ``root``."""
    path = out / "study.yaml"
    assert new_main([format_name, str(root), "--name", f"my_{format_name}", "-o", str(path), *options]) == 0
    return path


def audit_and_sweep(study: Path, storage: Path, capsys) -> object:
    """The study's ``--check-data`` (its output returned) and smoke sweep, both unchanged."""
    from sweeps.sweep import SweepOptions, run_sweep

    assert run_main([str(study), "--check-data", "--storage", str(storage)]) == 0
    audit = capsys.readouterr().out
    outcome = run_sweep(SweepOptions(name=str(study), smoke=True, storage=str(storage)))
    assert outcome.exit_code == 0
    assert set(outcome.summary["stop_reason"]) <= {"completed", "stopped_by_asha", "max_epochs"}, outcome.summary
    return audit, outcome


def report_of(outcome) -> object:
    from analysis.study_report import ReportOptions, write_report

    report = write_report(ReportOptions(str(outcome.experiment_dir), seeds=0, bootstrap=200), echo=lambda _: None)
    assert report.markdown.is_file()
    return report


def test_an_image_folder_goes_from_folder_to_report_through_its_starter_study(ray_session, tmp_path, capsys):
    from analysis.results import load_experiment

    root = class_folders(tmp_path / "smears")
    study = starter("image_folder", root, tmp_path)
    text = study.read_text(encoding="utf-8")
    assert "blast 10" in text and "normal 10" in text and "broken.png" in text
    doc = yaml.safe_load(text)
    assert doc["data"] == {"dataset": "image_folder", "root": str(root.resolve()), "image_size": 16,
                           "split_fractions": [0.7, 0.15, 0.15]}
    assert doc["study"]["metric"] == "val_macro_f1"
    audit, outcome = audit_and_sweep(study, tmp_path / "runs", capsys)
    assert "broken.png" in audit
    copy = outcome.experiment_dir / "study.yaml"
    assert copy.read_text(encoding="utf-8") == text
    study.unlink()  # the report reads the experiment's copy, wherever the file was
    experiment = load_experiment(outcome.experiment_dir)
    assert (experiment.resolved.spec.name, experiment.resolved.spec.search_space) == ("my_image_folder", str(copy))
    assert "blast" in report_of(outcome).markdown.read_text(encoding="utf-8")


def test_a_mask_folder_with_three_mask_values_trains_three_classes_and_reports_each(ray_session, tmp_path, capsys):
    root = image_mask_pairs(tmp_path / "cells")
    study = starter("mask_folder", root, tmp_path)
    doc = yaml.safe_load(study.read_text(encoding="utf-8"))
    assert sorted(doc["data"]["classes"]) == [0, 128, 255]
    assert doc["study"]["metric"] == "val_dice_per_image"
    audit, outcome = audit_and_sweep(study, tmp_path / "runs", capsys)
    assert "orphan.png" in audit and "cell_23.png" in audit
    markdown = report_of(outcome).markdown.read_text(encoding="utf-8")
    assert all(name in markdown for name in doc["data"]["classes"].values() if name != "background")


def test_bccd_boxes_exported_as_coco_detect_through_their_starter_study(ray_session, tmp_path, capsys,
                                                                        shared_data_dir):
    from tests.coco_export import export_bccd_as_coco

    root = export_bccd_as_coco(shared_data_dir / "BCCD_Dataset", tmp_path / "bccd_coco", images_per_split=5)
    broken = json.loads((root / "annotations" / "instances_train.json").read_text())["images"][-1]["file_name"]
    (root / "images" / broken).write_bytes(b"not a JPEG")
    study = starter("coco", root, tmp_path)
    doc = yaml.safe_load(study.read_text(encoding="utf-8"))
    assert doc["study"]["trainable"] == "detection" and doc["study"]["metric"] == "val_map50"
    audit, outcome = audit_and_sweep(study, tmp_path / "runs", capsys)
    assert Path(broken).name in audit
    markdown = report_of(outcome).markdown.read_text(encoding="utf-8")
    assert "RBC" in markdown and "WBC" in markdown
