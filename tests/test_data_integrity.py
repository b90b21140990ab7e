"""Found BCCD copies (--data-dir, MEDSWEEP_DATA_DIR, the cache) compared with the pinned SHA-256
manifest: differences are warnings in the audit and lines of ``strict_problems()``."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.conftest import make_voc, voc_xml, write_jpeg
from trainables.datasets.bccd import prepare_bccd
from trainables.datasets.detection import prepare_bccd_detection
from trainables.datasets.download import Manifest

IMAGES = {f"img{number}": {"split": split, "boxes": [("RBC", 4, 4, 20, 20), ("WBC", 30, 10, 50, 40)]}
          for number, split in enumerate(["train"] * 4 + ["val"] * 2 + ["test"] * 2)}


@pytest.fixture
def claimed_copy(tmp_path, monkeypatch) -> Path:
    """A generated ``BCCD_Dataset/`` whose pinned manifest (``Manifest.load`` replaced) lists its
    files as written, plus a licence the reader never reads. Returns the --data-dir."""
    dataset = tmp_path / "data" / "BCCD_Dataset"
    make_voc(dataset / "BCCD", IMAGES)
    (dataset / "LICENSE").write_text("MIT")
    files = {path.relative_to(dataset).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
             for path in dataset.rglob("*") if path.is_file()}
    manifest = Manifest(dataset="BCCD_Dataset", repository="Shenggan/BCCD_Dataset", commit="c0ffee" * 7,
                        files=files)
    monkeypatch.setattr(Manifest, "load", classmethod(lambda cls, name: manifest))
    return tmp_path / "data"


def _prepare(data_dir: Path):
    return prepare_bccd(data_dir=str(data_dir), image_size=8, use_cache=False)[1]


def test_an_unchanged_copy_matches_and_a_strict_run_has_nothing_to_refuse(claimed_copy):
    audit = _prepare(claimed_copy)
    assert audit.manifest["compared"] and audit.strict_problems() == []
    assert "Manifest check: all 19 files read match the pinned SHA-256 manifest of BCCD_Dataset (commit c0ffeec0)" \
        in audit.format()


def test_a_changed_annotation_is_named_in_the_audit_and_in_strict_problems(claimed_copy):
    xml = claimed_copy / "BCCD_Dataset" / "BCCD" / "Annotations" / "img1.xml"
    xml.write_text(voc_xml("img1.jpg", [("WBC", 4, 4, 20, 20), ("WBC", 30, 10, 50, 40)]))
    audit = _prepare(claimed_copy)
    line = "BCCD/Annotations/img1.xml: SHA-256 differs from the pinned manifest"
    assert audit.strict_problems() == [f"manifest: {line}"]
    text = audit.format()
    assert "Manifest check: 1 file(s) differ from the pinned SHA-256 manifest" in text and f"  {line}" in text
    assert audit.total_kept() == 16, "a difference is a warning: the changed labels are still used"


def test_missing_and_extra_annotated_files_are_listed_and_unread_files_are_not_compared(claimed_copy):
    bccd = claimed_copy / "BCCD_Dataset" / "BCCD"
    (bccd / "JPEGImages" / "img2.jpg").unlink()
    (bccd / "Annotations" / "extra.xml").write_text(voc_xml("extra.jpg", [("RBC", 1, 1, 9, 9)]))
    write_jpeg(bccd / "JPEGImages" / "extra.jpg", seed=99)
    (claimed_copy / "BCCD_Dataset" / "LICENSE").write_text("changed, but never read")
    problems = _prepare(claimed_copy).strict_problems()
    assert problems == ["dropped [train] img2: image img2.jpg is missing (2 boxes lost)",
                        "manifest: BCCD/JPEGImages/img2.jpg: in the pinned manifest but missing",
                        "manifest: BCCD/Annotations/extra.xml: read, but not in the pinned manifest (an extra file)",
                        "manifest: BCCD/JPEGImages/extra.jpg: read, but not in the pinned manifest (an extra file)"]


def test_a_copy_holding_few_of_the_pinned_files_is_not_the_pinned_copy_and_is_not_compared(claimed_copy):
    bccd = claimed_copy / "BCCD_Dataset" / "BCCD"
    for path in [*(bccd / "JPEGImages").glob("*.jpg"), *(bccd / "Annotations").glob("*.xml")]:
        path.rename(path.with_stem(f"own_{path.stem}"))
    for split_list in (bccd / "ImageSets" / "Main").glob("*.txt"):
        split_list.write_text("".join(f"own_{line}\n" for line in split_list.read_text().split()))
    audit = _prepare(claimed_copy)
    assert audit.manifest["compared"] is False and audit.strict_problems() == [] and audit.total_kept() == 16
    assert ("Manifest check: not compared with the pinned SHA-256 manifest of BCCD_Dataset (commit c0ffeec0): "
            "only 3 of the 19 files it pins for reading are present, so this is not the pinned copy.") in audit.format()


def test_a_cache_hit_is_checked_too_from_the_cache_key_digests_reading_each_file_once(claimed_copy, monkeypatch):
    xml = claimed_copy / "BCCD_Dataset" / "BCCD" / "Annotations" / "img0.xml"
    xml.write_text(xml.read_text().replace("<xmax>20</xmax>", "<xmax>21</xmax>"))
    prepare_bccd(data_dir=str(claimed_copy), image_size=8)
    monkeypatch.setattr("trainables.datasets.bccd.read_voc_patches", lambda *a, **k: pytest.fail("cache miss"))
    reads: list[Path] = []
    original = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda path: reads.append(path) or original(path))
    _, audit = prepare_bccd(data_dir=str(claimed_copy), image_size=8)
    assert len(reads) == len(set(reads)) == 19
    assert audit.strict_problems() == ["manifest: BCCD/Annotations/img0.xml: SHA-256 differs from the pinned manifest"]


def test_bccd_detection_compares_the_same_files(claimed_copy):
    (claimed_copy / "BCCD_Dataset" / "BCCD" / "ImageSets" / "Main" / "val.txt").write_text("img4\n")
    _, audit = prepare_bccd_detection(data_dir=str(claimed_copy), image_size=32, use_cache=False)
    assert audit.strict_problems() == ["manifest: BCCD/ImageSets/Main/val.txt: SHA-256 differs from the "
                                       "pinned manifest"]
    assert "Manifest check: 1 file(s) differ" in audit.format()


def test_the_real_copy_matches_the_manifest_and_strict_refuses_only_its_two_zero_area_boxes(shared_data_dir):
    _, audit = prepare_bccd(data_dir=str(shared_data_dir), image_size=16)
    assert ("Manifest check: all 731 files read match the pinned SHA-256 manifest of BCCD_Dataset "
            "(commit d272fb14).") in audit.format()
    assert audit.manifest["differing"] == audit.manifest["missing"] == audit.manifest["extra"] == []
    problems = audit.strict_problems()
    assert len(problems) == 2 and all(p.startswith("dropped [") and p.endswith(": zero-area box") for p in problems)
    assert audit.to_dict()["manifest"]["compared"] is True
