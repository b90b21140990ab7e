"""Taleqani ALL subtype classification (studies 2 and 5), from ``Original/`` only.

Each class folder is mapped to one of Benign / Early / Pre / Pro by a normalised folder name, so
the Kaggle names and the usual short or renamed variants all work. Images are decoded and
resized once per (data checksum, image size) and cached; the split is then assigned cheaply per
data-loading option: option 1 splits each class 70/15/15 on its own, option 2 shuffles one
global list and splits it 70/15/15. The leakage check compares the Original images across
splits; the Original files are compared with the pinned manifest, from the same SHA-256 digests
the cache key is made of.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from trainables.config import ConfigError
from trainables.datasets.audit import DataAudit
from trainables.datasets.base import ClassificationData, DatasetError, SplitArrays
from trainables.datasets.cache import file_digests, fingerprint_of_digests, load_splits, save_splits
from trainables.datasets.download import DataNotFoundError, cache_dir
from trainables.datasets.folders import check_split_fractions
from trainables.datasets.image_folder import stratified_split
from trainables.datasets.images import CorruptImageError, decode_rgb, resize_square
from trainables.datasets.leakage import ImagePrint, check_leakage, image_print
from trainables.datasets.leakage_policy import (
    UNASSIGNED,
    Grouping,
    apply_after_split,
    duplicate_index_groups,
    resolve_policy,
    split_keeping_groups,
)
from trainables.datasets.options import LeakageOptions
from trainables.datasets.taleqani_common import (
    FOLDER_NAMES,
    IGNORED_FOLDER_WORDS,
    IMAGE_SUFFIXES,
    SPLIT_FRACTIONS,
    SPLIT_SEED,
    SPLITS,
    canonical_class,
    is_image_file,
    locate_taleqani,
    shuffled_split,
    taleqani_manifest_check,
)

CLASSIFICATION_DATASET = "taleqani"
CLASSIFICATION_CLASSES = ("Benign", "Early", "Pre", "Pro")
CLASSIFICATION_FOLDERS = ("Original",)
CLASSIFICATION_READER_VERSION = 2
LOADING_OPTIONS = (1, 2)


@dataclass(frozen=True)
class LabelledImage:
    """One Original image and the class its folder maps to."""

    label: int
    path: Path

    @property
    def source(self) -> str:
        """``<class>/<file name>``: unique, since each class comes from exactly one folder."""
        return f"{CLASSIFICATION_CLASSES[self.label]}/{self.path.name}"


@dataclass(frozen=True)
class DecodedImages:
    """Every decodable listed image, resized, with its leakage print (split ``UNASSIGNED``);
    and why the others failed.

    Rows follow the listing order; ``prints[row].source`` names each row. This is what the
    decode cache holds, shared by both loading options.
    """

    images: np.ndarray
    prints: list[ImagePrint]
    failed: dict[str, str]

    def row_of(self) -> dict[str, int]:
        return {printed.source: row for row, printed in enumerate(self.prints)}


def _valid_folder_names() -> str:
    names = "; ".join(f"{name}: {' or '.join(aliases)}" for name, aliases in FOLDER_NAMES.items())
    return (f"valid class folder names ({names}) are compared ignoring case, spaces, '-', '_', "
            f"brackets and the words {', '.join(IGNORED_FOLDER_WORDS)}")


def class_folders(original: Path) -> dict[int, Path]:
    """``class index → folder`` for the class folders of ``original`` (hidden ones skipped).

    A folder whose name maps to no class, or two folders mapping to the same class, is an
    error naming the folder(s) and the valid names, raised before any image is decoded.
    """
    found: dict[int, Path] = {}
    for folder in sorted(p for p in original.iterdir() if p.is_dir() and not p.name.startswith(".")):
        name = canonical_class(folder.name)
        if name is None:
            raise DatasetError(f"{folder}: folder {folder.name!r} is not a Taleqani class; "
                             f"{_valid_folder_names()}. Rename or remove the folder.")
        label = CLASSIFICATION_CLASSES.index(name)
        if label in found:
            raise DatasetError(f"{found[label]} and {folder} both map to class "
                             f"{CLASSIFICATION_CLASSES[label]}; keep one folder per class "
                             f"({_valid_folder_names()}).")
        found[label] = folder
    return found


def list_labelled_images(root: Path) -> tuple[list[LabelledImage], dict[int, Path]]:
    """The images of ``root/Original`` with their classes, sorted by (class, file name), and
    the folder each class came from. Sorting by canonical class makes the split the same
    whichever folder-name variant the copy uses."""
    folders = class_folders(root / "Original")
    listing = [LabelledImage(label, path) for label, folder in sorted(folders.items())
               for path in image_files_in(folder)]
    if not listing:
        raise DataNotFoundError(f"{root / 'Original'} has no images in class folders "
                                f"(*{', *'.join(IMAGE_SUFFIXES)}); {_valid_folder_names()}.")
    return listing, folders


def image_files_in(folder: Path) -> list[Path]:
    """The images directly inside one class folder, sorted."""
    return sorted(p for p in folder.iterdir() if is_image_file(p))


@dataclass(frozen=True)
class TaleqaniOptions(LeakageOptions):
    """``loading_option`` (the study's variant axis, set per trial under fixed: or grid:) splits
    each class on its own (1) or all images at once (2); ``split_fractions`` are the train, val
    and test fractions."""

    loading_option: int = 2
    split_fractions: list[float] = field(default_factory=lambda: list(SPLIT_FRACTIONS))

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.loading_option not in LOADING_OPTIONS:
            raise ConfigError(f"data setting 'loading_option' must be one of {', '.join(map(str, LOADING_OPTIONS))} "
                              f"(1: each class split on its own; 2: one global shuffle split), "
                              f"got {self.loading_option!r}", key="loading_option")
        check_split_fractions(self.split_fractions)


def check_loading_option(loading_option: int) -> None:
    if loading_option not in LOADING_OPTIONS or isinstance(loading_option, bool):
        raise DatasetError(f"loading_option must be one of {', '.join(map(str, LOADING_OPTIONS))} "
                         f"(1: each class split 70/15/15 on its own; 2: one global shuffle split "
                         f"70/15/15), got {loading_option!r}")


def assign_splits(labels: np.ndarray, loading_option: int, *, seed: int = SPLIT_SEED,
                  fractions: tuple[float, ...] = SPLIT_FRACTIONS) -> list[np.ndarray]:
    """Indices into ``labels`` of the train, val and test splits.

    Option 1 (per class): ``image_folder``'s ``stratified_split`` (class ``c`` shuffled by a
    generator seeded with ``(seed, c)`` and split by ``fractions`` on its own), so every split
    holds each class in proportion, as the class folders of an image folder are split.
    Option 2 (global): all images are shuffled once with ``seed`` and split by ``fractions``.
    """
    check_loading_option(loading_option)
    if loading_option == 2:
        return shuffled_split(np.arange(len(labels)), np.random.default_rng(seed), fractions)
    return stratified_split(labels, len(CLASSIFICATION_CLASSES), seed=seed, fractions=fractions)


def decode_listing(listing: list[LabelledImage], image_size: int) -> DecodedImages:
    """Decode and resize every listed image once, keeping each one's print for the leakage
    check; undecodable images are recorded with the reason instead."""
    images, prints, failed = [], [], {}
    for item in listing:
        try:
            rgb = decode_rgb(item.path)
        except CorruptImageError as exc:
            failed[item.source] = str(exc)
            continue
        prints.append(image_print(UNASSIGNED, item.source, item.path, rgb))
        images.append(resize_square(rgb, image_size))
    stacked = np.stack(images) if images else np.zeros((0, image_size, image_size, 3), np.uint8)
    return DecodedImages(stacked, prints, failed)


def decoded_through_cache(path: Path, listing: list[LabelledImage], image_size: int, params: dict,
                          *, use_cache: bool) -> DecodedImages:
    """The decoded images cached at ``path`` (keyed by the data's checksum and ``params``);
    otherwise decode them and cache them. One entry serves both loading options. The prints
    are stored field by field, so whatever hashes ``ImagePrint`` carries survive the cache."""
    cached = load_splits(path) if use_cache else None
    if cached is not None:
        splits, meta = cached
        return DecodedImages(splits["decoded"].images, [ImagePrint(**fields) for fields in meta["prints"]],
                             meta["failed"])
    decoded = decode_listing(listing, image_size)
    if use_cache:
        labels = {item.source: item.label for item in listing}
        sources = [printed.source for printed in decoded.prints]
        table = SplitArrays(decoded.images, np.asarray([labels[s] for s in sources], np.int64),
                            np.asarray(sources, dtype=str))
        save_splits(path, {"decoded": table}, {**params, "prints": [asdict(p) for p in decoded.prints],
                                               "failed": decoded.failed})
    return decoded


def read_taleqani_classification(root: Path, *, image_size: int, loading_option: int = 2,
                                 seed: int = SPLIT_SEED, fractions: tuple[float, ...] = SPLIT_FRACTIONS,
                                 leakage: str | None = None,
                                 use_cache: bool = True) -> tuple[ClassificationData, DataAudit]:
    """The four-class data of ``root/Original`` split by ``loading_option``, and its audit.

    Folder names are checked first; then every image is decoded and resized (or taken from the
    cache), the split assigned, and undecodable images dropped from their split with the
    reason. The files are compared with the pinned manifest (``taleqani_manifest_check``) from
    the digests that key the cache, so the check hashes nothing again. The ``leakage`` policy
    (default ``group``, see ``leakage_policy``) decides what happens to duplicates: ``group``
    assigns each group of duplicates to one split as a unit.
    No balancing or augmentation happens here: that is the trainable's job, on the training
    split only.
    """
    check_loading_option(loading_option)
    policy = resolve_policy(leakage, dataset=CLASSIFICATION_DATASET, splits_made_here=True)
    root = Path(root)
    listing, folders = list_labelled_images(root)
    params = {"reader": CLASSIFICATION_READER_VERSION, "image_size": image_size}
    digests = file_digests(item.path for item in listing)
    key = fingerprint_of_digests(digests, root, params)
    cache_path = cache_dir() / "decoded" / f"taleqani-classification-{key[:20]}.npz"
    decoded = decoded_through_cache(cache_path, listing, image_size, params, use_cache=use_cache)
    labels = np.asarray([item.label for item in listing], dtype=np.int64)
    audit = DataAudit(dataset=f"{CLASSIFICATION_DATASET} (loading option {loading_option})", root=str(root),
                      class_names=CLASSIFICATION_CLASSES, notes=[folder_mapping(folders, root)],
                      manifest=taleqani_manifest_check(root, digests, folders=CLASSIFICATION_FOLDERS))
    grouping = (duplicate_index_groups([item.source for item in listing], decoded.prints) if policy == "group"
                else Grouping())
    row_of, prints, splits = decoded.row_of(), [], {}
    for split, indices in zip(SPLITS, assign_grouped_splits(labels, grouping.indices, loading_option, seed=seed,
                                                             fractions=fractions)):
        chosen = [listing[i] for i in indices]
        splits[split] = _classification_split(split, chosen, decoded, row_of, audit, prints)
    audit.leakage = check_leakage(prints)
    splits = apply_after_split(policy, splits, audit, grouping,
                               columns_of=lambda source, label: [CLASSIFICATION_CLASSES[label]])
    split_key = {"decoded": key, "loading_option": loading_option, "seed": seed, "leakage": policy,
                 "fractions": list(fractions)}
    data = ClassificationData(name=CLASSIFICATION_DATASET, class_names=CLASSIFICATION_CLASSES,
                              splits=splits, fingerprint=_digest(split_key))
    return data, audit


def assign_grouped_splits(labels: np.ndarray, groups: list[list[int]], loading_option: int, *, seed: int,
                          fractions: tuple[float, ...]) -> list[np.ndarray]:
    """``assign_splits`` over one representative per group of duplicates (its first image, whose
    class decides under option 1), each other member following its representative into the same
    split. Without groups this is exactly ``assign_splits``."""
    return split_keeping_groups(len(labels), groups, lambda representatives: assign_splits(
        labels[representatives], loading_option, seed=seed, fractions=fractions))


def _classification_split(split: str, chosen: list[LabelledImage], decoded: DecodedImages,
                          row_of: dict[str, int], audit: DataAudit, prints: list[ImagePrint]) -> SplitArrays:
    """One split's arrays taken from the decoded table, auditing each image of it."""
    audit.images_listed[split] = len(chosen)
    rows, kept = [], []
    for item in chosen:
        if item.source in decoded.failed:
            audit.drop(split, item.source, f"corrupt image: {decoded.failed[item.source]}")
            continue
        row = row_of[item.source]
        audit.images_read[split] += 1
        audit.keep(split, CLASSIFICATION_CLASSES[item.label])
        prints.append(replace(decoded.prints[row], split=split))
        rows.append(row)
        kept.append(item)
    return SplitArrays(images=decoded.images[np.asarray(rows, dtype=np.intp)],
                       labels=np.asarray([item.label for item in kept], dtype=np.int64),
                       sources=np.asarray([item.source for item in kept], dtype=str))


def folder_mapping(folders: dict[int, Path], root: Path) -> str:
    """Which folder became which class (a class without a folder says so), for the audit."""
    mapping = ", ".join(
        f"{name} ← {folders[label].relative_to(root).as_posix() if label in folders else 'no folder'}"
        for label, name in enumerate(CLASSIFICATION_CLASSES))
    return f"Class folders: {mapping}"


def _digest(params: dict) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()


def prepare_taleqani_classification(*, data_dir: str | None, image_size: int, leakage: str | None = None,
                                    loading_option: int = 2, split_fractions: Sequence[float] = SPLIT_FRACTIONS,
                                    use_cache: bool = True) -> tuple[ClassificationData, DataAudit]:
    """Benign / Early / Pre / Pro images of every split (by ``loading_option`` and the
    train/val/test ``split_fractions``, see ``assign_splits``), and the audit of the whole dataset.

    ``leakage`` is the duplicate policy (``group`` by default; see ``leakage_policy``); the
    keywords after ``image_size`` are ``TaleqaniOptions``'s fields. Only ``Original/`` is needed.
    """
    check_loading_option(loading_option)
    root = locate_taleqani(data_dir, folders=CLASSIFICATION_FOLDERS)
    return read_taleqani_classification(root, image_size=image_size, loading_option=loading_option,
                                        fractions=tuple(split_fractions), leakage=leakage, use_cache=use_cache)
