"""Download Taleqani ALL from Kaggle (``mehradaria/leukemia``) with the official ``kaggle``
client and verify every file against the pinned manifest ``manifests/taleqani.json``.

The client is optional (``pip install kaggle``, or medsweep's ``kaggle`` extra). It is imported
only once the user's credentials were found, since importing it already tries to log in and
prints its own help when that fails. Its zip is downloaded and unpacked in a staging folder
next to the target; only a copy whose every file verified is renamed to ``DIR/ALL_Taleqani``,
so a failed download leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import io
import os
import shutil
import sys
import tempfile
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from trainables.datasets.download import ChecksumError, Manifest, refuse_existing
from trainables.datasets.taleqani_common import MANIFEST, SEGMENTATION_FOLDERS, manifest_path
from trainables.errors import MedsweepError

CLIENT_MODULE = "kaggle.api.kaggle_api_extended"
KAGGLE_SETTINGS_URL = "https://www.kaggle.com/settings/api"
# Token files the client reads from ~/.kaggle besides kaggle.json: an access token, and the
# OAuth credentials ``kaggle auth login`` writes.
KAGGLE_TOKEN_FILES = ("access_token", "access_token.txt", "credentials.json")


class KaggleClientMissingError(MedsweepError, ImportError):
    """The optional ``kaggle`` package is not installed (or does not import)."""


class KaggleCredentialsError(MedsweepError, PermissionError):
    """No Kaggle credentials are configured, or Kaggle refused them."""


class KaggleDownloadError(MedsweepError, RuntimeError):
    """The Kaggle client could not download the dataset."""


@dataclass(frozen=True)
class TaleqaniDownload:
    """What ``download_taleqani`` did: the verified copy's folder, its files per top folder,
    where the credentials came from, and how many archive members the manifest does not pin."""

    target: Path
    per_folder: dict[str, int]
    credentials: str
    ignored: int

    def summary(self) -> str:
        counts = ", ".join(f"{folder}/ {count:,}" for folder, count in sorted(self.per_folder.items()))
        left_out = (f"; {self.ignored} archive member(s) the manifest does not pin were left out"
                    if self.ignored else "")
        return (f"Downloaded from Kaggle (credentials: {self.credentials}), verified every file against the "
                f"pinned manifest and wrote {self.target} ({counts} files){left_out}. "
                f"Use it with --data-dir {self.target.parent}.")


def download_taleqani(directory: Path, *, manifest: Manifest | None = None) -> TaleqaniDownload:
    """Download Kaggle's ``mehradaria/leukemia`` into ``directory/ALL_Taleqani`` as
    ``{Original,Segmented}/<class>/*.jpg``, every file verified against ``manifest`` (default:
    the shipped one). An existing ``ALL_Taleqani`` is never replaced; on any error nothing is
    left there."""
    manifest = manifest or Manifest.load(MANIFEST)
    directory = Path(directory)
    target = directory / manifest.dataset
    refuse_existing(target)
    credentials = require_kaggle()
    api = authenticated_api(credentials)
    directory.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=directory))
    try:
        archive = fetch_kaggle_archive(api, manifest.kaggle, staging / "download")
        per_folder, ignored = unpack_verified(archive, manifest, staging / target.name)
        (staging / target.name).rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return TaleqaniDownload(target=target, per_folder=per_folder, credentials=credentials, ignored=ignored)


def require_kaggle() -> str:
    """Where the Kaggle credentials are, once the client is known to be installed; a one-line
    error saying what to install or configure otherwise."""
    if importlib.util.find_spec("kaggle") is None:
        raise KaggleClientMissingError("the Kaggle client is not installed: pip install kaggle "
                                       "(or pip install -e '.[kaggle]'), then rerun")
    credentials = kaggle_credentials()
    if credentials is None:
        raise KaggleCredentialsError(
            f"no Kaggle credentials: download kaggle.json from {KAGGLE_SETTINGS_URL} (the API section) and save "
            f"it as {kaggle_config_dir() / 'kaggle.json'} (chmod 600; KAGGLE_CONFIG_DIR names another folder), "
            f"or set KAGGLE_USERNAME and KAGGLE_KEY to the username and key in it, then rerun")
    return credentials


def kaggle_config_dir() -> Path:
    """Where the Kaggle client reads ``kaggle.json``, by the client's own rule:
    ``$KAGGLE_CONFIG_DIR``, else ``~/.kaggle``, else on Linux, when that does not exist,
    ``$XDG_CONFIG_HOME/kaggle`` (``~/.config/kaggle``)."""
    configured = os.environ.get("KAGGLE_CONFIG_DIR")
    if configured:
        return Path(configured).expanduser()
    home = Path.home() / ".kaggle"
    if sys.platform.startswith("linux") and not home.exists():
        return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "kaggle"
    return home


def kaggle_credentials() -> str | None:
    """Where the client will find credentials, or None: ``KAGGLE_USERNAME`` and
    ``KAGGLE_KEY``, ``KAGGLE_API_TOKEN``, ``kaggle.json`` in ``kaggle_config_dir()``, or a
    token file the client keeps in ``~/.kaggle``."""
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        return "KAGGLE_USERNAME and KAGGLE_KEY"
    if os.environ.get("KAGGLE_API_TOKEN"):
        return "KAGGLE_API_TOKEN"
    files = [kaggle_config_dir() / "kaggle.json", *(Path.home() / ".kaggle" / name for name in KAGGLE_TOKEN_FILES)]
    return next((str(path) for path in files if path.is_file()), None)


def authenticated_api(credentials: str) -> Any:
    """The client's ``KaggleApi``, logged in with the ``credentials`` found.

    Importing the client logs in already and, like ``authenticate``, prints a page of help
    when no login works; that output is held back, so a failure is our one line, and shown
    after a login that works (it may warn that kaggle.json is readable by others)."""
    notes = io.StringIO()
    try:
        with contextlib.redirect_stdout(notes):
            api = importlib.import_module(CLIENT_MODULE).KaggleApi()
            api.authenticate()
    except ImportError as exc:
        raise KaggleClientMissingError(f"the Kaggle client does not import ({exc}): pip install --upgrade kaggle, "
                                       f"then rerun") from exc
    except SystemExit as exc:        # the client calls exit(1) when no login works
        raise KaggleCredentialsError(f"the Kaggle client found no usable login in {credentials} (kaggle.json needs "
                                     f"\"username\" and \"key\"); get a new kaggle.json from {KAGGLE_SETTINGS_URL} "
                                     f"and rerun") from exc
    print(notes.getvalue(), end="")
    return api


def fetch_kaggle_archive(api: Any, dataset: str, folder: Path) -> Path:
    """Download ``dataset``'s zip into ``folder`` (the client names it ``<slug>.zip``). It is
    not unpacked by the client: unpacking is ours, file by file, verified."""
    folder.mkdir(parents=True)
    try:
        api.dataset_download_files(dataset, path=str(folder), quiet=False, unzip=False)
    except Exception as exc:         # the client raises requests', urllib3's and its own errors
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())
        raise KaggleDownloadError(f"the Kaggle download of {dataset} failed ({reason}); check the network and "
                                  f"that your account can open https://www.kaggle.com/datasets/{dataset}") from exc
    archive = folder / f"{dataset.rpartition('/')[2]}.zip"
    if not archive.is_file():
        raise KaggleDownloadError(f"the Kaggle client wrote no {archive.name} into {folder}; "
                                  f"found {sorted(p.name for p in folder.iterdir())}")
    return archive


def unpack_verified(archive: Path, manifest: Manifest, target: Path) -> tuple[dict[str, int], int]:
    """Write the manifest's files from the Kaggle zip into the new folder ``target``, each
    verified by its SHA-256; returns the files written per top folder and the number of
    archive members the manifest does not pin (left out). A differing or missing file is an
    error naming it."""
    written: set[str] = set()
    ignored = 0
    try:
        bundle = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as exc:
        raise ChecksumError(f"{archive.name} from Kaggle is not a zip archive ({exc}); download again") from exc
    with bundle:
        for member in bundle.infolist():
            if member.is_dir():
                continue
            relative = layout_path(member.filename)
            if relative not in manifest.files:
                ignored += 1
                continue
            _write_verified(bundle, member, relative, manifest.files[relative], target)
            written.add(relative)
    missing = sorted(set(manifest.files) - written)
    if missing:
        raise ChecksumError(f"the Kaggle archive lacks {len(missing)} of the {len(manifest.files)} pinned files, "
                            f"first {missing[0]}: it is not the release the manifest pins; nothing was kept")
    return dict(Counter(name.partition("/")[0] for name in written)), ignored


def _write_verified(bundle: zipfile.ZipFile, member: zipfile.ZipInfo, relative: str, expected: str,
                    target: Path) -> None:
    """Write one archive member to ``target/relative`` after checking its SHA-256."""
    try:
        data = bundle.read(member)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ChecksumError(f"{relative} (archive member {member.filename}) does not unpack ({exc}); "
                            f"the download is corrupt, nothing was kept: download again") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected:
        raise ChecksumError(f"{relative} (archive member {member.filename}): SHA-256 {digest} does not match the "
                            f"pinned manifest ({expected}); the download is corrupt or not the pinned release, "
                            f"nothing was kept")
    out = target / relative
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)


def layout_path(name: str) -> str | None:
    """An archive member's path as the manifest writes it (``Original/Pre/x.jpg``): the last
    three parts when they are ``Original`` or ``Segmented``, a class folder (under its canonical
    name) and a file, whatever top folder the zip has; None for anything else. A member whose
    path is absolute or climbs with ``..`` is refused."""
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts:
        raise ChecksumError(f"archive member {name!r} escapes the extraction folder; the archive is not safe "
                            f"to unpack, nothing was kept")
    if len(path.parts) < 3 or path.parts[-3] not in SEGMENTATION_FOLDERS:
        return None
    return manifest_path(PurePosixPath(*path.parts[-3:]))
