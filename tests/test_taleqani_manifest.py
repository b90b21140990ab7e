"""The pinned SHA-256 manifest of Taleqani ALL: what it pins, the classification reader's check
of the real copy against it, and a claimed copy with one changed byte."""

from __future__ import annotations

import hashlib
import shutil
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import copy_real_taleqani, real_taleqani_root
from trainables.datasets.audit import DataAudit
from trainables.datasets.download import Manifest
from trainables.datasets.download.regenerate import ManifestSourceError, regenerated_manifest
from trainables.datasets.taleqani_classification import read_taleqani_classification
from trainables.datasets.taleqani_common import taleqani_manifest_check

CLASS_COUNTS = {"Benign": 504, "Early": 985, "Pre": 963, "Pro": 804}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_manifest_pins_all_6512_files_with_the_published_class_counts():
    manifest = Manifest.load("taleqani")
    assert manifest.dataset == "ALL_Taleqani" and manifest.kaggle == "mehradaria/leukemia"
    assert manifest.pinned == "Kaggle mehradaria/leukemia"
    assert "ecad3b571b0dcc773f5deada4c8664a2b63e2234" in manifest.provenance
    assert "d2042158b69d023dcdea96661ae7d476b01509c0" in manifest.provenance
    assert len(manifest.files) == 6512
    assert Counter(name.split("/")[0] for name in manifest.files) == {"Original": 3256, "Segmented": 3256}
    for folder in ("Original", "Segmented"):
        per_class = Counter(name.split("/")[1] for name in manifest.files if name.startswith(f"{folder}/"))
        assert per_class == CLASS_COUNTS, folder
    assert "Original/Benign/WBC-Benign-001.jpg" in manifest.files
    assert all(len(digest) == 64 and set(digest) <= set("0123456789abcdef") for digest in manifest.files.values())


def test_the_bccd_manifest_still_loads_with_its_commit():
    manifest = Manifest.load("bccd")
    assert manifest.commit == "d272fb14cdff6e473fafeeeba32aba5f560e9e43" and manifest.kaggle == ""
    assert manifest.pinned == "commit d272fb14" and len(manifest.files) == 734


def test_the_classification_audit_of_the_real_copy_matches_all_3256_original_files():
    root = real_taleqani_root()
    audit = read_taleqani_classification(root, image_size=32, use_cache=False)[1]
    check = audit.manifest
    assert check["compared"] and check["expected"] == 3256 and check["pinned"] == "Kaggle mehradaria/leukemia"
    assert check["differing"] == check["missing"] == check["extra"] == []
    assert ("Manifest check: all 3256 files read match the pinned SHA-256 manifest of ALL_Taleqani "
            "(Kaggle mehradaria/leukemia).") in audit.format()
    assert not any(line.startswith("manifest:") for line in audit.strict_problems())


def test_regenerating_the_manifest_from_the_real_copy_gives_the_shipped_file():
    shipped = (Path(__file__).resolve().parents[1] / "trainables/datasets/manifests/taleqani.json").read_text()
    assert regenerated_manifest("taleqani", real_taleqani_root()) == shipped


def test_regenerating_from_a_folder_without_segmented_names_what_is_missing(tmp_path):
    (tmp_path / "Original").mkdir()
    with pytest.raises(ManifestSourceError, match="Segmented does not exist: give the dataset folder"):
        regenerated_manifest("taleqani", tmp_path)


def test_a_changed_byte_in_a_claimed_pinned_copy_is_reported_under_any_class_folder_name(tmp_path):
    """Three real files copied into a temp dataset folder, one with a byte changed and one under
    the Kaggle class-folder name; the copy claims to be the pinned one (every other pinned
    Original file is given with its pinned digest), so the check compares it file by file."""
    real = real_taleqani_root()
    manifest = Manifest.load("taleqani")
    copied = {"Original/Benign/WBC-Benign-001.jpg": "Original/Benign/WBC-Benign-001.jpg",
              "Original/Pre/WBC-Malignant-Pre-001.jpg": "Original/[Malignant] Pre-B/WBC-Malignant-Pre-001.jpg",
              "Original/Pro/WBC-Malignant-Pro-001.jpg": "Original/Pro/WBC-Malignant-Pro-001.jpg"}
    for pinned, written in copied.items():
        (tmp_path / written).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(real / pinned, tmp_path / written)
    changed = tmp_path / copied["Original/Pre/WBC-Malignant-Pre-001.jpg"]
    data = bytearray(changed.read_bytes())
    data[len(data) // 2] ^= 0xFF
    changed.write_bytes(bytes(data))
    digests = {tmp_path / name: digest for name, digest in manifest.files.items()
               if name.startswith("Original/") and name not in copied}
    digests |= {tmp_path / written: _sha256(tmp_path / written) for written in copied.values()}

    check = taleqani_manifest_check(tmp_path, digests, folders=("Original",))

    assert check["compared"] and check["expected"] == 3256
    assert check["differing"] == ["Original/Pre/WBC-Malignant-Pre-001.jpg"]
    assert check["missing"] == check["extra"] == []
    audit = DataAudit(dataset="taleqani", root=str(tmp_path), class_names=("Benign", "Early", "Pre", "Pro"),
                      manifest=check)
    assert audit.strict_problems() == ["manifest: Original/Pre/WBC-Malignant-Pre-001.jpg: SHA-256 differs "
                                       "from the pinned manifest"]


def test_segmentation_folders_compare_both_halves_and_name_a_missing_segmented_file(tmp_path):
    manifest = Manifest.load("taleqani")
    digests = {tmp_path / name: digest for name, digest in manifest.files.items()
               if name != "Segmented/Early/WBC-Malignant-Early-001.jpg"}
    check = taleqani_manifest_check(tmp_path, digests, folders=("Original", "Segmented"))
    assert check["compared"] and check["expected"] == 6512
    assert check["missing"] == ["Segmented/Early/WBC-Malignant-Early-001.jpg"] and check["differing"] == []


def test_a_few_real_files_in_a_temp_folder_are_not_compared(tmp_path):
    root = copy_real_taleqani(tmp_path / "ALL_Taleqani", per_class=3)
    audit = read_taleqani_classification(root, image_size=16, use_cache=False)[1]
    assert audit.manifest["compared"] is False and audit.manifest["present"] == 12
    assert ("Manifest check: not compared with the pinned SHA-256 manifest of ALL_Taleqani (Kaggle "
            "mehradaria/leukemia): only 12 of the 3256 files it pins for reading are present") in audit.format()
    assert not any(problem.startswith("manifest:") for problem in audit.strict_problems())
