"""Taleqani ALL (Kaggle ``mehradaria/leukemia``): what its classification and segmentation
readers share. The dataset has ``Original/<class>/<name>.jpg`` smears and
``Segmented/<class>/<name>.jpg`` copies in which the blast cells keep their colours and the
background is a uniform colour (typically black). Both readers locate the data the same way
(it needs a Kaggle login, so a reader never downloads it; ``python -m
trainables.datasets.download taleqani DIR`` does, with the user's Kaggle credentials), compare
the files they read with the pinned manifest ``manifests/taleqani.json``, and cut one seeded
shuffle 70/15/15 into train, val and test; the lymphoblast reader reuses that cut.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path, PurePath

import numpy as np

from trainables.datasets.download import DATA_DIR_ENV, DataNotFoundError, Manifest, compare_with_manifest

SPLITS = ("train", "val", "test")
SPLIT_FRACTIONS = (0.7, 0.15, 0.15)
SPLIT_SEED = 42
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
KAGGLE_URL = "https://www.kaggle.com/datasets/mehradaria/leukemia"
SEGMENTATION_FOLDERS = ("Original", "Segmented")
MANIFEST = "taleqani"
# The folder names each class is recognised by, compared after ``folder_key`` normalisation;
# the first is the canonical short name (the one the manifest uses), the others the Kaggle and
# paper names.
FOLDER_NAMES = {"Benign": ("Benign", "Hematogones"), "Early": ("Early", "Early Pre-B"),
                "Pre": ("Pre", "Pre-B"), "Pro": ("Pro", "Pro-B")}
IGNORED_FOLDER_WORDS = ("malignant", "cell", "cells")


def folder_key(name: str) -> str:
    """A folder name reduced to what identifies a class: lower case, words split on anything
    not a letter or digit, the words ``malignant``/``cell``/``cells`` dropped, the rest joined.

    So ``"[Malignant] early Pre-B"``, ``"Early Pre-B"``, ``"early_pre_b"`` and
    ``"early-pre-b"`` all become ``"earlypreb"``.
    """
    words = re.sub(r"[^a-z0-9]+", " ", name.lower()).split()
    return "".join(word for word in words if word not in IGNORED_FOLDER_WORDS)


_CLASS_BY_FOLDER_KEY = {folder_key(alias): name for name, aliases in FOLDER_NAMES.items() for alias in aliases}


def canonical_class(folder_name: str) -> str | None:
    """The class (``Benign``, ``Early``, ``Pre`` or ``Pro``) a class folder's name maps to, or None."""
    return _CLASS_BY_FOLDER_KEY.get(folder_key(folder_name))


def manifest_path(relative: PurePath) -> str:
    """A file's path relative to the dataset folder as the manifest writes it: a class folder
    (``Original/[Malignant] Pre-B/x.jpg``) under its canonical name (``Original/Pre/x.jpg``),
    so a copy with other folder names is still compared file by file."""
    parts = list(relative.parts)
    if len(parts) == 3:
        parts[1] = canonical_class(parts[1]) or parts[1]
    return "/".join(parts)


def taleqani_manifest_check(root: Path, digests: Mapping[Path, str], *, folders: tuple[str, ...]) -> dict:
    """The files a reader read from ``root`` (``digests`` maps each path to its SHA-256)
    compared with the pinned manifest's files under ``folders`` (classification reads
    ``Original``, segmentation ``Original`` and ``Segmented``), as ``compare_with_manifest``
    reports it: differences are warnings in the audit, and ``--strict-data`` refuses them.
    A copy holding half of those files or fewer is not the pinned one and is not compared."""
    relative = {manifest_path(path.relative_to(root)): digest for path, digest in digests.items()}
    return compare_with_manifest(Manifest.load(MANIFEST), digests=relative,
                                 read_by_reader=lambda name: name.partition("/")[0] in folders)


def locate_taleqani(data_dir: str | None, *,
                    folders: tuple[str, ...] = SEGMENTATION_FOLDERS) -> Path:
    """The directory holding the dataset's ``folders`` (segmentation needs ``Original/`` and
    ``Segmented/``; classification only ``Original/``).

    That is ``data_dir`` itself or one of its direct subfolders (first in name order);
    ``None`` means ``$MEDSWEEP_DATA_DIR``. The dataset needs a Kaggle login, so it is never
    downloaded: when absent, the error lists every place looked and how to point at it.
    """
    base = data_dir or os.environ.get(DATA_DIR_ENV)
    looked = _candidate_dirs(Path(base).expanduser()) if base else []
    for candidate in looked:
        if _has_layout(candidate, folders):
            return candidate
    raise DataNotFoundError(_not_found_message(looked, folders))


def _candidate_dirs(base: Path) -> list[Path]:
    try:
        subfolders = sorted(p for p in base.iterdir() if p.is_dir())
    except OSError:
        subfolders = []
    return [base, *subfolders]


def _has_layout(folder: Path, folders: tuple[str, ...]) -> bool:
    return all((folder / name).is_dir() for name in folders)


def _not_found_message(looked: list[Path], folders: tuple[str, ...]) -> str:
    layout = " and ".join(f"{name}/" for name in folders)
    where = ("Looked in:\n" + "\n".join(f"  {p}" for p in looked) if looked
             else f"Neither --data-dir nor {DATA_DIR_ENV} is set, so there was nowhere to look.")
    return (f"Taleqani ALL data (a folder with {layout}) was not found.\n{where}\n"
            f"{_partial_layouts(looked, folders)}"
            f"This dataset cannot be downloaded automatically: Kaggle requires a login. With Kaggle "
            f"credentials, python -m trainables.datasets.download taleqani DIR downloads and verifies it; "
            f"or download {KAGGLE_URL} and unzip it. Then pass --data-dir DIR or set {DATA_DIR_ENV}=DIR, "
            f"where DIR holds {layout} or is the folder directly above it.\n"
            f"To try medsweep without it, from a clone of the repository: python -m tests.synthetic_data taleqani DIR")


def _partial_layouts(looked: list[Path], folders: tuple[str, ...]) -> str:
    """A line per looked-in folder that has some but not all of ``folders`` (say, a copy
    without ``Segmented/`` used for segmentation), naming what it lacks."""
    lines = []
    for place in looked:
        present = [name for name in folders if (place / name).is_dir()]
        if present and len(present) < len(folders):
            missing = [name for name in folders if name not in present]
            lines.append(f"{place} has {', '.join(f'{n}/' for n in present)} but not "
                         f"{', '.join(f'{n}/' for n in missing)}, which this task needs.\n")
    return "".join(lines)


def split_sizes(count: int, fractions: tuple[float, ...] = SPLIT_FRACTIONS) -> list[int]:
    """Samples per split: val and test by rounding, train the rest; none empty from 3 on."""
    if len(fractions) != len(SPLITS) or min(fractions) <= 0 or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"fractions must be {len(SPLITS)} positive numbers summing to 1, "
                         f"got {fractions}")
    rest = [round(count * f) for f in fractions[1:]]
    if count >= len(SPLITS):
        rest = [max(1, n) for n in rest]
    return [count - sum(rest), *rest]


def shuffled_split(indices: np.ndarray, rng: np.random.Generator,
                   fractions: tuple[float, ...]) -> list[np.ndarray]:
    """``indices`` shuffled once by ``rng`` and cut by ``fractions`` (see ``split_sizes``) into
    the train, val and test parts."""
    order = indices[rng.permutation(len(indices))]
    bounds = np.cumsum([0, *split_sizes(len(indices), fractions)])
    return [order[start:stop] for start, stop in zip(bounds[:-1], bounds[1:])]


def is_image_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")
