"""On-disk cache of decoded samples, keyed by the data's checksum and the decoding parameters."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np

from trainables.datasets.audit import DataAudit
from trainables.datasets.base import SplitArrays


def fingerprint(files: Iterable[Path], root: Path, params: dict) -> str:
    """SHA-256 over each file's relative path and bytes plus the decoding parameters."""
    return fingerprint_of_digests(file_digests(files), root, params)


def file_digests(files: Iterable[Path]) -> dict[Path, str]:
    """The SHA-256 (hex) of each file's bytes. A caller that also checks the files against a
    manifest computes these once and hands them to ``fingerprint_of_digests``, so every file
    is read once."""
    return {path: hashlib.sha256(path.read_bytes()).hexdigest() for path in files}


def fingerprint_of_digests(digests: Mapping[Path, str], root: Path, params: dict) -> str:
    """``fingerprint`` of the files whose SHA-256 digests are ``digests`` (path → hex)."""
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode())
    for path in sorted(digests):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(bytes.fromhex(digests[path]))
    return digest.hexdigest()


def read_through_cache(path: Path, params: dict, read: Callable[[], tuple[dict, DataAudit]], *, use_cache: bool,
                       load: Callable[[Path], tuple[dict, dict] | None] | None = None,
                       save: Callable[[Path, dict, dict], None] | None = None) -> tuple[dict, DataAudit]:
    """The splits and audit cached at ``path``; otherwise ``read()`` them and cache them with
    ``params`` (the decoding parameters, kept for a person inspecting the file). ``load`` and
    ``save`` store the splits (default: equal-size ``SplitArrays``, ``load_splits``/``save_splits``)."""
    load, save = load or load_splits, save or save_splits
    cached = load(path) if use_cache else None
    if cached is not None:
        splits, meta = cached
        return splits, DataAudit.from_dict(meta["audit"])
    splits, audit = read()
    if use_cache:
        save(path, splits, {"audit": audit.to_dict(), **params})
    return splits, audit


def load_splits(path: Path) -> tuple[dict[str, SplitArrays], dict] | None:
    """The cached splits and metadata at ``path``, or None when absent or unreadable."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            meta = json.loads(str(stored["meta"]))
            splits = {name: SplitArrays(stored[f"{name}/images"], stored[f"{name}/labels"],
                                        stored[f"{name}/sources"]) for name in meta["splits"]}
        return splits, meta
    except (OSError, KeyError, ValueError):
        return None


def save_splits(path: Path, splits: dict[str, SplitArrays], meta: dict) -> None:
    arrays = {"meta": np.array(json.dumps({**meta, "splits": list(splits)}))}
    for name, split in splits.items():
        arrays |= {f"{name}/images": split.images, f"{name}/labels": split.labels,
                   f"{name}/sources": split.sources.astype(str)}
    save_npz_atomically(path, arrays)


def save_npz_atomically(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write an npz atomically, so a killed run never leaves a half-written cache behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".npz", dir=path.parent)
    with os.fdopen(fd, "wb") as handle:
        np.savez(handle, **arrays)
    os.replace(tmp, path)
