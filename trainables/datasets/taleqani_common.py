"""Taleqani ALL (Kaggle ``mehradaria/leukemia``): what its classification and segmentation
readers share. The dataset has ``Original/<class>/<name>.jpg`` smears and
``Segmented/<class>/<name>.jpg`` copies in which the blast cells keep their colours and the
background is a uniform colour (typically black). Both readers locate the data the same way
(it needs a Kaggle login, so it is never downloaded) and cut one seeded shuffle 70/15/15 into
train, val and test; the lymphoblast reader reuses that cut.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from trainables.datasets.download import DATA_DIR_ENV, DataNotFoundError

SPLITS = ("train", "val", "test")
SPLIT_FRACTIONS = (0.7, 0.15, 0.15)
SPLIT_SEED = 42
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
KAGGLE_URL = "https://www.kaggle.com/datasets/mehradaria/leukemia"
SEGMENTATION_FOLDERS = ("Original", "Segmented")


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
            f"This dataset cannot be downloaded automatically: Kaggle requires a login. Download "
            f"{KAGGLE_URL}, unzip it, then pass --data-dir DIR or set {DATA_DIR_ENV}=DIR, where DIR "
            f"holds {layout} or is the folder directly above it.\n"
            f"To try medsweep without it: python -m trainables.datasets.synthetic taleqani DIR")


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
