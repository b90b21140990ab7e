"""Where experiments live: a local or NFS directory, or a cloud URI (s3://, gs://).

Tune writes trial results and checkpoints there itself; this module writes medsweep's own
files (``sweep.json``, the audit, ``summary.csv``) beside them through pyarrow's filesystems, so
both kinds of storage behave the same.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs as pafs

from trainables.errors import ExperimentExistsError, ExperimentNotFoundError, MedsweepError

# Seconds a cloud --storage has to answer its first request before the run gives up on it.
CLOUD_PROBE_SECONDS = 20.0
NETWORK_FILESYSTEMS = ("nfs", "nfs4", "cifs", "smb3", "lustre", "gpfs", "beegfs", "ceph", "glusterfs",
                       "fuse.s3fs", "fuse.gcsfuse", "fuse.sshfs", "efs")


class StorageError(MedsweepError, ValueError):
    """Storage that cannot serve the requested run."""


def is_uri(storage: str) -> bool:
    return "://" in storage


@dataclass(frozen=True)
class ExperimentLocation:
    """One experiment directory: ``<storage>/<name>``."""

    storage: str
    name: str

    @property
    def storage_path(self) -> str:
        """What Tune's ``RunConfig.storage_path`` takes: a URI, or an absolute local path."""
        return self.storage.rstrip("/") if is_uri(self.storage) else str(Path(self.storage).resolve())

    @property
    def path(self) -> str:
        return f"{self.storage_path}/{self.name}"

    @property
    def local_dir(self) -> Path | None:
        return None if is_uri(self.storage) else Path(self.path)

    def _fs(self) -> tuple[pafs.FileSystem, str]:
        if is_uri(self.storage):
            return pafs.FileSystem.from_uri(self.path)
        return pafs.LocalFileSystem(), self.path

    def write_text(self, relative: str, text: str) -> None:
        fs, base = self._fs()
        fs.create_dir(base, recursive=True)
        with fs.open_output_stream(f"{base}/{relative}") as stream:
            stream.write(text.encode())

    def read_text(self, relative: str) -> str:
        fs, base = self._fs()
        with fs.open_input_stream(f"{base}/{relative}") as stream:
            return stream.read().decode()

    def exists(self, relative: str = "") -> bool:
        fs, base = self._fs()
        target = f"{base}/{relative}" if relative else base
        return fs.get_file_info(target).type != pafs.FileType.NotFound


def check_writable_storage(*, storage: str) -> None:
    """Fail at once, before the data audit and before Ray, when a local ``storage`` cannot hold
    experiments: it is a file, or the nearest part of it that exists is a file or a directory
    this user cannot write (so the experiment directory could not be created). Cloud URIs are
    left to their filesystem, which reports its own errors."""
    if is_uri(storage):
        return
    target = Path(storage).resolve()
    # os.path.exists, unlike Path.exists, says False (not raises) for paths it may not look into.
    existing = next(path for path in (target, *target.parents) if os.path.exists(path))
    if not existing.is_dir():
        raise StorageError(f"--storage {storage}: {existing} is a file, not a directory, so experiments cannot be "
                           f"written there; pass --storage a directory (it is created when missing) or move "
                           f"the file away")
    if not os.access(existing, os.W_OK | os.X_OK):
        created = "" if existing == target else f", so {target} cannot be created in it"
        raise StorageError(f"--storage {storage}: the directory {existing} is not writable by this user{created}; "
                           f"pass --storage a directory you can write (for example ./runs) or fix its permissions")


def check_cloud_storage(storage: str, *, timeout: float = CLOUD_PROBE_SECONDS) -> None:
    """Fail at once, before the data audit and before Ray, when a cloud ``storage`` URI names a
    scheme pyarrow has no filesystem for, or its bucket does not answer within ``timeout``
    seconds (a missing bucket, no credentials, no network: the SDKs retry for minutes)."""
    outcome: list[BaseException | None] = []

    def probe() -> None:
        try:
            filesystem, base = pafs.FileSystem.from_uri(storage)
            filesystem.get_file_info(base)
            outcome.append(None)
        except Exception as exc:  # pyarrow's ArrowInvalid (a ValueError), OSError from the SDK
            outcome.append(exc)

    worker = threading.Thread(target=probe, name="storage-probe", daemon=True)
    worker.start()
    worker.join(timeout)
    scheme = storage.split("://", 1)[0]
    fix = "check the bucket's name, your credentials and the network, or pass --storage a local directory"
    if not outcome:
        raise StorageError(f"--storage {storage}: no answer within {timeout:.0f} s; {fix}")
    error = outcome[0]
    if error is None:
        return
    if isinstance(error, ValueError) and "Unrecognized filesystem type" in str(error):
        raise StorageError(f"--storage {storage}: unknown scheme {scheme}://; use a local or NFS directory, "
                           f"s3://BUCKET/PATH or gs://BUCKET/PATH")
    reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
    raise StorageError(f"--storage {storage}: cannot be reached ({reason}); {fix}")


