"""Locate a dataset on disk, or download it once into the cache and verify it.

Search order, first match wins: an explicit ``--data-dir``, the ``MEDSWEEP_DATA_DIR``
environment variable, then the user cache (``MEDSWEEP_CACHE_DIR`` or ``~/.cache/medsweep``).
A download is pinned to one upstream commit and every file is checked against the SHA-256
manifest shipped in ``manifests/``; only files named in the manifest are extracted. A copy found
on disk is compared with the same manifest when it claims to be the pinned one
(``compare_with_manifest``): differences are warnings in the data audit, not errors, since a
user may fix labels on purpose.

``python -m trainables.datasets.download {bccd,taleqani} DIR`` downloads a dataset into DIR
(``__main__``; Taleqani through the Kaggle client, ``kaggle``); ``regenerate`` rewrites a
manifest's file list from a copy on disk.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path, PurePosixPath

from trainables.errors import MedsweepError

DATA_DIR_ENV = "MEDSWEEP_DATA_DIR"
CACHE_DIR_ENV = "MEDSWEEP_CACHE_DIR"


class DataNotFoundError(MedsweepError, FileNotFoundError):
    """The dataset is in none of the searched places and could not be downloaded."""


class ChecksumError(MedsweepError, RuntimeError):
    """A downloaded file is missing or differs from the shipped manifest."""


class TargetExistsError(MedsweepError, FileExistsError):
    """A download would replace a dataset folder that is already there."""


@dataclass(frozen=True, kw_only=True)
class Manifest:
    """The pinned upstream source of a dataset and the SHA-256 of each of its files (paths
    relative to the dataset folder).

    A dataset on GitHub is pinned to ``repository`` at ``commit`` (its download is that
    commit's tarball); one on Kaggle names its ``kaggle`` dataset (``owner/slug``) instead, and
    ``provenance`` says which copy the digests were taken from."""

    dataset: str
    files: dict[str, str]
    repository: str = ""
    commit: str = ""
    kaggle: str = ""
    provenance: str = ""

    @property
    def archive_url(self) -> str:
        return f"https://codeload.github.com/{self.repository}/tar.gz/{self.commit}"

    @property
    def pinned(self) -> str:
        """The upstream version the audit names: ``commit d272fb14`` or ``Kaggle owner/slug``."""
        return f"commit {self.commit[:8]}" if self.commit else f"Kaggle {self.kaggle}"

    @classmethod
    def load(cls, name: str) -> Manifest:
        """The manifest shipped as ``manifests/<name>.json`` (keys that are no field, such as
        ``license``, are for people only)."""
        doc = json.loads(manifest_resource(name).read_text())
        return cls(**{item.name: doc[item.name] for item in fields(cls) if item.name in doc})


def manifest_resource(name: str) -> Traversable:
    """The shipped ``manifests/<name>.json``."""
    return resources.files("trainables.datasets").joinpath(f"manifests/{name}.json")


def cache_dir() -> Path:
    """The user cache directory for downloads and decoded-patch caches."""
    configured = os.environ.get(CACHE_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "medsweep"


def candidate_roots(data_dir: str | os.PathLike | None) -> list[tuple[str, Path]]:
    """Where to look for datasets, in priority order, each with the setting that named it."""
    found: list[tuple[str, Path]] = []
    if data_dir:
        found.append(("--data-dir", Path(data_dir).expanduser()))
    if os.environ.get(DATA_DIR_ENV):
        found.append((DATA_DIR_ENV, Path(os.environ[DATA_DIR_ENV]).expanduser()))
    found.append(("cache", cache_dir()))
    return found


def fetch_url(url: str, *, timeout: float = 60.0) -> bytes:
    """Download ``url`` into memory (the only network access of the data layer)."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def locate_or_download(name: str, *, data_dir: str | os.PathLike | None,
                       marker: str, fetch: Callable[[str], bytes] = fetch_url) -> Path:
    """Return the directory of dataset ``name`` (``<root>/<name>``), downloading it if needed.

    An explicit ``data_dir`` is the only place looked at: a wrong path is an error, never a
    silent fall-back to other data. ``marker`` is a path inside the dataset whose presence means the dataset is there.
    """
    if data_dir:
        if not (Path(data_dir).expanduser() / name / marker).exists():
            raise DataNotFoundError(
                f"--data-dir {data_dir} has no {name}/{marker}. Point --data-dir at the directory "
                f"that holds {name}/ (for example ../shared/data).")
        return Path(data_dir).expanduser() / name
    roots = candidate_roots(None)
    for _, root in roots:
        if (root / name / marker).exists():
            return root / name
    manifest = Manifest.load(_manifest_name(name))
    target = cache_dir() / name
    try:
        archive = fetch(manifest.archive_url)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        searched = "\n".join(f"  {label}: {root / name}" for label, root in roots)
        raise DataNotFoundError(
            f"{name} was not found and could not be downloaded ({exc}).\nSearched:\n{searched}\n"
            f"Fix: pass --data-dir DIR or set {DATA_DIR_ENV}=DIR, where DIR holds {name}/ "
            f"(for example {DATA_DIR_ENV}=../shared/data).") from exc
    extract_verified(archive, manifest, target)
    return target


