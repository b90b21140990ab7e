"""Locate a dataset on disk, or download it once into the cache and verify it.

Search order, first match wins: an explicit ``--data-dir``, the ``MEDSWEEP_DATA_DIR``
environment variable, then the user cache (``MEDSWEEP_CACHE_DIR`` or ``~/.cache/medsweep``).
A download is pinned to one upstream commit and every file is checked against the SHA-256
manifest shipped in ``manifests/``; only files named in the manifest are extracted.
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
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path, PurePosixPath
from trainables.errors import MedsweepError

DATA_DIR_ENV = "MEDSWEEP_DATA_DIR"
CACHE_DIR_ENV = "MEDSWEEP_CACHE_DIR"


class DataNotFoundError(MedsweepError, FileNotFoundError):
    """The dataset is in none of the searched places and could not be downloaded."""


class ChecksumError(MedsweepError, RuntimeError):
    """A downloaded file is missing or differs from the shipped manifest."""


@dataclass(frozen=True)
class Manifest:
    """The pinned upstream source of a dataset and the SHA-256 of each of its files."""

    dataset: str
    repository: str
    commit: str
    files: dict[str, str]

    @property
    def archive_url(self) -> str:
        return f"https://codeload.github.com/{self.repository}/tar.gz/{self.commit}"

    @classmethod
    def load(cls, name: str) -> "Manifest":
        text = resources.files("trainables.datasets").joinpath(f"manifests/{name}.json").read_text()
        doc = json.loads(text)
        return cls(dataset=doc["dataset"], repository=doc["repository"], commit=doc["commit"],
                   files=doc["files"])


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