def check_experiment_name(name: str) -> None:
    """An experiment name is one folder inside ``--storage``: not empty, no path separator,
    not ``.`` or ``..`` (``--name ../x`` would write outside the storage)."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise StorageError(f"--name {name!r}: must be a single folder name inside --storage (no '/', not '.' "
                           f"or '..'); use --storage to choose where experiments go")


def list_experiments(storage: str, prefix: str, marker: str) -> list[ExperimentLocation]:
    """Experiments under ``storage`` whose name starts with ``prefix`` and that hold ``marker``,
    oldest first."""
    probe = ExperimentLocation(storage, "")
    fs, base = (pafs.FileSystem.from_uri(probe.storage_path) if is_uri(storage)
                else (pafs.LocalFileSystem(), probe.storage_path))
    if fs.get_file_info(base).type == pafs.FileType.NotFound:
        return []
    infos = fs.get_file_info(pafs.FileSelector(base, allow_not_found=True))
    found = []
    for info in infos:
        if info.type == pafs.FileType.Directory and info.base_name.startswith(prefix):
            location = ExperimentLocation(storage, info.base_name)
            if location.exists(marker):
                found.append((info.mtime_ns or 0, info.base_name, location))
    return [location for *_, location in sorted(found, key=lambda item: item[:2])]


def filesystem_type(path: Path) -> str:
    """The type of the filesystem holding ``path``, from /proc/mounts ('' when unknown)."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return ""
    target = os.path.realpath(path)
    best, kind = "", ""
    for line in mounts:
        parts = line.split()
        if len(parts) >= 3 and (target == parts[1] or target.startswith(parts[1].rstrip("/") + "/")):
            if len(parts[1]) > len(best):
                best, kind = parts[1], parts[2]
    return kind


def check_shared_storage(storage: str, *, nodes: int, declared_shared: bool) -> None:
    """Fail before any trial when several nodes would each write to their own local disk."""
    if nodes <= 1 or is_uri(storage) or declared_shared:
        return
    kind = filesystem_type(Path(storage).resolve().parent if not Path(storage).exists() else Path(storage))
    if kind in NETWORK_FILESYSTEMS:
        return
    raise StorageError(
        f"this Ray cluster has {nodes} nodes but --storage {storage} is a local directory "
        f"(filesystem {kind or 'unknown'}): each node would keep its own checkpoints, and "
        f"retries and --resume would lose them. Set --storage to a cloud URI (s3://bucket/runs, "
        f"gs://bucket/runs) or to an NFS path mounted on every node; if the path is shared in a "
        f"way medsweep cannot see, add --storage-shared.")


# What marks a directory as a medsweep experiment (the resolved sweep and its environment).
SWEEP_FILE = "sweep.json"
# The study file the experiment ran (a copy), which --resume and the report read its spec from.
STUDY_FILE = "study.yaml"
# Tune writes this when it starts an experiment; Tuner.restore reads it (it is a pickle, so
# --resume trusts the experiment directory; the analysis never reads it).
TUNE_STATE_FILE = "tuner.pkl"
# Suffixes ``create_experiment`` tries on a timestamp name before it gives up.
MAX_SUFFIX = 1000


def new_experiment(storage: str, sweep: str, name: str | None) -> ExperimentLocation:
    """``<storage>/<name>``, or ``<storage>/<sweep>_<timestamp>`` without a name; never an
    existing experiment, and never in local storage that cannot be written or cloud storage
    that does not answer. A check made before the data audit: nothing is created, so the name
    is only claimed by ``create_experiment``."""
    check_storage(storage)
    if name:
        check_experiment_name(name)
        location = ExperimentLocation(storage, name)
        if location.exists():
            refuse_existing(location)
        return location
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidate = ExperimentLocation(storage, f"{sweep}_{stamp}")
    suffix = 1
    while candidate.exists():
        suffix += 1
        candidate = ExperimentLocation(storage, f"{sweep}_{stamp}-{suffix}")
    return candidate


