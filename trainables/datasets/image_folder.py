"""``image_folder``: a researcher's own classification images, in one of three layouts.

* ``ROOT/<class>/…`` — the class is the folder's name; medsweep makes the split: each class is
  shuffled (seed 42) and cut by ``split_fractions`` on its own, as Taleqani's option 1 does.
* ``ROOT/{train,val,test}/<class>/…`` — the folders fix the splits (usual spellings accepted:
  train/training, val/valid/validation/dev, test/testing, any case). A missing val or test
  folder is cut from train, per class and seeded, by its fraction; the audit says so.
* a CSV file ``path,label[,split]`` (header row; paths relative to the CSV's folder); without
  a ``split`` column medsweep makes the split as for class folders.

Images of any common format (PNG, JPEG, BMP, TIFF, WebP where Pillow reads it) and size are
decoded once per (file digests, image size), resized square and cached; grey ones (``L``,
``1``, 16-bit) keep one channel when every image is grey (``channels``). Files without an image
suffix are skipped with one note; unreadable images and CSV rows naming missing files are
dropped from their split, by name, with the reason. The leakage check compares every split;
the policy is ``group`` by default where medsweep splits and ``warn`` where the layout fixes the
splits (``group`` is refused there, since it would have to move images between fixed splits).
"""

from __future__ import annotations

import csv as csv_module
import hashlib
import json
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError, features

from trainables.config import ConfigError
from trainables.datasets.audit import DataAudit
from trainables.datasets.base import IMAGENET_MEAN, IMAGENET_STD, ClassificationData, DatasetError, SplitArrays
from trainables.datasets.cache import file_digests, load_splits, save_splits
from trainables.datasets.download import cache_dir
from trainables.datasets.folders import (
    SPLIT_SPELLINGS,
    canonical_split,
    check_split_fractions,
    resolve_root,
    split_spellings,
)
from trainables.datasets.images import CorruptImageError, resize_square
from trainables.datasets.leakage import ImagePrint, check_leakage, image_print
from trainables.datasets.leakage_policy import (
    UNASSIGNED,
    Grouping,
    apply_after_split,
    apply_to_fixed_splits,
    duplicate_index_groups,
    resolve_policy,
    split_keeping_groups,
)
from trainables.datasets.options import LeakageOptions
from trainables.datasets.survey import DatasetSurvey
from trainables.datasets.taleqani_common import SPLIT_FRACTIONS, SPLIT_SEED, SPLITS, shuffled_split

DATASET = "image_folder"
READER_VERSION = 1
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff") + ((".webp",) if features.check("webp") else ())
CHANNELS = (1, 3)
# Pillow modes of grey images; the wide ones (more than 8 bits) are stretched to 0-255.
GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
WIDE_GREY_MODES = GREY_MODES - {"1", "L", "LA", "La"}
GREY_MEAN, GREY_STD = (0.485,), (0.229,)
SURVEY_SAMPLE = 2000     # images whose headers a survey reads, at most
NAMES_LISTED = 10        # skipped files named in a note, at most
LAYOUT_HELP = ("lay the folder out as ROOT/<class>/<image> (medsweep splits it) or "
               "ROOT/train/<class>/<image> with val/ and test/ beside train/ (your splits), "
               "or list the images in a CSV file path,label[,split] and set csv")


@dataclass(frozen=True)
class ImageFolderOptions(LeakageOptions):
    """``root``: the folder (None: the data dir, ``--data-dir`` or ``$MEDSWEEP_DATA_DIR``; a
    relative path is taken inside the data dir, or the current directory without one);
    ``csv``: a CSV file ``path,label[,split]`` listing the images instead (relative to the
    root); ``split_fractions``: train, val and test fractions where medsweep makes a split;
    ``channels``: 1 or 3, or None for 1 when every image is grey and 3 otherwise."""

    root: str | None = None
    csv: str | None = None
    split_fractions: list[float] = field(default_factory=lambda: list(SPLIT_FRACTIONS))
    channels: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("root", "csv"):
            if getattr(self, key) == "":
                raise ConfigError(f"data setting {key!r} must be a path, or null, got ''", key=key)
        check_split_fractions(self.split_fractions)
        if self.channels is not None and self.channels not in CHANNELS:
            raise ConfigError(f"data setting 'channels' must be 1 (grey), 3 (colour) or null (1 when every "
                              f"image is grey, else 3), got {self.channels!r}", key="channels")


