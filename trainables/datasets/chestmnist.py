"""MedMNIST ChestMNIST as binary Cardiomegaly vs Pneumothorax classification (study 3).

The file is MedMNIST's ``chestmnist.npz`` (28 px) or ``chestmnist_<size>.npz`` (MedMNIST+,
64/128/224 px): ``{train,val,test}_images`` uint8 N x S x S grayscale and
``{train,val,test}_labels`` N x 14 multi-label 0/1. Only single-label images of Cardiomegaly
(finding 1 → class 0) or Pneumothorax (finding 7 → class 1) are kept, in the file's own splits;
every other row is summarised in the audit per split and reason rather than listed one by one.

The filtered result is cached by the file's checksum: at 224 px the npz holds 112,120 images
(about 5.6 GB decoded) of which only a few thousand are kept, so a cached run skips
decompressing the whole file and recomputing the leakage check.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np

from trainables.datasets.audit import DataAudit
from trainables.datasets.base import ClassificationData, DatasetError, SplitArrays
from trainables.datasets.cache import read_through_cache
from trainables.datasets.download import DATA_DIR_ENV, DataNotFoundError, cache_dir
from trainables.datasets.leakage import ImagePrint, check_leakage, difference_hash, ring_hash
from trainables.datasets.leakage_policy import apply_to_fixed_splits

DATASET = "chestmnist"
CLASS_NAMES = ("Cardiomegaly", "Pneumothorax")
FINDINGS = ("Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule",
            "Pneumonia", "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis",
            "Pleural thickening", "Hernia")
KEPT_FINDINGS = (FINDINGS.index("Cardiomegaly"), FINDINGS.index("Pneumothorax"))  # class order
SIZES = (28, 64, 128, 224)
SPLITS = ("train", "val", "test")
SUBFOLDERS = ("medmnist", "chestmnist")
MEAN = (0.485,)
STD = (0.229,)
READER_VERSION = 4
HOMEPAGE = "https://medmnist.com"


class MalformedNpzError(DatasetError):
    """A ChestMNIST npz that is unreadable or lacks the MedMNIST keys, shapes or values."""


def npz_name(image_size: int) -> str:
    """MedMNIST's file name for ``image_size``: ``chestmnist.npz`` at 28 px, else
    ``chestmnist_<size>.npz``."""
    if image_size not in SIZES:
        raise DatasetError(f"ChestMNIST exists at image sizes {', '.join(map(str, SIZES))} "
                         f"(MedMNIST+), got {image_size}; set the sweep's image_size to one of them")
    return "chestmnist.npz" if image_size == 28 else f"chestmnist_{image_size}.npz"


def search_dirs(data_dir: str | None) -> list[Path]:
    """Where the npz is looked for, in order: ``data_dir``, ``$MEDSWEEP_DATA_DIR``, each with
    its ``medmnist/`` and ``chestmnist/`` subfolders, then the medsweep cache's ``medmnist/``
    (where a download goes)."""
    bases = [Path(b).expanduser() for b in (data_dir, os.environ.get(DATA_DIR_ENV)) if b]
    places = [place for base in bases for place in (base, *(base / sub for sub in SUBFOLDERS))]
    places.append(download_dir())
    return list(dict.fromkeys(places))


def download_dir() -> Path:
    return cache_dir() / "medmnist"


def locate_chestmnist(data_dir: str | None, image_size: int) -> Path:
    """The ChestMNIST npz for ``image_size``, downloading it with the ``medmnist`` package into
    the cache when it is in none of ``search_dirs``. When that fails too, the error names every
    place looked and how to get the file."""
    name = npz_name(image_size)
    places = search_dirs(data_dir)
    for place in places:
        if (place / name).is_file():
            return place / name
    try:
        download_with_medmnist(download_dir(), image_size)
    except ImportError:
        raise DataNotFoundError(
            _not_found_message(name, places, "the medmnist package is not installed")) from None
    except (RuntimeError, OSError) as exc:
        raise DataNotFoundError(_not_found_message(name, places, f"the download failed: {exc}")) from exc
    if not (download_dir() / name).is_file():
        raise DataNotFoundError(_not_found_message(
            name, places, f"medmnist reported success but wrote no {download_dir() / name}"))
    return download_dir() / name


def download_with_medmnist(folder: Path, image_size: int) -> None:
    """Fetch the ChestMNIST npz for ``image_size`` into ``folder`` with the ``medmnist``
    package (MedMNIST v3 API), which checks the file's MD5. Raises ImportError when the
    package is not installed."""
    import medmnist

    folder.mkdir(parents=True, exist_ok=True)
    medmnist.ChestMNIST(split="train", download=True, root=str(folder), size=image_size)


def _not_found_message(name: str, places: list[Path], reason: str) -> str:
    looked = "\n".join(f"  {place}" for place in places)
    return (f"ChestMNIST ({name}) was not found and could not be downloaded: {reason}.\n"
            f"Looked in:\n{looked}\n"
            f"Fix: on a machine with internet, `pip install medmnist` and run again (medsweep "
            f"downloads {name} into {download_dir()}); or download {name} from {HOMEPAGE} "
            f"(Zenodo) and put it in --data-dir DIR or {DATA_DIR_ENV}=DIR, or in their medmnist/ "
            f"subfolder.")


def read_chestmnist(path: Path, *, image_size: int) -> tuple[dict[str, SplitArrays], DataAudit]:
    """The kept images (N x S x S x 1 uint8) and classes of every split, and the audit.

    Sources are ``<split>/<row in the npz split>``. The leakage check compares the kept images
    across splits by the SHA-256 of their pixels and their hashes, confirming hash matches on
    the kept images themselves.
    """
    path = Path(path)
    audit = DataAudit(dataset=DATASET, root=str(path), class_names=CLASS_NAMES)
    splits, prints = {}, []
    with _open_npz(path) as npz:
        for split in SPLITS:
            images, labels = _split_arrays(npz, path, split, image_size)
            splits[split] = _kept_rows(split, images, labels, audit, prints)
    audit.leakage = check_leakage(prints, pixels=lambda item: _kept_image(splits, item))
    return splits, audit


def _kept_image(splits: dict[str, SplitArrays], item: ImagePrint) -> np.ndarray:
    """The kept image a print was made from (its source is the row in its npz split)."""
    arrays = splits[item.split]
    return arrays.images[np.flatnonzero(arrays.sources == item.name)[0], ..., 0]


def _open_npz(path: Path):
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise MalformedNpzError(f"{path}: cannot read it as an npz file ({exc}); delete it and "
                                f"download it again") from exc


def _split_arrays(npz, path: Path, split: str, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """One split's images and labels, checked against the MedMNIST format."""
    images = _member(npz, path, f"{split}_images")
    labels = _member(npz, path, f"{split}_labels")
    if images.dtype != np.uint8 or images.shape[1:] != (image_size, image_size):
        raise MalformedNpzError(f"{path}: {split}_images has shape {images.shape} and dtype "
                                f"{images.dtype}; expected uint8 N x {image_size} x {image_size} "
                                f"(grayscale ChestMNIST at {image_size} px)")
    if labels.ndim != 2 or labels.shape[1] != len(FINDINGS):
        raise MalformedNpzError(f"{path}: {split}_labels has shape {labels.shape}; expected "
                                f"N x {len(FINDINGS)} (one 0/1 column per ChestMNIST finding)")
    if len(labels) != len(images):
        raise MalformedNpzError(f"{path}: {split}_labels has {len(labels)} rows but "
                                f"{split}_images has {len(images)} images")
    if not np.isin(labels, (0, 1)).all():
        raise MalformedNpzError(f"{path}: {split}_labels holds values other than 0 and 1 "
                                f"({sorted(np.unique(labels).tolist())[:10]})")
    return images, labels.astype(np.uint8)