def download_bccd(directory: Path, *, fetch: Callable[[str], bytes] = fetch_url) -> Path:
    """Download BCCD at its pinned commit into ``directory/BCCD_Dataset`` and verify every
    file (``extract_verified``); an existing ``BCCD_Dataset`` there is never replaced."""
    manifest = Manifest.load("bccd")
    target = Path(directory) / manifest.dataset
    refuse_existing(target)
    try:
        archive = fetch(manifest.archive_url)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise DataNotFoundError(f"could not download {manifest.archive_url} ({exc}); check the network "
                                f"connection and retry") from exc
    extract_verified(archive, manifest, target)
    return target


def refuse_existing(target: Path) -> None:
    """Stop before downloading when ``target`` exists: a download never replaces data a user
    may have fixed or be reading."""
    if target.exists():
        raise TargetExistsError(f"{target} already exists; use it as it is (pass --data-dir {target.parent}), "
                                f"or move it away and download again")


def _manifest_name(dataset_dir: str) -> str:
    return {"BCCD_Dataset": "bccd"}[dataset_dir]


def extract_verified(archive: bytes, manifest: Manifest, target: Path) -> None:
    """Extract the manifest's files from a GitHub tarball into ``target``, verifying each.

    Members outside the manifest are ignored; absolute paths, ``..`` and links are refused.
    Nothing is left at ``target`` unless every file verified.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        seen: set[str] = set()
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:*") as tar:
            for member in tar.getmembers():
                relative = _relative_member_path(member)
                if relative is None or relative not in manifest.files:
                    continue
                if not member.isfile():
                    raise ChecksumError(f"archive member {member.name} is not a regular file")
                data = tar.extractfile(member).read()
                digest = hashlib.sha256(data).hexdigest()
                if digest != manifest.files[relative]:
                    raise ChecksumError(
                        f"{relative}: SHA-256 {digest} does not match the manifest "
                        f"({manifest.files[relative]}); the download is corrupt or not commit "
                        f"{manifest.commit}. Delete {target} and retry, or use --data-dir.")
                out = staging / relative
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(data)
                seen.add(relative)
        missing = sorted(set(manifest.files) - seen)
        if missing:
            raise ChecksumError(f"the archive lacks {len(missing)} manifest file(s), "
                                f"first: {missing[:3]}")
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def compare_with_manifest(manifest: Manifest, *, digests: Mapping[str, str],
                          read_by_reader: Callable[[str], bool]) -> dict:
    """How a copy on disk differs from the pinned manifest, as the audit keeps it.

    ``digests`` maps each file the reader reads (path relative to the dataset folder, as the
    manifest writes it) to its SHA-256; ``read_by_reader`` picks the manifest's files the
    reader would read (the rest, a licence say, are not compared). The copy claims to be the
    pinned one when more than half of those files are present; then the result lists the
    files that differ, the ones missing, and the ones read that the manifest lacks (an
    extra annotation or image). Otherwise it says why nothing was compared."""
    expected = {name: digest for name, digest in manifest.files.items() if read_by_reader(name)}
    present = [name for name in expected if name in digests]
    check = {"manifest": manifest.dataset, "pinned": manifest.pinned, "expected": len(expected)}
    if 2 * len(present) <= len(expected):
        return check | {"compared": False, "present": len(present)}
    return check | {"compared": True,
                    "differing": sorted(name for name in present if digests[name] != expected[name]),
                    "missing": sorted(set(expected) - set(digests)),
                    "extra": sorted(set(digests) - set(expected))}


def manifest_differences(check: dict) -> list[str]:
    """One line per file of a ``compare_with_manifest`` result that differs from the pinned
    copy (none when nothing was compared)."""
    if not check.get("compared"):
        return []
    return ([f"{name}: SHA-256 differs from the pinned manifest" for name in check["differing"]]
            + [f"{name}: in the pinned manifest but missing" for name in check["missing"]]
            + [f"{name}: read, but not in the pinned manifest (an extra file)" for name in check["extra"]])


def format_manifest_check(check: dict) -> list[str]:
    """Lines for the audit's text form of a ``compare_with_manifest`` result."""
    if not check:
        return []
    pinned = f"the pinned SHA-256 manifest of {check['manifest']} ({check['pinned']})"
    if not check["compared"]:
        return [f"Manifest check: not compared with {pinned}: only {check['present']} of the "
                f"{check['expected']} files it pins for reading are present, so this is not the pinned copy."]
    differences = manifest_differences(check)
    if not differences:
        return [f"Manifest check: all {check['expected']} files read match {pinned}."]
    return ([f"Manifest check: {len(differences)} file(s) differ from {pinned} (a warning: the data "
             f"is used as it is, since labels may have been fixed on purpose; --strict-data refuses it):"]
            + [f"  {line}" for line in differences])


def _relative_member_path(member: tarfile.TarInfo) -> str | None:
    """The member's path below the archive's top folder, or None; refuses escapes."""
    path = PurePosixPath(member.name)
    if path.is_absolute() or ".." in path.parts:
        raise ChecksumError(f"archive member {member.name!r} escapes the extraction directory")
    if member.issym() or member.islnk():
        return None
    if len(path.parts) < 2:
        return None
    return PurePosixPath(*path.parts[1:]).as_posix()
