"""What produced a result: medsweep's commit, the runtime packages, the machine and the data.

Recorded once per experiment as ``environment`` in ``sweep.json``; a resumed sweep and the report
compare it with their own, so a result is never silently mixed from two code or package versions.
The item ids of every split go into ``splits.json`` beside it (as nnU-Net's
``splits_final.json``), and a resume or a report refuses data whose fingerprint or split lists
differ from those recorded, unless told to go on (``--allow-data-change``).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from sweeps.storage import SWEEP_FILE, ExperimentLocation
from trainables.errors import MedsweepError

REPOSITORY = Path(__file__).resolve().parents[1]
DISTRIBUTION = "medsweep"
# Recorded even where the installed metadata does not list them (an editable checkout whose
# requirements changed since it was installed).
CORE_PACKAGES = ("torch", "torchvision", "ray", "timm", "albumentations", "numpy", "scikit-learn", "optuna")
# Compared between a run and a later resume or report; the rest is informative.
COMPARED = ("medsweep_commit", "medsweep_dirty", "packages", "python")
# The item ids of every split the sweep trained on, per data variant.
SPLITS_FILE = "splits.json"
# Every resume that went on with changed data (``--allow-data-change``), for the report.
DATA_CHANGES_FILE = "data_changes.json"
# Item ids named in one line about a split that changed.
NAMED_ITEMS = 1


class DataChangedError(MedsweepError, ValueError):
    """The data read today differs from what the experiment recorded (fingerprint or splits)."""


class SplitsFileError(MedsweepError, ValueError):
    """An experiment's ``splits.json`` that cannot be read as the split lists a run writes."""


def capture_environment(*, data, data_dir: str | None) -> dict[str, Any]:
    """The environment of a run that trains on ``data`` (a ``SweepData``) read from ``data_dir``."""
    commit, dirty = medsweep_commit()
    return {"medsweep_commit": commit, "medsweep_dirty": dirty, "packages": package_versions(),
            "python": platform.python_version(), "platform": platform.platform(), "gpus": gpu_models(),
            "data": data_record(data, data_dir=data_dir)}


def code_and_packages() -> dict[str, Any]:
    """The part of the environment a later run must share (see ``COMPARED``)."""
    commit, dirty = medsweep_commit()
    return {"medsweep_commit": commit, "medsweep_dirty": dirty, "packages": package_versions(),
            "python": platform.python_version()}


def medsweep_commit() -> tuple[str | None, bool | None]:
    """The checkout's commit and whether its files differ from it (None outside git): a changed
    tracked file, or an untracked one git does not ignore (a new module the run imports is code
    the commit does not hold)."""
    if shutil.which("git") is None or not (REPOSITORY / ".git").exists():
        return None, None
    try:
        commit = _git("rev-parse", "HEAD")
        dirty = bool(_git("status", "--porcelain", "--untracked-files=normal"))
    except (OSError, subprocess.CalledProcessError):
        return None, None
    return commit, dirty


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(REPOSITORY), *args], capture_output=True, text=True, check=True,
                          timeout=10).stdout.strip()


def runtime_requirements() -> list[str]:
    """medsweep's runtime dependencies by name, from its installed metadata plus ``CORE_PACKAGES``."""
    try:
        requires = metadata.requires(DISTRIBUTION) or []
    except metadata.PackageNotFoundError:
        requires = []
    names = [re.match(r"[A-Za-z0-9_.\-]+", item).group(0) for item in requires if "extra ==" not in item]
    return sorted(set(CORE_PACKAGES) | set(names), key=str.lower)