def _member(npz, path: Path, key: str) -> np.ndarray:
    try:
        return npz[key]
    except KeyError:
        raise MalformedNpzError(f"{path}: key {key!r} is missing; a MedMNIST ChestMNIST file has "
                                f"{', '.join(f'{s}_images, {s}_labels' for s in SPLITS)}; this one "
                                f"has {', '.join(sorted(npz.files)) or 'no arrays'}") from None
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise MalformedNpzError(f"{path}: cannot read {key!r} ({exc}); delete the file and "
                                f"download it again") from exc


def _kept_rows(split: str, images: np.ndarray, labels: np.ndarray, audit: DataAudit,
               prints: list[ImagePrint]) -> SplitArrays:
    """The single-label Cardiomegaly and Pneumothorax rows of one split, with the audit's
    counts, one summarised drop per reason, and the kept images' prints."""
    positives = labels.sum(axis=1)
    finding = labels.argmax(axis=1)
    kept = (positives == 1) & np.isin(finding, KEPT_FINDINGS)
    classes = np.searchsorted(KEPT_FINDINGS, finding[kept]).astype(np.int64)
    audit.images_listed[split] = len(images)
    audit.images_read[split] = len(images)
    audit.kept[split] = Counter({name: int((classes == c).sum()) for c, name in enumerate(CLASS_NAMES)})
    _summarise_drops(split, labels, positives, finding, kept, audit)
    rows = np.flatnonzero(kept)
    sources = np.asarray([f"{split}/{row}" for row in rows], dtype=str)
    prints += [ImagePrint(split, str(row), hashlib.sha256(images[row].tobytes()).hexdigest(),
                          difference_hash(images[row]), ring_hash(images[row])) for row in rows]
    return SplitArrays(images=images[rows][..., None], labels=classes, sources=sources)


