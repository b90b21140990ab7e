"""The audit's files (issue 18, point 3): ``data_audit.txt`` and ``.json``, one csv row per link
between duplicates, a contact sheet of the linked pairs, the masks section of a segmentation
audit (text, round trip, figures), and where ``--check-data`` and a new experiment put them."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from search_spaces import search_space_path
from sweeps.data import prepare_sweep_data
from sweeps.registry import get_sweep
from sweeps.space import resolve
from sweeps.storage import ExperimentLocation
from sweeps.sweep import SweepOptions, run_sweep, write_experiment_files
from tests.synthetic_data import write_taleqani
from trainables.datasets.audit import DataAudit, format_masks
from trainables.datasets.audit_files import CSV_COLUMNS, SHEET_PAIRS, write_audit_files
from trainables.datasets.images import decode_rgb
from trainables.datasets.leakage import LINE_WIDTH

AUDIT_FILES = ["data_audit.txt", "data_audit.json", "leakage_groups.csv", "leakage_groups.png"]


@dataclass
class Audited:
    """The part of ``sweeps.data.SweepData`` the audit files are written from."""

    audits: dict = field(default_factory=dict)

    def audit_text(self) -> str:
        return "\n\n".join(audit.format() for audit in self.audits.values())

    def audit_json(self) -> dict:
        return next(iter(self.audits.values())).to_dict()


def _smears(folder: Path, count: int) -> list[str]:
    """``count`` small smooth random images written as JPEG files; their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        small = np.random.default_rng(index).integers(0, 255, (6, 8, 3), dtype=np.uint8)
        path = folder / f"smear_{index:03d}.jpg"
        Image.fromarray(small).resize((64, 48), Image.Resampling.BICUBIC).save(path)
        paths.append(str(path))
    return paths


def _audit(files: list[str], *, groups: int, masks: dict | None = None) -> DataAudit:
    """An audit of ``files`` whose leakage section holds ``groups`` near pairs kept together
    (files 2i and 2i+1), one exact pair among them, and one near pair across splits."""
    name = [Path(file).name for file in files]
    kept = [{"members": [name[2 * i], name[2 * i + 1]], "split": ("train", "val", "test")[i % 3],
             "files": {name[2 * i]: files[2 * i], name[2 * i + 1]: files[2 * i + 1]},
             "links": [{"a": name[2 * i], "b": name[2 * i + 1], "kind": "exact" if i == 0 else "near", "bits": 1,
                        "similarity": None if i == 0 else round(0.95 + i / 1000, 3)}]} for i in range(groups)]
    across = {"a": f"train/{name[0]}", "b": f"test/{name[-1]}", "bits": 3, "similarity": 0.96}
    leakage = {"images": len(files), "max_distance": 4, "min_similarity": 0.95, "exact_groups": 0, "candidates": 1,
               "near_pairs": 1, "exact": [], "near": [across], "seconds": 0.1, "grouping_seconds": 0.2,
               "files": {across["a"]: files[0], across["b"]: files[-1]}, "policy": "group", "actions": [],
               "groups": kept}
    return DataAudit(dataset="generated", root="/nowhere", class_names=("a",), leakage=leakage, masks=masks or {})


def test_the_csv_has_one_row_per_link_and_the_sheet_shows_each_pair(tmp_path):
    files = _smears(tmp_path / "images", 8)
    written = write_audit_files(tmp_path / "audit", Audited({None: _audit(files, groups=3)}))
    assert [path.name for path in written] == AUDIT_FILES
    with (tmp_path / "audit" / "leakage_groups.csv").open() as stream:
        rows = list(csv.DictReader(stream))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [(row["group"], row["split"], row["kind"], row["similarity"]) for row in rows] == [
        ("G1", "train", "exact", ""), ("G2", "val", "near", "0.951"), ("G3", "test", "near", "0.952"),
        ("X1", "across", "near", "0.96")]
    assert rows[0]["a"] == "smear_000.jpg" and rows[-1]["b"] == "test/smear_007.jpg"
    assert json.loads((tmp_path / "audit" / "data_audit.json").read_text())["leakage"]["groups"][1]["links"][0][
        "similarity"] == 0.951
    assert decode_rgb(tmp_path / "audit" / "leakage_groups.png").shape[0] > 100


def test_the_sheet_grows_with_the_pairs_up_to_its_cap(tmp_path):
    files = _smears(tmp_path / "images", 2 * (SHEET_PAIRS + 6))
    heights = {}
    for groups in (2, 9, SHEET_PAIRS - 1, SHEET_PAIRS + 5):
        write_audit_files(tmp_path / str(groups), Audited({None: _audit(files[:2 * groups], groups=groups)}))
        heights[groups] = decode_rgb(tmp_path / str(groups) / "leakage_groups.png").shape[0]
    # One pair across splits joins the groups' pairs; beyond the cap only the least and most similar are shown.
    assert heights[2] < heights[9] < heights[SHEET_PAIRS - 1] == heights[SHEET_PAIRS + 5]


def test_without_links_no_sheet_is_left_behind(tmp_path):
    files = _smears(tmp_path / "images", 4)
    write_audit_files(tmp_path / "audit", Audited({None: _audit(files, groups=2)}))
    clean = DataAudit(dataset="generated", root="/nowhere", class_names=("a",))
    written = write_audit_files(tmp_path / "audit", Audited({None: clean}))
    assert [path.name for path in written] == AUDIT_FILES[:3]
    assert not (tmp_path / "audit" / "leakage_groups.png").exists()
    assert (tmp_path / "audit" / "leakage_groups.csv").read_text().strip() == ",".join(CSV_COLUMNS)


