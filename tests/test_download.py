"""Finding data, and the pinned, checksum-verified download (network replaced by fakes)."""

from __future__ import annotations

import hashlib
import io
import tarfile
import urllib.error
from pathlib import Path

import pytest

from trainables.datasets import download
from trainables.datasets.download import (
    ChecksumError,
    DataNotFoundError,
    Manifest,
    extract_verified,
    locate_or_download,
)

TOP = "BCCD_Dataset-d272fb14cdff6e473fafeeeba32aba5f560e9e43"


def _tarball(files: dict[str, bytes], extra: list[tarfile.TarInfo] = ()) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"{TOP}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info in extra:
            tar.addfile(info, io.BytesIO(b"x" * info.size) if info.isfile() else None)
    return buffer.getvalue()


def _manifest(files: dict[str, bytes]) -> Manifest:
    return Manifest(dataset="BCCD_Dataset", repository="Shenggan/BCCD_Dataset", commit="abc",
                    files={name: hashlib.sha256(data).hexdigest() for name, data in files.items()})


FILES = {"BCCD/ImageSets/Main/train.txt": b"a\n", "LICENSE": b"MIT"}


def test_extract_verifies_and_keeps_only_manifest_files(tmp_path):
    archive = _tarball({**FILES, "README.md": b"not in the manifest"})
    extract_verified(archive, _manifest(FILES), tmp_path / "BCCD_Dataset")
    assert (tmp_path / "BCCD_Dataset" / "LICENSE").read_bytes() == b"MIT"
    assert not (tmp_path / "BCCD_Dataset" / "README.md").exists()


def test_a_tampered_file_fails_and_leaves_nothing_behind(tmp_path):
    archive = _tarball({**FILES, "LICENSE": b"tampered"})
    with pytest.raises(ChecksumError, match="LICENSE: SHA-256"):
        extract_verified(archive, _manifest(FILES), tmp_path / "BCCD_Dataset")
    assert list(tmp_path.iterdir()) == []


def test_a_missing_manifest_file_fails(tmp_path):
    with pytest.raises(ChecksumError, match="lacks 1 manifest file"):
        extract_verified(_tarball({"LICENSE": b"MIT"}), _manifest(FILES), tmp_path / "out")


def test_path_traversal_is_refused(tmp_path):
    evil = tarfile.TarInfo("../../etc/evil")
    evil.size = 1
    with pytest.raises(ChecksumError, match="escapes"):
        extract_verified(_tarball(FILES, [evil]), _manifest(FILES), tmp_path / "out")
    assert not (tmp_path.parent / "etc" / "evil").exists()


def test_real_manifest_verifies_the_real_dataset(shared_data_dir, tmp_path):
    root = shared_data_dir / "BCCD_Dataset"
    manifest = Manifest.load("bccd")
    assert manifest.commit == "d272fb14cdff6e473fafeeeba32aba5f560e9e43"
    files = {name: (root / name).read_bytes() for name in manifest.files}
    extract_verified(_tarball(files), manifest, tmp_path / "BCCD_Dataset")
    assert len(list((tmp_path / "BCCD_Dataset" / "BCCD" / "JPEGImages").glob("*.jpg"))) == 364


def test_search_order_prefers_data_dir_then_environment(tmp_path, monkeypatch):
    for name in ("flag", "env"):
        (tmp_path / name / "BCCD_Dataset" / "BCCD" / "ImageSets" / "Main").mkdir(parents=True)
    monkeypatch.setenv("MEDSWEEP_DATA_DIR", str(tmp_path / "env"))
    assert locate_or_download("BCCD_Dataset", data_dir=tmp_path / "flag",
                              marker="BCCD/ImageSets/Main") == tmp_path / "flag" / "BCCD_Dataset"
    assert locate_or_download("BCCD_Dataset", data_dir=None,
                              marker="BCCD/ImageSets/Main") == tmp_path / "env" / "BCCD_Dataset"


def test_download_goes_to_the_cache_when_data_is_nowhere(tmp_path, monkeypatch):
    monkeypatch.delenv("MEDSWEEP_DATA_DIR", raising=False)
    monkeypatch.setenv("MEDSWEEP_CACHE_DIR", str(tmp_path / "cache"))
    files = {"BCCD/ImageSets/Main/train.txt": b"a\n", "LICENSE": b"MIT"}
    monkeypatch.setattr(Manifest, "load", classmethod(lambda cls, name: _manifest(files)))
    urls = []
    found = locate_or_download("BCCD_Dataset", data_dir=None, marker="BCCD/ImageSets/Main",
                               fetch=lambda url: urls.append(url) or _tarball(files))
    assert found == tmp_path / "cache" / "BCCD_Dataset"
    assert urls == ["https://codeload.github.com/Shenggan/BCCD_Dataset/tar.gz/abc"]
    assert locate_or_download("BCCD_Dataset", data_dir=None, marker="BCCD/ImageSets/Main",
                              fetch=lambda url: pytest.fail("downloaded twice")) == found


def test_offline_without_data_says_which_flag_or_variable_to_set(tmp_path, monkeypatch):
    monkeypatch.delenv("MEDSWEEP_DATA_DIR", raising=False)
    monkeypatch.setenv("MEDSWEEP_CACHE_DIR", str(tmp_path / "cache"))

    def offline(url):
        raise urllib.error.URLError("no network")

    with pytest.raises(DataNotFoundError, match=r"--data-dir DIR or set MEDSWEEP_DATA_DIR=DIR"):
        locate_or_download("BCCD_Dataset", data_dir=None, marker="BCCD/ImageSets/Main", fetch=offline)


def test_wrong_data_dir_is_an_error_not_a_download(tmp_path):
    with pytest.raises(DataNotFoundError, match="has no BCCD_Dataset/BCCD/ImageSets/Main"):
        locate_or_download("BCCD_Dataset", data_dir=tmp_path, marker="BCCD/ImageSets/Main",
                           fetch=lambda url: pytest.fail("must not download when --data-dir is given"))


def test_cache_dir_honours_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDSWEEP_CACHE_DIR", str(tmp_path))
    assert download.cache_dir() == Path(tmp_path)
