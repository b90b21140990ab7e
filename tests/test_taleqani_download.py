"""``python -m trainables.datasets.download taleqani DIR`` with the Kaggle client replaced by a
fake that writes a zip of generated JPEGs in the Kaggle layout, pinned by a fake manifest; and
``bccd DIR`` with the network replaced."""

from __future__ import annotations

import hashlib
import importlib.machinery
import io
import sys
import tarfile
import types
import zipfile
from pathlib import Path

import pytest

from tests.conftest import write_jpeg
from trainables.datasets.download import ChecksumError, Manifest, TargetExistsError, download_bccd
from trainables.datasets.download.__main__ import main
from trainables.datasets.download.kaggle_download import download_taleqani, kaggle_config_dir, kaggle_credentials

TOP = "Blood cell Cancer [ALL]"
# Pinned path → the folder the Kaggle zip holds it under (a Kaggle-style class folder name too).
LAYOUT = {"Original/Benign/WBC-Benign-001.jpg": "Original/Benign",
          "Original/Pre/WBC-Malignant-Pre-001.jpg": "Original/[Malignant] Pre-B",
          "Segmented/Benign/WBC-Benign-001.jpg": "Segmented/Benign",
          "Segmented/Pre/WBC-Malignant-Pre-001.jpg": "Segmented/[Malignant] Pre-B"}


class FakeKaggleApi:
    """Stands in for ``kaggle.api.kaggle_api_extended.KaggleApi``: ``dataset_download_files``
    writes ``<slug>.zip`` (the class attribute ``archive``) where the real client does."""

    archive = b""
    calls: list = []

    def authenticate(self) -> None:
        FakeKaggleApi.calls.append("authenticate")

    def dataset_download_files(self, dataset, path=None, force=False, quiet=True, unzip=False):
        FakeKaggleApi.calls.append((dataset, unzip))
        (Path(path) / f"{dataset.split('/')[1]}.zip").write_bytes(FakeKaggleApi.archive)


@pytest.fixture
def images(tmp_path) -> dict[str, bytes]:
    """Generated JPEG bytes of each pinned path."""
    for seed, name in enumerate(LAYOUT):
        write_jpeg(tmp_path / "generated" / name, size=(24, 24), seed=seed)
    return {name: (tmp_path / "generated" / name).read_bytes() for name in LAYOUT}


