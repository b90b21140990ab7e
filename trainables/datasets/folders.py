"""What the generic folder formats (``image_folder``, ``mask_folder``, ``coco``) share: where
their folder is (the ``root`` data setting against the data directory), how split folders may be
spelt, and the check of a ``split_fractions`` setting (Taleqani's too)."""

from __future__ import annotations

import math
import os
from pathlib import Path

from trainables.config import ConfigError
from trainables.datasets.base import DatasetError
from trainables.datasets.download import DATA_DIR_ENV
from trainables.datasets.taleqani_common import SPLITS

# The names a split folder (or a CSV's split column) may have, compared in lower case.
SPLIT_SPELLINGS = {"train": ("train", "training"), "val": ("val", "valid", "validation", "dev"),
                   "test": ("test", "testing")}


def canonical_split(name: str) -> str | None:
    """``train``, ``val`` or ``test`` for a split folder's name in any of its spellings, else None."""
    lowered = name.strip().lower()
    return next((split for split, spellings in SPLIT_SPELLINGS.items() if lowered in spellings), None)


def split_spellings() -> str:
    """The accepted spellings, for error messages: ``train: train/training; val: …``."""
    return "; ".join(f"{split}: {'/'.join(spellings)}" for split, spellings in SPLIT_SPELLINGS.items())


def resolve_root(dataset: str, root: str | None, data_dir: str | None, *, holding: str) -> Path:
    """The absolute folder a generic format reads: ``root`` (a relative one inside the data
    directory when one is set, else the working directory), or without it the data directory
    itself (``data_dir``, else ``$MEDSWEEP_DATA_DIR``). ``holding`` says what the folder should
    hold, for the error when there is none."""
    base = data_dir or os.environ.get(DATA_DIR_ENV)
    if root is None and not base:
        raise DatasetError(f"{dataset} has no folder to read: set the data setting 'root' to the folder holding "
                           f"{holding}, or pass --data-dir DIR or set {DATA_DIR_ENV}=DIR")
    folder = Path(root if root is not None else base).expanduser()
    if root is not None and base and not folder.is_absolute():
        folder = Path(base).expanduser() / folder
    folder = Path(os.path.abspath(folder))
    if not folder.is_dir():
        raise DatasetError(f"{dataset}: {folder} (root {root!r}, data directory {base!r}) is not a folder; point the "
                           f"data setting 'root' or --data-dir at the folder holding {holding}")
    return folder


def check_split_fractions(fractions: list[float]) -> None:
    """Three positive fractions (train, val, test) summing to 1, else a ConfigError naming the key."""
    if len(fractions) != len(SPLITS) or min(fractions) <= 0 or not math.isclose(sum(fractions), 1.0, abs_tol=1e-6):
        raise ConfigError(f"data setting 'split_fractions' must be {len(SPLITS)} positive numbers "
                          f"({', '.join(SPLITS)}) summing to 1, for example [0.7, 0.15, 0.15], "
                          f"got {fractions!r}", key="split_fractions")
