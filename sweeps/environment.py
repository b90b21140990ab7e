"""What produced a result: medsweep's commit, the runtime packages, the machine and the data.

Recorded once per experiment as ``environment`` in ``sweep.json``; a resumed sweep and the report
compare it with their own, so a result is never silently mixed from two code or package versions.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

REPOSITORY = Path(__file__).resolve().parents[1]
DISTRIBUTION = "medsweep"
# Recorded even where the installed metadata does not list them (an editable checkout whose
# requirements changed since it was installed).
CORE_PACKAGES = ("torch", "torchvision", "ray", "timm", "albumentations", "numpy", "scikit-learn", "optuna")
# Compared between a run and a later resume or report; the rest is informative.
COMPARED = ("medsweep_commit", "medsweep_dirty", "packages", "python")


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
    """The checkout's commit and whether its tracked files differ from it (None outside git)."""
    if shutil.which("git") is None or not (REPOSITORY / ".git").exists():
        return None, None
    try:
        commit = _git("rev-parse", "HEAD")
        dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
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