MASKS = {"rule": "a pixel is cell when it differs from the background.", "empty_below": 0.005, "policy": "drop",
         "fraction_quantiles": {"p5": 0.0001, "p50": 0.0693, "p95": 0.2532},
         "histogram": {"edges": list(np.linspace(0, 1, 51).round(4)), "counts": [3] + [1] * 49},
         "near_empty": [{"source": f"Pro/WBC-Malignant-Pro-{i:03d}", "fraction": 0.0002} for i in range(23)],
         "mismatched": [{"source": "Benign/f", "reason": "size mismatch: Original 48x48, Segmented 48x40"}]}


def test_the_masks_section_is_formatted_after_the_table_and_round_trips():
    audit = DataAudit(dataset="generated", root="/nowhere", class_names=("a",), masks=MASKS)
    lines = format_masks(MASKS)
    assert lines[:3] == ["Masks: a pixel is cell when it differs from the background.",
                         "Foreground fraction per mask: median 6.93% (5th pct 0.01%, 95th 25.32%)",
                         "23 near-empty mask(s) (foreground below 0.5%), empty_masks=drop: dropped:"]
    assert lines[3] == "  Pro/WBC-Malignant-Pro-000 0.02%" and lines[23] == "  … 3 more in data_audit.json"
    assert lines[24:] == ["1 mismatched pair(s):", "  Benign/f: size mismatch: Original 48x48, Segmented 48x40"]
    text = audit.format()
    assert text.index("Masks: ") > text.index("total") and text.index("Masks: ") < text.index("Dropped 0 items.")
    assert DataAudit.from_dict(audit.to_dict()).masks == MASKS
    older = {key: value for key, value in audit.to_dict().items() if key != "masks"}
    assert format_masks({}) == [] and DataAudit.from_dict(older).masks == {}
    assert max(map(len, format_masks({**MASKS, "rule": "a long rule " * 30}))) <= LINE_WIDTH
    kept = format_masks({**MASKS, "policy": "keep", "near_empty": [], "mismatched": []})
    assert kept[-1] == "0 near-empty mask(s) (foreground below 0.5%), empty_masks=keep: kept."


def test_an_audit_with_masks_gets_the_mask_figures(tmp_path):
    audit = DataAudit(dataset="generated", root="/nowhere", class_names=("a",), masks=MASKS)
    written = write_audit_files(tmp_path, Audited({None: audit}))
    assert [path.name for path in written] == [*AUDIT_FILES[:3], "mask_fractions.png"]


@pytest.fixture(scope="module")
def leaky_taleqani(tmp_path_factory) -> Path:
    """Generated Taleqani smears with a 90° turned copy of one."""
    root = write_taleqani(tmp_path_factory.mktemp("data"), per_class=4, size=48, seed=2, class_cue=True)
    folder = root / "Original" / "Benign"
    Image.fromarray(np.ascontiguousarray(np.rot90(decode_rgb(folder / "benign_0.jpg")))).save(
        folder / "benign_9.jpg", quality=80)
    return root


def test_check_data_writes_the_audit_files_of_the_sweep_and_says_where(leaky_taleqani, tmp_path, monkeypatch):
    echoed = []
    options = SweepOptions(name="all_transfer", overrides=("image_size=32",), profile="cpu", check_data=True,
                           data_dir=str(leaky_taleqani), storage=str(tmp_path / "runs"))
    run_sweep(options, echo=echoed.append)
    folder = (tmp_path / "runs" / "all_transfer_data_audit").resolve()
    assert echoed[-1] == f"Audit files: {folder} ({', '.join(AUDIT_FILES)})"
    assert sorted(path.name for path in folder.iterdir()) == sorted(AUDIT_FILES)
    assert "Leakage policy group: 1 group(s) of 2 images" in (folder / "data_audit.txt").read_text()
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    run_sweep(replace(options, storage="s3://bucket/runs"), echo=echoed.append)
    assert "is not local: --check-data writes its audit files under ./runs" in echoed[-2]
    assert (tmp_path / "elsewhere" / "runs" / "all_transfer_data_audit" / "leakage_groups.png").is_file()


def test_a_new_experiment_gets_the_audit_files_locally_and_in_uri_storage(leaky_taleqani, tmp_path):
    resolved = resolve(get_sweep("all_transfer"), profile="cpu", overrides=("image_size=32",))
    data = prepare_sweep_data(resolved, data_dir=str(leaky_taleqani))
    for location in (ExperimentLocation(str(tmp_path / "local"), "run"),
                     ExperimentLocation(f"file://{tmp_path / 'uri'}", "run")):
        write_experiment_files(location, resolved, data, data_dir=str(leaky_taleqani))
    for folder in (tmp_path / "local" / "run", tmp_path / "uri" / "run"):
        assert sorted(path.name for path in folder.iterdir()) == sorted([*AUDIT_FILES, "splits.json", "study.yaml",
                                                                         "sweep.json"])
        assert (folder / "data_audit.txt").read_text() == data.audit_text() + "\n"
        assert (folder / "study.yaml").read_text() == search_space_path("all_transfer.yaml").read_text()