def _summarise_drops(split: str, labels: np.ndarray, positives: np.ndarray, finding: np.ndarray,
                     kept: np.ndarray, audit: DataAudit) -> None:
    """One dropped item per split and reason (tens of thousands of rows are left out)."""
    other = (positives == 1) & ~kept
    several = positives > 1
    with_kept_finding = int((labels[several][:, list(KEPT_FINDINGS)].any(axis=1)).sum())
    reasons = [
        (int((positives == 0).sum()), f"no finding (all {len(FINDINGS)} labels 0)"),
        (int(other.sum()), "one other finding: " + ", ".join(
            f"{FINDINGS[f]} {n:,}" for f, n in sorted(Counter(finding[other].tolist()).items()))),
        (int(several.sum()), f"more than one finding ({with_kept_finding:,} of them include "
                             f"{' or '.join(CLASS_NAMES)})"),
    ]
    for count, reason in reasons:
        if count:
            audit.drop(split, f"{count:,} image{'s' if count != 1 else ''}", reason)


def _file_sha256(path: Path) -> str:
    """SHA-256 of a file read in chunks (the 224 px npz is gigabytes)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def prepare_chestmnist(*, data_dir: str | None, image_size: int = 28,
                       leakage: str | None = None, use_cache: bool = True) -> tuple[ClassificationData, DataAudit]:
    """Cardiomegaly vs Pneumothorax images of every split, and the audit of the whole file.

    The splits are MedMNIST's, so the ``leakage`` policy is ``warn`` (the default), ``drop``
    or ``fail`` (see ``leakage_policy``); ``group`` is an error. ``leakage`` is the one option
    (``LeakageOptions``). Images keep their single channel and are normalised with mean 0.485,
    std 0.229 (STUDIES.md section 3).
    """
    path = locate_chestmnist(data_dir, image_size)
    params = {"reader": READER_VERSION, "image_size": image_size, "file": path.name}
    key = hashlib.sha256(f"{_file_sha256(path)}:{json.dumps(params, sort_keys=True)}".encode()).hexdigest()
    cache_path = cache_dir() / "filtered" / f"chestmnist-{key[:20]}.npz"
    splits, audit = read_through_cache(
        cache_path, params, lambda: read_chestmnist(path, image_size=image_size), use_cache=use_cache)
    splits = apply_to_fixed_splits(leakage, splits, audit, column_of=lambda source, label: CLASS_NAMES[label],
                                   name_of=lambda split, source: source)
    data = ClassificationData(name=DATASET, class_names=CLASS_NAMES, splits=splits, mean=MEAN,
                              std=STD, fingerprint=key)
    return data, audit