def create_experiment(storage: str, sweep: str, name: str | None) -> ExperimentLocation:
    """Choose the experiment's name and create its directory in one step, so no two runs share
    one: ``<storage>/<name>``, refused with ``ExperimentExistsError`` when it exists, or
    ``<storage>/<sweep>_<timestamp>``, with ``-2``, ``-3`` … added while another run holds it.

    Local (and NFS) storage: ``os.mkdir`` fails when the directory exists, so of two runs that
    choose a name at the same instant exactly one gets it. Cloud storage (s3://, gs://) has no
    such operation through pyarrow: the name is checked and then created, so two runs that pick
    the same name within that moment can still share it; give concurrent cloud runs distinct
    ``--name``s."""
    check_storage(storage)
    if name:
        check_experiment_name(name)
    stamped = f"{sweep}_{time.strftime('%Y%m%d-%H%M%S')}"
    for suffix in range(1, MAX_SUFFIX + 1):
        candidate = name or stamped + ("" if suffix == 1 else f"-{suffix}")
        location = ExperimentLocation(storage, candidate)
        if claim(location):
            return location
        if name:
            refuse_existing(location)
    raise StorageError(f"--storage {storage}: {MAX_SUFFIX} experiments of {sweep} named after this second "
                       f"already exist; pass --name, or --storage another directory")


def check_storage(storage: str) -> None:
    """Local storage that can be written, or cloud storage that answers (see the checks)."""
    check_writable_storage(storage=storage)
    if is_uri(storage):
        check_cloud_storage(storage)


def claim(location: ExperimentLocation) -> bool:
    """Create ``location``'s directory; False when it already exists (another run's). Atomic
    on local storage only (see ``create_experiment``)."""
    if location.local_dir is None:
        if location.exists():
            return False
        fs, base = location._fs()
        fs.create_dir(base, recursive=True)
        return True
    location.local_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(location.local_dir)
    except FileExistsError:
        return False
    return True


def refuse_existing(location: ExperimentLocation) -> None:
    """Raise the error that says why ``--name`` cannot start a new run at ``location``, which exists."""
    name = location.name
    if not has_tune_state(location):
        raise ExperimentExistsError(f"--name {name}: {location.path} already exists but holds no Tune state "
                                    f"({TUNE_STATE_FILE}): a run that stopped before any trial started (or one "
                                    f"starting in it right now), so there is nothing to resume; remove that "
                                    f"folder, or choose another --name")
    raise ExperimentExistsError(f"--name {name}: {location.path} already exists; continue it with "
                                f"--resume --name {name}, or choose another --name")


def find_experiment(storage: str, sweep: str, name: str | None) -> ExperimentLocation:
    """The experiment to resume: ``--name`` if given, else the newest of this sweep that holds
    Tune's state (a run that stopped before Tune started has nothing to resume)."""
    if is_uri(storage):
        check_cloud_storage(storage)
    if name:
        check_experiment_name(name)
        location = ExperimentLocation(storage, name)
        if not location.exists(SWEEP_FILE):
            raise ExperimentNotFoundError(f"--resume --name {name}: {location.path} is not a medsweep experiment "
                                          f"(no {SWEEP_FILE}); experiments are under --storage {storage}")
        if not has_tune_state(location):
            raise ExperimentNotFoundError(f"--resume --name {name}: {location.path} holds no Tune state "
                                          f"({TUNE_STATE_FILE}): the run stopped before any trial started; "
                                          f"remove that folder and start a new run, or start one with another "
                                          f"--name")
        return location
    candidates = [c for c in list_experiments(storage, f"{sweep}_", SWEEP_FILE) if has_tune_state(c)]
    if not candidates:
        raise ExperimentNotFoundError(f"--resume: no experiment of {sweep} with Tune state under {storage}; "
                                      f"pass --storage or --name")
    return candidates[-1]


def has_tune_state(location: ExperimentLocation) -> bool:
    return location.exists(TUNE_STATE_FILE)


def discard_unstarted(location: ExperimentLocation) -> bool:
    """Remove ``location`` when it holds no Tune state (a run that failed or was stopped before
    Tune started: only its audit and ``sweep.json``, nothing to resume), so the name can be used
    again. True when something was removed."""
    if not location.exists() or has_tune_state(location):
        return False
    fs, base = location._fs()
    fs.delete_dir(base)
    return True