# --- listing ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class ListedImage:
    """One listed image: ``source`` is its path relative to the root (posix, unique), ``split``
    the split its folder or CSV row fixes (None where medsweep makes the split)."""

    source: str
    path: Path
    label: int
    split: str | None = None


@dataclass(frozen=True)
class Listing:
    """Every image a layout lists, in a fixed order, with its classes (sorted names) and how the
    folder was read: ``layout`` in one line, ``fixed_splits`` whether the data fixes the
    splits, ``notes`` for the audit (skipped files), ``csv`` the CSV read, if any."""

    root: Path
    layout: str
    class_names: tuple[str, ...]
    images: tuple[ListedImage, ...]
    fixed_splits: bool
    notes: tuple[str, ...] = ()
    csv: Path | None = None

    def listed_splits(self) -> list[str]:
        """The splits holding at least one listed image, in split order."""
        present = {item.split for item in self.images}
        return [split for split in SPLITS if split in present]




def list_images(root: Path, csv: str | None = None) -> Listing:
    """The images of ``root`` by its layout (class folders, split folders), or of the CSV file
    ``csv`` (relative to ``root``). An unusable layout is a DatasetError saying how to lay it out."""
    if csv is not None:
        return _list_csv(root, (root / Path(csv).expanduser()).resolve())
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder; set root (or --data-dir) to the folder of your images, and "
                           f"{LAYOUT_HELP}")
    folders = [p for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")]
    loose = [p.name for p in sorted(root.iterdir()) if p.is_file() and not p.name.startswith(".")]
    splits = {folder: canonical_split(folder.name) for folder in folders}
    named = [folder for folder in folders if splits[folder]]
    if named and len(named) < len(folders):
        others = [folder.name for folder in folders if not splits[folder]]
        raise DatasetError(f"{root}: mixed layout: split folders ({', '.join(f.name for f in named)}) beside other "
                           f"folders ({', '.join(others)}); either every top folder is a split ({split_spellings()}) "
                           f"holding class folders, or every top folder is a class. {LAYOUT_HELP}")
    if named:
        return _list_split_folders(root, {folder: splits[folder] for folder in named}, loose)
    return _list_class_folders(root, folders, loose)


def _files_under(folder: Path) -> tuple[list[Path], list[Path]]:
    """The image files (by suffix, any case) and the other files anywhere under ``folder``,
    sorted, skipping hidden files and folders."""
    images, others = [], []
    for path in sorted(folder.rglob("*")):
        if any(part.startswith(".") for part in path.relative_to(folder).parts) or not path.is_file():
            continue
        (images if path.suffix.lower() in IMAGE_SUFFIXES else others).append(path)
    return images, others


def _skipped_note(root: Path, others: list[Path], loose: list[str], place: str) -> tuple[str, ...]:
    """One note naming the files that were not read (non-image suffixes, files outside class folders)."""
    names = [p.relative_to(root).as_posix() for p in others] + loose
    if not names:
        return ()
    listed = ", ".join(names[:NAMES_LISTED]) + (f", … {len(names) - NAMES_LISTED} more" if len(names) > NAMES_LISTED
                                                 else "")
    return (f"Skipped {len(names)} file(s) that are not images ({', '.join(IMAGE_SUFFIXES)}) in {place}: {listed}",)


def _class_names(where: Path, names: set[str], *, hint: str = "") -> tuple[str, ...]:
    """The sorted class names; fewer than two is an error saying how to lay the data out."""
    if len(names) < 2:
        found = f"only {', '.join(sorted(names))}" if names else "none"
        raise DatasetError(f"{where}: classification needs at least 2 classes, found {found}{hint}. {LAYOUT_HELP}")
    return tuple(sorted(names))


def _require_images(root: Path, images: Sequence[ListedImage]) -> None:
    if not images:
        raise DatasetError(f"{root}: no image files ({', '.join(IMAGE_SUFFIXES)}) in its class folders; "
                           f"{LAYOUT_HELP}")


def _list_class_folders(root: Path, folders: list[Path], loose: list[str]) -> Listing:
    hint = (f"; if {folders[0].name}/ holds the class folders, set root to {folders[0]}" if len(folders) == 1
            else "")
    class_names = _class_names(root, {folder.name for folder in folders}, hint=hint)
    images, others = [], []
    for label, folder in enumerate(folders):
        found, skipped = _files_under(folder)
        images += [ListedImage(path.relative_to(root).as_posix(), path, label) for path in found]
        others += skipped
    _require_images(root, images)
    return Listing(root, f"class folders ROOT/<class>/ ({len(class_names)} classes); medsweep makes the split",
                   class_names, tuple(images), fixed_splits=False,
                   notes=_skipped_note(root, others, loose, "the class folders and ROOT"))


def _list_split_folders(root: Path, splits: dict[Path, str], loose: list[str]) -> Listing:
    by_split: dict[str, Path] = {}
    for folder, split in splits.items():
        if split in by_split:
            raise DatasetError(f"{root}: {by_split[split].name}/ and {folder.name}/ are both the {split} split; "
                               f"keep one folder per split ({split_spellings()})")
        by_split[split] = folder
    if "train" not in by_split:
        raise DatasetError(f"{root}: split folders {', '.join(f.name for f in by_split.values())} but no train "
                           f"folder ({'/'.join(SPLIT_SPELLINGS['train'])}); add one holding the class folders")
    class_folders = {split: [p for p in sorted(folder.iterdir()) if p.is_dir() and not p.name.startswith(".")]
                     for split, folder in by_split.items()}
    class_names = _class_names(root, {p.name for folders in class_folders.values() for p in folders})
    loose = loose + [p.relative_to(root).as_posix() for folder in by_split.values() for p in sorted(folder.iterdir())
                     if p.is_file() and not p.name.startswith(".")]
    images, others = [], []
    for split in SPLITS:
        for folder in class_folders.get(split, []):
            found, skipped = _files_under(folder)
            images += [ListedImage(path.relative_to(root).as_posix(), path, class_names.index(folder.name), split)
                       for path in found]
            others += skipped
    _require_images(root, images)
    folders = ", ".join(f"{split}: {by_split[split].name}/" for split in SPLITS if split in by_split)
    return Listing(root, f"split folders ROOT/<split>/<class>/ ({folders}); the folders fix the splits",
                   class_names, tuple(images), fixed_splits=True,
                   notes=_skipped_note(root, others, loose, "the split and class folders"))


def _list_csv(root: Path, csv_path: Path) -> Listing:
    """The images a CSV ``path,label[,split]`` lists, in row order (paths relative to its folder)."""
    rows = _csv_rows(csv_path)
    has_split = "split" in rows[0]
    class_names = _class_names(csv_path, {row["label"] for row in rows})
    images, seen = [], set()
    for number, row in enumerate(rows, start=2):
        path = Path(os.path.normpath(csv_path.parent / row["path"]))
        source = Path(os.path.relpath(path, root)).as_posix()
        if source in seen:
            raise DatasetError(f"{csv_path}: row {number} lists {row['path']} again; list each image once")
        seen.add(source)
        split = _csv_split(csv_path, number, row["split"]) if has_split else None
        images.append(ListedImage(source, path, class_names.index(row["label"]), split))
    how = "the split column fixes the splits" if has_split else "medsweep makes the split"
    listing = Listing(root, f"CSV {csv_path.name} (path,label{',split' if has_split else ''}); {how}", class_names,
                      tuple(images), fixed_splits=has_split, csv=csv_path)
    if has_split and "train" not in listing.listed_splits():
        raise DatasetError(f"{csv_path}: no row has split train ({'/'.join(SPLIT_SPELLINGS['train'])}); put the "
                           f"training images in train, or drop the split column to let medsweep split")
    return listing


def _csv_rows(csv_path: Path) -> list[dict[str, str]]:
    """The CSV's rows keyed by the lower-cased header names path, label and (optional) split."""
    try:
        with csv_path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv_module.DictReader(handle)
            header = [name.strip().lower() for name in reader.fieldnames or []]
            rows = [{key.strip().lower(): (value or "").strip() for key, value in row.items() if key is not None}
                    for row in reader]
    except (OSError, UnicodeDecodeError, csv_module.Error) as exc:
        raise DatasetError(f"{csv_path}: cannot read the CSV file ({exc}); set csv to a UTF-8 CSV file with the "
                           f"header path,label[,split]") from exc
    if not {"path", "label"} <= set(header):
        raise DatasetError(f"{csv_path}: the header row must name the columns path and label (and optionally "
                           f"split), got {', '.join(header) or 'no header'}")
    if not rows:
        raise DatasetError(f"{csv_path}: no rows below the header; list one image per row as path,label[,split]")
    for number, row in enumerate(rows, start=2):
        if not row["path"] or not row["label"]:
            raise DatasetError(f"{csv_path}: row {number} has an empty path or label; every row needs both")
    return rows


def _csv_split(csv_path: Path, number: int, value: str) -> str:
    split = canonical_split(value)
    if split is None:
        raise DatasetError(f"{csv_path}: row {number} has split {value!r}; write one of {split_spellings()}")
    return split


# --- decoding and the cache ------------------------------------------------------------------

def decode_image(path: Path) -> tuple[np.ndarray, bool]:
    """The image at ``path`` fully decoded as H x W x 3 uint8, and whether it is grey.

    RGBA, palette, CMYK … become RGB; grey (``L``, ``1``) is repeated into three channels; a
    grey image of more than 8 bits (16-bit PNG or TIFF) has its own range stretched to 0-255, so
    12-bit data stored in 16 bits keeps its contrast. Damage is a ``CorruptImageError``, as in
    ``decode_rgb`` (truncated files are not silently padded)."""
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in WIDE_GREY_MODES:
                return np.repeat(_stretched(np.asarray(image))[..., None], 3, axis=2), True
            return np.asarray(image.convert("RGB"), dtype=np.uint8), image.mode in GREY_MODES
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise CorruptImageError(f"{path}: cannot decode image ({exc})") from exc


def _stretched(values: np.ndarray) -> np.ndarray:
    """Grey values linearly mapped from their minimum-maximum to 0-255 (a flat image gives 0)."""
    values = values.astype(np.float64)
    low, high = float(values.min()), float(values.max())
    if high == low:
        return np.zeros(values.shape, dtype=np.uint8)
    return np.rint((values - low) * (255.0 / (high - low))).astype(np.uint8)


@dataclass(frozen=True)
class DecodedImages:
    """Every decodable listed image resized to S x S x 3, with its leakage print (split
    ``UNASSIGNED``) and whether it was grey; ``failed`` says why each other one was not read.
    Rows follow the listing; ``prints[row].source`` names each row."""

    images: np.ndarray
    prints: list[ImagePrint]
    grey: np.ndarray
    failed: dict[str, str]

    def row_of(self) -> dict[str, int]:
        return {printed.source: row for row, printed in enumerate(self.prints)}


def decode_files(files: Sequence[tuple[str, Path]], image_size: int) -> DecodedImages:
    """Decode and resize each ``(source, path)`` once, keeping its print for the leakage check;
    a missing or undecodable file is recorded with the reason instead."""
    images, prints, grey, failed = [], [], [], {}
    for source, path in files:
        if not path.is_file():
            failed[source] = f"file not found: {path}"
            continue
        try:
            pixels, is_grey = decode_image(path)
        except CorruptImageError as exc:
            failed[source] = f"corrupt image: {exc}"
            continue
        prints.append(image_print(UNASSIGNED, source, path, pixels))
        images.append(resize_square(pixels, image_size))
        grey.append(is_grey)
    stacked = np.stack(images) if images else np.zeros((0, image_size, image_size, 3), np.uint8)
    return DecodedImages(stacked, prints, np.asarray(grey, dtype=bool), failed)


def decoded_through_cache(path: Path, params: dict, decode: Callable[[], DecodedImages], *,
                          use_cache: bool) -> DecodedImages:
    """The decoded images cached at ``path``; otherwise ``decode()`` them and cache them with
    ``params``. The table's label column holds each row's grey flag; the prints are stored
    field by field, so whatever hashes ``ImagePrint`` carries survive the cache."""
    cached = load_splits(path) if use_cache else None
    if cached is not None:
        splits, meta = cached
        table = splits["decoded"]
        return DecodedImages(table.images, [ImagePrint(**fields) for fields in meta["prints"]],
                             table.labels.astype(bool), meta["failed"])
    decoded = decode()
    if use_cache:
        table = SplitArrays(decoded.images, decoded.grey.astype(np.int64),
                            np.asarray([printed.source for printed in decoded.prints], dtype=str))
        save_splits(path, {"decoded": table}, {**params, "prints": [asdict(p) for p in decoded.prints],
                                               "failed": decoded.failed})
    return decoded


def _digest(params: dict) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()


def content_key(listing: Listing, params: dict) -> str:
    """SHA-256 over ``params`` and every listed source with its file's SHA-256 (empty for a
    missing file): the decode cache's key, the same wherever the folder is."""
    digests = file_digests(item.path for item in listing.images if item.path.is_file())
    return _digest({**params, "files": sorted((item.source, digests.get(item.path, "")) for item in listing.images)})


# --- splitting -------------------------------------------------------------------------------

def stratified_split(labels: np.ndarray, num_classes: int, *, seed: int = SPLIT_SEED,
                     fractions: tuple[float, ...] = SPLIT_FRACTIONS) -> list[np.ndarray]:
    """Indices into ``labels`` of the train, val and test splits: class ``c`` is shuffled by a
    generator seeded with ``(seed, c)`` and cut by ``fractions`` on its own (``shuffled_split``),
    so every split holds each class in proportion where its count allows."""
    per_class = [shuffled_split(np.flatnonzero(labels == label), np.random.default_rng((seed, label)), fractions)
                 for label in range(num_classes)]
    return [np.concatenate([parts[index] for parts in per_class]).astype(np.int64) for index in range(len(SPLITS))]


def split_here(listing: Listing, groups: list[list[int]], *, seed: int,
               fractions: tuple[float, ...]) -> list[np.ndarray]:
    """``stratified_split`` of the listing, each group of duplicates (listing indices) kept in
    the split of its first member."""
    labels = np.asarray([item.label for item in listing.images], dtype=np.int64)
    return split_keeping_groups(len(labels), groups, lambda representatives: stratified_split(
        labels[representatives], len(listing.class_names), seed=seed, fractions=fractions))


def fixed_split(listing: Listing, *, seed: int, fractions: tuple[float, ...]) -> tuple[list[np.ndarray], list[str]]:
    """The listing's own splits, with each split that lists no image cut from train: every
    train class is cut by ``stratified_split`` and the missing split takes its part, the rest
    staying in train. Returns the indices per split and a note per split cut."""
    splits = np.asarray([item.split for item in listing.images])
    parts = [np.flatnonzero(splits == split) for split in SPLITS]
    missing = [split for split in SPLITS[1:] if not len(parts[SPLITS.index(split)])]
    if not missing:
        return parts, []
    train = parts[0]
    labels = np.asarray([listing.images[i].label for i in train], dtype=np.int64)
    cut = [train[positions] for positions in stratified_split(labels, len(listing.class_names), seed=seed,
                                                              fractions=fractions)]
    parts[0] = np.concatenate([cut[0], *(cut[SPLITS.index(split)] for split in SPLITS[1:] if split not in missing)])
    for split in missing:
        parts[SPLITS.index(split)] = cut[SPLITS.index(split)]
    notes = [f"No {split} images in the data: {split} was cut from train, {fractions[SPLITS.index(split)]:.0%} "
             f"of each train class (seed {seed}); the rest stays in train" for split in missing]
    return [np.sort(part) for part in parts], notes


# --- preparing -------------------------------------------------------------------------------

def read_image_folder(listing: Listing, *, image_size: int, fractions: tuple[float, ...] = SPLIT_FRACTIONS,
                      channels: int | None = None, leakage: str | None = None, seed: int = SPLIT_SEED,
                      use_cache: bool = True) -> tuple[ClassificationData, DataAudit]:
    """The decoded splits of ``listing`` and their audit (see the module's docstring)."""
    policy = _policy(listing, leakage)
    params = {"reader": READER_VERSION, "image_size": image_size}
    key = content_key(listing, params)
    # The cached prints name their files, so each folder location has its own cache entry.
    place = _digest({"decoded": key, "root": str(listing.root)})
    decoded = decoded_through_cache(cache_dir() / "decoded" / f"image-folder-{place[:20]}.npz", params,
                                    lambda: decode_files([(i.source, i.path) for i in listing.images], image_size),
                                    use_cache=use_cache)
    if not len(decoded.prints):
        raise DatasetError(f"{listing.root}: none of its {len(listing.images)} image file(s) could be read "
                           f"(first: {next(iter(decoded.failed.items()))[1]}); check the files")
    channels = channels or (1 if decoded.grey.all() else 3)
    audit = DataAudit(dataset=DATASET, root=str(listing.root), class_names=listing.class_names,
                      notes=[f"Layout: {listing.layout}", *listing.notes, _channels_note(decoded, channels)])
    grouping = (duplicate_index_groups([item.source for item in listing.images], decoded.prints)
                if policy == "group" else Grouping())
    if listing.fixed_splits:
        parts, cut_notes = fixed_split(listing, seed=seed, fractions=fractions)
        audit.notes += cut_notes
    else:
        parts = split_here(listing, grouping.indices, seed=seed, fractions=fractions)
    splits, prints = _build_splits(listing, parts, decoded, channels, audit)
    audit.leakage = check_leakage(prints, pixels=lambda item: decode_image(Path(item.path))[0])
    splits = _apply_policy(policy, listing, splits, audit, grouping)
    csv_digest = hashlib.sha256(listing.csv.read_bytes()).hexdigest() if listing.csv else None
    fingerprint = _digest({"decoded": key, "csv": csv_digest, "layout": listing.layout, "seed": seed,
                           "fractions": list(fractions), "channels": channels, "leakage": policy})
    mean, std = (GREY_MEAN, GREY_STD) if channels == 1 else (IMAGENET_MEAN, IMAGENET_STD)
    data = ClassificationData(name=DATASET, class_names=listing.class_names, splits=splits, mean=mean, std=std,
                              fingerprint=fingerprint)
    return data, audit


def _policy(listing: Listing, leakage: str | None) -> str:
    """The leakage policy, refusing ``group`` where the layout fixes the splits."""
    if leakage == "group" and listing.fixed_splits:
        raise DatasetError(f"{listing.csv or listing.root}: leakage 'group' cannot apply to this layout ("
                           f"{listing.layout}): duplicates cannot be moved between splits the data fixes. Set "
                           f"leakage to warn, drop or fail, or let medsweep make the split (class folders "
                           f"directly under ROOT, or a CSV without a split column)")
    return resolve_policy(leakage, dataset=DATASET, splits_made_here=not listing.fixed_splits)


def _channels_note(decoded: DecodedImages, channels: int) -> str:
    grey = int(decoded.grey.sum())
    return f"Channels: {channels} ({grey} of {len(decoded.grey)} readable images are grey)"


def _build_splits(listing: Listing, parts: list[np.ndarray], decoded: DecodedImages, channels: int,
                  audit: DataAudit) -> tuple[dict[str, SplitArrays], list[ImagePrint]]:
    """Each split's arrays from the decoded table, auditing each listed image (unreadable ones
    dropped with the reason), and the kept images' prints with their split."""
    row_of, prints, splits = decoded.row_of(), [], {}
    for split, indices in zip(SPLITS, parts):
        chosen = [listing.images[i] for i in indices]
        audit.images_listed[split] = len(chosen)
        audit.kept[split] = Counter({name: 0 for name in listing.class_names})
        rows, kept = [], []
        for item in chosen:
            if item.source in decoded.failed:
                audit.drop(split, item.source, decoded.failed[item.source])
                continue
            audit.images_read[split] += 1
            audit.keep(split, listing.class_names[item.label])
            prints.append(replace(decoded.prints[row_of[item.source]], split=split))
            rows.append(row_of[item.source])
            kept.append(item)
        splits[split] = SplitArrays(images=_with_channels(decoded.images[np.asarray(rows, dtype=np.intp)], channels),
                                    labels=np.asarray([item.label for item in kept], dtype=np.int64),
                                    sources=np.asarray([item.source for item in kept], dtype=str))
    return splits, prints


def _with_channels(images: np.ndarray, channels: int) -> np.ndarray:
    """N x S x S x 3 images as they are, or as N x S x S x 1 grey (luma; exact for grey images)."""
    if channels == 3:
        return images
    count, side = images.shape[:2]
    if not count:
        return images[..., :1]
    grey = cv2.cvtColor(images.reshape(count * side, side, 3), cv2.COLOR_RGB2GRAY)
    return grey.reshape(count, side, side, 1)


def _apply_policy(policy: str, listing: Listing, splits: dict[str, SplitArrays], audit: DataAudit,
                  grouping: Grouping) -> dict[str, SplitArrays]:
    if listing.fixed_splits:
        return apply_to_fixed_splits(policy, splits, audit, column_of=lambda source, label: listing.class_names[label])
    return apply_after_split(policy, splits, audit, grouping,
                             columns_of=lambda source, label: [listing.class_names[label]])


def prepare_image_folder(*, data_dir: str | None, image_size: int, leakage: str | None = None,
                         root: str | None = None, csv: str | None = None,
                         split_fractions: Sequence[float] = SPLIT_FRACTIONS, channels: int | None = None,
                         use_cache: bool = True) -> tuple[ClassificationData, DataAudit]:
    """The images of a researcher's folder (or CSV) in train, val and test, and the audit; the
    keywords after ``image_size`` are ``ImageFolderOptions``'s fields, checked here first."""
    options = ImageFolderOptions(leakage=leakage, root=root, csv=csv, split_fractions=list(split_fractions),
                                 channels=channels)
    listing = list_images(resolve_root(DATASET, options.root, data_dir, holding="the class folders"), options.csv)
    return read_image_folder(listing, image_size=image_size, fractions=tuple(options.split_fractions),
                             channels=options.channels, leakage=options.leakage, use_cache=use_cache)


# --- survey ----------------------------------------------------------------------------------

def survey_image_folder(root: str | os.PathLike, *, csv: str | None = None) -> DatasetSurvey:
    """What ``image_folder`` finds in ``root`` (or in the CSV ``csv``, relative to ``root``),
    reading image headers only: the readable images per split and class (``all`` where medsweep
    splits), the sizes and channels of the images (a seeded sample of ``SURVEY_SAMPLE`` on a
    larger folder, whose other files are counted unread), and each file whose header cannot be
    read or that is missing."""
    listing = list_images(Path(root).expanduser().resolve(), csv)
    sampled = _survey_sample(listing.images)
    headers = {item.source: _header(item) for item in sampled}
    problems = {source: header for source, header in headers.items() if isinstance(header, str)}
    read = [header for source, header in headers.items() if source not in problems]
    counts: dict[str, dict[str, int]] = {}
    for item in listing.images:
        per_class = counts.setdefault(item.split or "all", {name: 0 for name in listing.class_names})
        if item.source not in problems:
            per_class[listing.class_names[item.label]] += 1
    notes = list(listing.notes)
    if listing.fixed_splits:
        notes += [f"No {split} images: preparing the data cuts {split} from train, by its split fraction per class"
                  for split in SPLITS if split not in listing.listed_splits()]
    if len(sampled) < len(listing.images):
        notes.append(f"Sizes and channels from a seeded sample of {len(sampled)} of {len(listing.images)} images")
    options = {"root": str(listing.root), **({"csv": str(listing.csv)} if listing.csv else {})}
    return DatasetSurvey(format=DATASET, task="classification", root=listing.root, layout=listing.layout,
                         class_names=listing.class_names, counts=dict(sorted(counts.items(), key=_split_order)),
                         image_sizes=tuple(size for size, _ in read),
                         channels=1 if read and all(mode in GREY_MODES for _, mode in read) else 3,
                         fixed_splits=listing.fixed_splits, options=options,
                         problems=tuple(problems.values()),
                         notes=tuple(notes))


def _header(item: ListedImage) -> tuple[tuple[int, int], str] | str:
    """The image's (width, height) and Pillow mode from its header alone, or the problem."""
    if not item.path.is_file():
        return f"{item.source}: listed in the CSV but the file is missing"
    try:
        with Image.open(item.path) as image:
            return image.size, image.mode
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        return f"{item.source}: cannot read the image header ({exc})"


def _survey_sample(images: tuple[ListedImage, ...]) -> list[ListedImage]:
    """Every image, or ``SURVEY_SAMPLE`` of them chosen with seed 42 (in listing order)."""
    if len(images) <= SURVEY_SAMPLE:
        return list(images)
    chosen = np.random.default_rng(SPLIT_SEED).choice(len(images), size=SURVEY_SAMPLE, replace=False)
    return [images[i] for i in sorted(chosen)]


def _split_order(item: tuple[str, dict]) -> int:
    return SPLITS.index(item[0]) if item[0] in SPLITS else -1