@pytest.fixture
def fake_kaggle(monkeypatch, tmp_path, images) -> Manifest:
    """The fake client installed as the ``kaggle`` package, credentials in the environment,
    a home with no Kaggle files, and ``Manifest.load`` pinning ``images``; returns that manifest."""
    package = types.ModuleType("kaggle")
    package.__spec__ = importlib.machinery.ModuleSpec("kaggle", None)
    client = types.ModuleType("kaggle.api.kaggle_api_extended")
    client.KaggleApi = FakeKaggleApi
    for name, module in (("kaggle", package), ("kaggle.api", types.ModuleType("kaggle.api")),
                         ("kaggle.api.kaggle_api_extended", client)):
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(FakeKaggleApi, "calls", [])
    monkeypatch.setattr(FakeKaggleApi, "archive", kaggle_zip(images))
    for variable in ("KAGGLE_CONFIG_DIR", "KAGGLE_API_TOKEN", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KAGGLE_USERNAME", "someone")
    monkeypatch.setenv("KAGGLE_KEY", "0123")
    manifest = Manifest(dataset="ALL_Taleqani", kaggle="mehradaria/leukemia",
                        files={name: hashlib.sha256(data).hexdigest() for name, data in images.items()})
    monkeypatch.setattr(Manifest, "load", classmethod(lambda cls, name: manifest))
    return manifest


def kaggle_zip(images: dict[str, bytes], *, extra: dict[str, bytes] | None = None) -> bytes:
    """A zip in the Kaggle layout: ``TOP/{Original,Segmented}/<Kaggle class folder>/<file>``,
    a readme the manifest does not pin, and the ``extra`` members as named."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr(f"{TOP}/README.txt", "not pinned")
        for name, data in images.items():
            bundle.writestr(f"{TOP}/{LAYOUT[name]}/{Path(name).name}", data)
        for name, data in (extra or {}).items():
            bundle.writestr(name, data)
    return buffer.getvalue()


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_download_unpacks_verifies_and_says_what_it_did(fake_kaggle, images, tmp_path, capsys):
    data_dir = tmp_path / "data"
    assert main(["taleqani", str(data_dir)]) == 0
    for name, data in images.items():
        assert (data_dir / "ALL_Taleqani" / name).read_bytes() == data
    assert sorted(p.name for p in data_dir.iterdir()) == ["ALL_Taleqani"]        # no staging left
    assert FakeKaggleApi.calls == ["authenticate", ("mehradaria/leukemia", False)]
    out = capsys.readouterr().out
    assert f"wrote {data_dir / 'ALL_Taleqani'} (Original/ 2, Segmented/ 2 files)" in out
    assert "credentials: KAGGLE_USERNAME and KAGGLE_KEY" in out and "1 archive member(s)" in out
    assert f"--data-dir {data_dir}" in out


def test_a_corrupted_file_is_a_one_line_error_and_leaves_nothing(fake_kaggle, images, tmp_path, capsys):
    FakeKaggleApi.archive = kaggle_zip({**images, "Original/Pre/WBC-Malignant-Pre-001.jpg": b"corrupt"})
    data_dir = tmp_path / "data"
    assert main(["taleqani", str(data_dir)]) == 2
    err = _one_error_line(capsys)
    assert err.startswith("error: Original/Pre/WBC-Malignant-Pre-001.jpg (archive member "
                          f"{TOP}/Original/[Malignant] Pre-B/WBC-Malignant-Pre-001.jpg): SHA-256 ")
    assert "does not match the pinned manifest" in err
    assert not (data_dir / "ALL_Taleqani").exists() and list(data_dir.iterdir()) == []


def test_a_missing_pinned_file_is_named(fake_kaggle, images, tmp_path):
    del images["Segmented/Benign/WBC-Benign-001.jpg"]
    FakeKaggleApi.archive = kaggle_zip(images)
    with pytest.raises(ChecksumError, match="lacks 1 of the 4 pinned files, first Segmented/Benign/WBC-Benign-001.jpg"):
        download_taleqani(tmp_path / "data")
    assert list((tmp_path / "data").iterdir()) == []


def test_a_member_escaping_the_folder_is_refused(fake_kaggle, images, tmp_path):
    FakeKaggleApi.archive = kaggle_zip(images, extra={"../Original/Benign/evil.jpg": b"x"})
    with pytest.raises(ChecksumError, match="escapes the extraction folder"):
        download_taleqani(tmp_path / "data")
    assert list((tmp_path / "data").iterdir()) == [] and not (tmp_path / "Original").exists()


def test_an_existing_dataset_folder_is_never_replaced(fake_kaggle, tmp_path, capsys):
    (tmp_path / "data" / "ALL_Taleqani").mkdir(parents=True)
    assert main(["taleqani", str(tmp_path / "data")]) == 2
    assert "ALL_Taleqani already exists" in _one_error_line(capsys) and FakeKaggleApi.calls == []


def test_without_credentials_one_line_says_how_to_set_them(fake_kaggle, monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    assert main(["taleqani", str(tmp_path / "data")]) == 2
    err = _one_error_line(capsys)
    assert err.startswith("error: no Kaggle credentials: download kaggle.json from https://www.kaggle.com/settings/api")
    assert str(kaggle_config_dir() / "kaggle.json") in err and str(tmp_path / "home") in err
    assert "KAGGLE_CONFIG_DIR" in err and "set KAGGLE_USERNAME and KAGGLE_KEY" in err
    assert FakeKaggleApi.calls == [] and not (tmp_path / "data").exists()


def test_credentials_the_client_cannot_use_are_one_line_without_its_help(fake_kaggle, monkeypatch, tmp_path,
                                                                          capsys):
    def refuse(self):
        print("Authentication required to call the Kaggle API. (a page of help)")
        raise SystemExit(1)

    monkeypatch.setattr(FakeKaggleApi, "authenticate", refuse)
    assert main(["taleqani", str(tmp_path / "data")]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "found no usable login in KAGGLE_USERNAME and KAGGLE_KEY" in captured.err
    assert "Authentication required" not in captured.out + captured.err


def test_kaggle_json_in_the_config_dir_counts_as_credentials(fake_kaggle, monkeypatch, tmp_path):
    monkeypatch.delenv("KAGGLE_USERNAME")
    assert kaggle_credentials() is None
    (tmp_path / "config" / "kaggle.json").parent.mkdir()
    (tmp_path / "config" / "kaggle.json").write_text('{"username": "someone", "key": "0123"}')
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "config"))
    assert kaggle_credentials() == str(tmp_path / "config" / "kaggle.json")


def test_without_the_kaggle_package_one_line_says_pip_install_kaggle(fake_kaggle, monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "kaggle", None)
    assert main(["taleqani", str(tmp_path / "data")]) == 2
    assert "pip install kaggle" in _one_error_line(capsys) and FakeKaggleApi.calls == []


def test_help_names_the_datasets_and_the_credentials(capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["--help"])
    out = capsys.readouterr().out
    assert stopped.value.code == 0 and "{bccd,taleqani}" in out and "KAGGLE_USERNAME" in out


def test_bccd_downloads_into_dir_verified_and_never_over_an_existing_copy(monkeypatch, tmp_path):
    files = {"BCCD/ImageSets/Main/train.txt": b"a\n", "LICENSE": b"MIT"}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"BCCD_Dataset-abc/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    manifest = Manifest(dataset="BCCD_Dataset", repository="Shenggan/BCCD_Dataset", commit="abc",
                        files={name: hashlib.sha256(data).hexdigest() for name, data in files.items()})
    monkeypatch.setattr(Manifest, "load", classmethod(lambda cls, name: manifest))
    fetched = []
    target = download_bccd(tmp_path, fetch=lambda url: fetched.append(url) or buffer.getvalue())
    assert target == tmp_path / "BCCD_Dataset" and (target / "LICENSE").read_bytes() == b"MIT"
    assert fetched == ["https://codeload.github.com/Shenggan/BCCD_Dataset/tar.gz/abc"]
    with pytest.raises(TargetExistsError, match="BCCD_Dataset already exists"):
        download_bccd(tmp_path, fetch=lambda url: pytest.fail("fetched over an existing copy"))