def package_versions() -> dict[str, str | None]:
    """name → installed version (None when not installed) of every runtime dependency."""
    versions = {}
    for name in runtime_requirements():
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def gpu_models() -> list[str]:
    """The driver machine's GPU models, read with nvidia-smi so the driver opens no CUDA context
    (trials on a cluster may run on other GPUs; Ray records where each trial ran)."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        listed = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                                text=True, check=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in listed.splitlines() if line.strip()]


def data_record(data, *, data_dir: str | None) -> dict[str, Any]:
    """Where the data was read from and, per prepared variant, the fingerprint of the decoded
    data (the patch cache's key) and a hash of which samples each split holds."""
    given = data_dir or os.environ.get("MEDSWEEP_DATA_DIR")
    variants = {}
    for key, variant in data.variants.items():
        audit = data.audits[key]
        variants[str(key)] = {"fingerprint": variant.fingerprint, "root": audit.root,
                              "split_manifest_sha256": split_manifest_hash(variant)}
    return {"dataset": data.audit.dataset, "data_dir": str(Path(given).resolve()) if given else None,
            "variants": variants}


def split_manifest_hash(variant) -> str:
    """SHA-256 of the sorted sample sources of each split the sweep received."""
    manifest = {name: sorted(map(str, split.sources)) for name, split in variant.splits.items()}
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()


def recorded_environment(experiment_dir: Path) -> dict[str, Any] | None:
    """The ``environment`` an experiment's ``sweep.json`` records (None for older experiments)."""
    return json.loads((Path(experiment_dir) / "sweep.json").read_text()).get("environment")


def recorded_data_dir(recorded: dict[str, Any] | None) -> str | None:
    """The data directory the sweep read (None: it used ``MEDSWEEP_DATA_DIR``'s absence, the cache)."""
    return (recorded or {}).get("data", {}).get("data_dir")


def environment_differences(saved: dict[str, Any] | None, current: dict[str, Any]) -> list[str]:
    """One line per difference between a recorded environment and this one, on ``COMPARED``."""
    if not saved:
        return ["the experiment records no environment (written by an older medsweep)"]
    lines = []
    for key in ("medsweep_commit", "medsweep_dirty", "python"):
        if saved.get(key) != current.get(key):
            lines.append(f"{key}: {saved.get(key)} then, {current.get(key)} now")
    before, now = saved.get("packages", {}), current.get("packages", {})
    for name in sorted(set(before) | set(now), key=str.lower):
        if before.get(name) != now.get(name):
            lines.append(f"{name}: {before.get(name)} then, {now.get(name)} now")
    return lines


def mismatch_warning(saved: dict[str, Any] | None, *, doing: str) -> str | None:
    """A warning naming every difference between ``saved`` and this process's code and packages."""
    differences = environment_differences(saved, code_and_packages())
    if not differences:
        return None
    return (f"warning: {doing} under a different environment than the experiment was run with:\n  "
            + "\n  ".join(differences) + "\nResults may not be comparable with the experiment's own.")


def split_lists(data) -> dict[str, dict[str, list[str]]]:
    """Per variant (keyed as in ``data_record``), each split's item ids: the sorted distinct
    sources of its samples (an image id, even where a sample is one patch of it)."""
    return {str(key): {name: sorted(set(map(str, split.sources))) for name, split in variant.splits.items()}
            for key, variant in data.variants.items()}


def write_splits(location: ExperimentLocation, data) -> None:
    """Write ``splits.json`` into the experiment: the item ids of every split of ``data`` (the
    prepared ``SweepData`` the trials receive), so a resume or a report can name what changed."""
    document = {"dataset": data.audit.dataset, "axis": data.axis, "variants": split_lists(data)}
    location.write_text(SPLITS_FILE, json.dumps(document, indent=1))


@dataclass(frozen=True)
class DataCheck:
    """What was compared with the experiment's record (``compared``) and every difference found."""

    compared: str
    changes: tuple[str, ...] = ()


def check_data_unchanged(experiment: ExperimentLocation | Path, data, *, allow_change: bool) -> DataCheck:
    """Compare ``data`` (a ``SweepData`` read today) with the fingerprints ``sweep.json`` recorded
    and the split lists of ``splits.json``; raise ``DataChangedError`` naming each difference
    unless ``allow_change``, then the differences are returned for the caller to record. An
    experiment written before ``splits.json`` existed is compared on its fingerprints only."""
    location = as_location(experiment)
    recorded = (recorded_environment_at(location) or {}).get("data", {}).get("variants")
    if not recorded:
        return DataCheck("nothing: the experiment records no data fingerprint (written by an older medsweep)")
    changes = fingerprint_changes(recorded, data)
    if location.exists(SPLITS_FILE):
        compared = f"data fingerprint and the split lists of {SPLITS_FILE}"
        changes += split_changes(recorded_splits(location), data)
    else:
        compared = f"data fingerprint only: no {SPLITS_FILE} (written before medsweep recorded its splits)"
    if changes and not allow_change:
        raise DataChangedError(
            f"{location.path}: the data read today differs from what the sweep recorded ({compared}): "
            f"{'; '.join(changes)}. Point --data-dir at the data the sweep read (sweep.json records its "
            f"directory) or restore it there; or add --allow-data-change to go on anyway (the change is "
            f"recorded in the report)")
    return DataCheck(compared, tuple(changes))


def recorded_splits(location: ExperimentLocation) -> dict[str, dict[str, list[str]]]:
    """The split lists of the experiment's ``splits.json`` (variant → split → item ids)."""
    try:
        variants = json.loads(location.read_text(SPLITS_FILE))["variants"]
        if isinstance(variants, dict) and all(isinstance(splits, dict) for splits in variants.values()):
            return variants
    except (ValueError, KeyError, TypeError):
        pass
    raise SplitsFileError(f"{location.path}/{SPLITS_FILE}: not the split lists a run writes ({{\"variants\": "
                          f"{{variant: {{split: [item ids]}}}}}}); restore it from a copy of the experiment, or "
                          f"remove it to compare the data fingerprint only")


def as_location(experiment: ExperimentLocation | Path) -> ExperimentLocation:
    """An experiment given as a local directory, as the storage's ``ExperimentLocation``."""
    if isinstance(experiment, ExperimentLocation):
        return experiment
    directory = Path(experiment).resolve()
    return ExperimentLocation(str(directory.parent), directory.name)


def recorded_environment_at(location: ExperimentLocation) -> dict[str, Any] | None:
    """``recorded_environment`` of an experiment in any storage (None without ``sweep.json``)."""
    if not location.exists(SWEEP_FILE):
        return None
    return json.loads(location.read_text(SWEEP_FILE)).get("environment")


def variant_label(data, key: str) -> str:
    """``"loading_option 2: "`` for a variant of a dataset with a variant axis, else ``""``."""
    return "" if key == "None" else f"{data.axis or 'variant'} {key}: "


def fingerprint_changes(recorded: dict[str, Any], data) -> list[str]:
    """One line per variant whose fingerprint differs, or that only one side holds."""
    today = {str(key): variant.fingerprint for key, variant in data.variants.items()}
    lines = []
    for key in sorted(set(recorded) | set(today)):
        label = variant_label(data, key)
        if key not in today:
            lines.append(f"{label}recorded by the sweep but not prepared today")
        elif key not in recorded:
            lines.append(f"{label}prepared today but not recorded by the sweep")
        elif recorded[key].get("fingerprint") != today[key]:
            lines.append(f"{label}fingerprint differs: {recorded[key].get('fingerprint')} recorded, {today[key]} "
                         f"today (the dataset's files or its reading settings changed)")
    return lines


def split_changes(recorded: dict[str, dict[str, list[str]]], data) -> list[str]:
    """One line per recorded split whose item ids differ today: how many were removed and
    added, naming the first of each. Splits recorded for no variant prepared today are left to
    ``fingerprint_changes``; splits today's data holds beyond those recorded (the report's
    ``test``) are not compared."""
    today = split_lists(data)
    lines = []
    for key, splits in sorted(recorded.items()):
        for name, ids in splits.items():
            if key not in today:
                continue
            label = f"{variant_label(data, key)}split {name}"
            if name not in today[key]:
                lines.append(f"{label}: recorded with {len(ids)} items, missing today")
            elif line := _difference(set(ids), set(today[key][name])):
                lines.append(f"{label}: {line}")
    return lines


def _difference(recorded: set[str], today: set[str]) -> str:
    """``"3 items removed (first: a), 2 added (first: b)"``, or ``""`` when the sets agree."""
    parts = [f"{len(items)} item(s) {verb} (first: {', '.join(sorted(items)[:NAMED_ITEMS])})"
             for items, verb in ((recorded - today, "removed"), (today - recorded, "added")) if items]
    return ", ".join(parts)


def record_data_changes(location: ExperimentLocation, check: DataCheck, *, doing: str) -> None:
    """Append ``check``'s changes (when there are any) to the experiment's ``data_changes.json``,
    with the time and what went on with them (``doing``: "resume"), so the report shows them."""
    if not check.changes:
        return
    entries = recorded_data_changes(location)
    entries.append({"when": time.strftime("%Y-%m-%d %H:%M:%S"), "doing": doing, "changes": list(check.changes)})
    location.write_text(DATA_CHANGES_FILE, json.dumps(entries, indent=1))


def recorded_data_changes(experiment: ExperimentLocation | Path) -> list[dict[str, Any]]:
    """Every earlier ``record_data_changes`` of the experiment, oldest first."""
    location = as_location(experiment)
    if not location.exists(DATA_CHANGES_FILE):
        return []
    return json.loads(location.read_text(DATA_CHANGES_FILE))
