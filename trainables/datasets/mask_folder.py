"""``mask_folder``: semantic segmentation on a researcher's own images and masks.

Layouts (folder names compared case-insensitively):

* ``ROOT/images/`` and ``ROOT/masks/`` (also ``image/``, ``imgs/``; ``mask/``, ``labels/``,
  ``annotations/``), or two folders named by the data settings ``images`` and ``masks``
  (relative to ROOT). medsweep splits the pairs: one shuffle seeded with 42, cut by
  ``split_fractions`` (70/15/15 by default); under the ``leakage`` policy ``group`` (the
  default) duplicate images go into one split together, each mask with its image.
* ``ROOT/{train,val,test}/`` (also ``training/``; ``valid/``, ``validation/``; ``testing/``),
  each holding an images and a masks folder as above: the folders fix the splits, so the policy
  ``group`` is refused (``warn`` is the default). A missing val or test folder is cut from
  train, seeded, in proportion to ``split_fractions``.

An image (PNG, JPEG, BMP or TIFF; grey or colour, stored as RGB) pairs with the mask of the
same path below its folder and the same stem, or the stem followed by ``_mask`` or ``-mask``
(subfolders such as one per patient are kept). A mask holds one class value per pixel: an 8- or
16-bit grey or palette PNG, or an RGB image whose three channels are equal; a colour mask is
an error. The ``classes`` map turns mask values into class indices: the background (the value
named ``background``, else value 0) is index 0, the other values follow in increasing order.
Without a map the masks are binary: 0 is background and any non-zero value foreground, as long
as the masks hold one non-zero value only (0/1 and 0/255 masks both read so); several non-zero
values are an error asking for the map. Images are resized bilinearly, masks nearest-neighbour
(pixel centres aligned with the bilinear resize), so a resized mask holds only mapped classes.

Dropped, each named in the audit with the reason: unpaired images and masks, pairs whose image
and mask differ in size, masks holding values outside the map (with their pixel counts), and
files that do not decode. The audit counts per split the images holding each class, and its
masks section and notes give the mask values found and each split's pixel share per class.
Decoded, resized pairs are cached by the files' digests and the reading parameters.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from trainables.config import ConfigError
from trainables.datasets.audit import DataAudit
from trainables.datasets.base import ClassificationData, DatasetError, SplitArrays
from trainables.datasets.cache import file_digests, fingerprint_of_digests, read_through_cache
from trainables.datasets.download import cache_dir
from trainables.datasets.folders import SPLIT_SPELLINGS, check_split_fractions, resolve_root
from trainables.datasets.images import CorruptImageError, decode_rgb, resize_square
from trainables.datasets.leakage import ImagePrint, check_leakage, image_print
from trainables.datasets.leakage_policy import (
    Grouping,
    apply_after_split,
    duplicate_index_groups,
    resolve_policy,
    split_keeping_groups,
    unassigned_prints,
)
from trainables.datasets.options import LeakageOptions
from trainables.datasets.survey import DatasetSurvey
from trainables.datasets.taleqani_common import SPLIT_FRACTIONS, SPLIT_SEED, SPLITS

DATASET = "mask_folder"
HOLDING = "images/ and masks/ (or train/, val/ and test/ each holding them)"
ALL = "all"                 # the split of the pairs of a layout without split folders
UNPAIRED = "unpaired"       # the audit's split for files dropped while pairing
IMAGE_FOLDERS = ("images", "image", "imgs")
MASK_FOLDERS = ("masks", "mask", "labels", "annotations")
MASK_SUFFIXES = ("_mask", "-mask")
FILE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
BINARY_NAMES = ("background", "foreground")
BACKGROUND = "background"
MAX_CLASSES = 256           # labels are uint8
EMPTY_BELOW = 0.005         # masks with less foreground than this are listed as near-empty (and kept)
SURVEY_MASKS = 500          # masks a survey reads the values of; a larger folder is sampled
MANY_VALUES = 32            # a survey finding more distinct mask values suspects lossy masks
READER_VERSION = 1


@dataclass(frozen=True)
class MaskFolderOptions(LeakageOptions):
    """``root``: the folder holding the layout (None: the data dir, ``--data-dir`` or
    ``$MEDSWEEP_DATA_DIR``; a relative path is taken from the data dir when one is given, else
    from the working directory). ``images`` and ``masks``: the two folders, relative to root,
    when they have other names. ``classes``: mask value → class name (None: binary masks, see
    the module). ``split_fractions``: train, val and test fractions of a split made here.

    ``classes`` is a plain ``dict`` field (``check_field_types`` cannot check ``dict[int,
    str]``): its keys may be ints (YAML) or digit strings (JSON, as ``sweep.json`` stores the
    data section), and become ints sorted by value here."""

    root: str | None = None
    images: str | None = None
    masks: str | None = None
    classes: dict | None = None
    split_fractions: list[float] = field(default_factory=lambda: list(SPLIT_FRACTIONS))

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("images", "masks"):
            check_relative_folder(key, getattr(self, key))
        if self.classes is not None:
            object.__setattr__(self, "classes", normalised_classes(self.classes))
        check_split_fractions(self.split_fractions)


def check_relative_folder(key: str, value: str | None) -> None:
    """``images`` and ``masks`` name folders inside root, so the cache keys stay relative."""
    parts = PurePosixPath(value.replace("\\", "/")).parts if value is not None else ()
    if value is not None and (not value.strip() or value.startswith(("/", "~")) or ".." in parts):
        raise ConfigError(f"data setting {key!r} must be a folder inside root, as a relative path such as "
                          f"{key}/ or data/{key}, got {value!r}; move the folder under root or point root above it",
                          key=key)



def normalised_classes(classes: dict) -> dict[int, str]:
    """``classes`` with int keys (a digit string from JSON becomes its int), sorted by value,
    after checking that the values are pixel values, the names unique and non-empty, that there
    are 2 to ``MAX_CLASSES`` classes and that one is the background."""
    example = "for example {0: background, 128: cytoplasm, 255: nucleus}"
    result: dict[int, str] = {}
    for key, name in classes.items():
        value = _pixel_value(key)
        if value is None or value in result:
            why = "appears twice" if value in result else "is not a mask pixel value (a whole number, 0 or more)"
            raise ConfigError(f"data setting 'classes': key {key!r} {why}; map each mask value to a class name, "
                              f"{example}", key="classes")
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"data setting 'classes': the name of value {value} must be a non-empty string, got "
                              f"{name!r}; {example}", key="classes")
        result[value] = name
    names = Counter(result.values())
    problems = [f"the names {', '.join(sorted(n for n, c in names.items() if c > 1))} are given to several values"
                ] if max(names.values(), default=0) > 1 else []
    if not 2 <= len(result) <= MAX_CLASSES:
        problems.append(f"it must map 2 to {MAX_CLASSES} values, got {len(result)}")
    if 0 not in result and BACKGROUND not in names:
        problems.append(f"it must map value 0 to the background or name one class {BACKGROUND!r} "
                        f"(class index 0 is the background)")
    if problems:
        raise ConfigError(f"data setting 'classes' {classes!r}: {'; '.join(problems)}; {example}", key="classes")
    return dict(sorted(result.items()))


def _pixel_value(key: Any) -> int | None:
    """``key`` as a pixel value (an int, or a digit string as JSON writes int keys), or None."""
    if isinstance(key, str) and key.strip().isdigit():
        return int(key)
    if isinstance(key, int) and not isinstance(key, bool) and key >= 0:
        return key
    return None


@dataclass(frozen=True)
class ClassMap:
    """How mask values become class indices: ``values[i]`` is the mask value of class ``i``
    (named ``names[i]``; the background first, then increasing values); ``values`` None means
    binary masks (0 background, any non-zero value foreground)."""

    names: tuple[str, ...]
    values: tuple[int, ...] | None

    @classmethod
    def of(cls, classes: dict[int, str] | None) -> ClassMap:
        if classes is None:
            return cls(BINARY_NAMES, None)
        background = next((v for v, name in classes.items() if name == BACKGROUND), 0)
        order = [background, *sorted(v for v in classes if v != background)]
        return cls(tuple(classes[v] for v in order), tuple(order))

    def rule(self) -> str:
        """The mapping in words, for the audit."""
        if self.values is None:
            return f"mask value 0 is {BINARY_NAMES[0]} (class 0) and any non-zero value {BINARY_NAMES[1]} (class 1)"
        return ", ".join(f"mask value {v} is {n} (class {i})" for i, (v, n) in enumerate(zip(self.values, self.names)))

    def indices(self, mask: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, list[int]]:
        """The class index (uint8) of every pixel of ``mask`` whose distinct values are
        ``values``, and the values the map lacks (then the indices are meaningless)."""
        if self.values is None:
            return (mask != 0).astype(np.uint8), []
        unknown = [int(v) for v in values if int(v) not in self.values]
        order = np.argsort(self.values)
        sorted_values = np.asarray(self.values, dtype=np.int64)[order]
        positions = np.clip(np.searchsorted(sorted_values, mask), 0, len(sorted_values) - 1)
        return order[positions].astype(np.uint8), unknown


@dataclass(frozen=True)
class PairFolders:
    """The images and masks folders of one split folder, or of the whole root (split ``ALL``)."""

    split: str
    images: Path
    masks: Path


@dataclass(frozen=True)
class Layout:
    """Where a root's pairs are: one ``PairFolders`` (split ``ALL``: medsweep splits) or one per
    split folder present (the folders fix the splits; train always among them)."""

    root: Path
    folders: tuple[PairFolders, ...]

    @property
    def fixed(self) -> bool:
        return self.folders[0].split != ALL

    def describe(self) -> str:
        """The layout in words, for the audit and the survey."""
        pairs = ", ".join(f"{self._relative(f.images)}/ + {self._relative(f.masks)}/" for f in self.folders)
        if not self.fixed:
            return f"{pairs} paired by file stem; medsweep makes the train/val/test split (seed {SPLIT_SEED})"
        missing = [s for s in SPLITS if s not in {f.split for f in self.folders}]
        cut = f"; {' and '.join(missing)} cut from train (seed {SPLIT_SEED})" if missing else ""
        return f"split folders {pairs} paired by file stem{cut}"

    def _relative(self, folder: Path) -> str:
        return folder.relative_to(self.root).as_posix()


def find_layout(root: Path, *, images: str | None = None, masks: str | None = None) -> Layout:
    """The layout of ``root``: the folders ``images`` and ``masks`` when given, else split
    folders when there are any, else the images and masks folders of root itself."""
    if images is None and masks is None:
        found = {split: _child(root, names) for split, names in SPLIT_SPELLINGS.items()}
        present = {split: folder for split, folder in found.items() if folder is not None}
        if present and "train" not in present:
            raise DatasetError(f"{root} has the split folder(s) {', '.join(f.name + '/' for f in present.values())} "
                               f"but no train/ (or training/): add the training pairs as train/images/ and "
                               f"train/masks/, or put all pairs in {root}/images/ and masks/ to have medsweep split "
                               f"them")
        if present:
            return Layout(root, tuple(_pair_folders(folder, split) for split, folder in present.items()))
    return Layout(root, (_pair_folders(root, ALL, images=images, masks=masks),))


def _pair_folders(folder: Path, split: str, *, images: str | None = None, masks: str | None = None) -> PairFolders:
    """The images and masks folders inside ``folder``; a missing one is an error naming the
    names looked for and the data settings that name it."""
    image_dir = folder / images if images else _child(folder, IMAGE_FOLDERS)
    mask_dir = folder / masks if masks else _child(folder, MASK_FOLDERS)
    missing = [given + "/" if given else f"{side} folder ({'/, '.join(names)}/)" for side, given, names, found in
               (("images", images, IMAGE_FOLDERS, image_dir), ("masks", masks, MASK_FOLDERS, mask_dir))
               if found is None or not found.is_dir()]
    if missing:
        raise DatasetError(f"{folder} has no {' and no '.join(missing)}. mask_folder reads ROOT/images/ with "
                           f"ROOT/masks/, or ROOT/train/, val/ and test/ each holding both: point the data setting "
                           f"root (or --data-dir) at that folder, or name the two folders with the data settings "
                           f"images and masks")
    if image_dir.resolve() == mask_dir.resolve():
        raise DatasetError(f"the data settings images and masks both name {image_dir}: keep the masks in a folder "
                           f"of their own, such as masks/ beside images/")
    return PairFolders(split, image_dir, mask_dir)


def _child(folder: Path, names: tuple[str, ...]) -> Path | None:
    """The first subfolder of ``folder`` whose name is one of ``names`` (any case)."""
    children = {path.name.lower(): path for path in sorted(folder.iterdir()) if path.is_dir()}
    return next((children[name] for name in names if name in children), None)


@dataclass(frozen=True)
class Pair:
    """An image and its mask; ``source`` is the image's path below its images folder."""

    source: str
    image: Path
    mask: Path


@dataclass(frozen=True)
class Problem:
    """A file left out, by its path relative to root, and why."""

    item: str
    reason: str


def list_pairs(folders: PairFolders, root: Path) -> tuple[list[Pair], list[Problem]]:
    """The pairs of ``folders`` sorted by source, and each file that has no partner or shares
    its key (path below its folder and stem) with another file of its side. An image ``KEY``
    takes the mask ``KEY``, else ``KEY_mask``, else ``KEY-mask``."""
    images, problems = _index(folders.images, root)
    masks, more = _index(folders.masks, root)
    problems += more
    where_images, where_masks = (f.relative_to(root).as_posix() for f in (folders.images, folders.masks))
    pairs, used = [], {}
    for key, image in sorted(images.items()):
        mask_key = next((k for k in (key, *(key + s for s in MASK_SUFFIXES)) if k in masks), None)
        if mask_key is None:
            problems.append(Problem(image.relative_to(root).as_posix(),
                                    f"no mask {key}.*, {key}_mask.* or {key}-mask.* in {where_masks}/"))
            continue
        used[mask_key] = image
        pairs.append(Pair(image.relative_to(folders.images).as_posix(), image, masks[mask_key]))
    for key in sorted(masks.keys() - used.keys()):
        stem = next((key[:-len(s)] for s in MASK_SUFFIXES if key.endswith(s)), key)
        taken = next((k for k in (stem, *(stem + s for s in MASK_SUFFIXES)) if k in used), None)
        reason = (f"{used[taken].relative_to(root).as_posix()} pairs with {masks[taken].relative_to(root).as_posix()} "
                  f"already; rename or remove one of the masks" if taken and stem in images
                  else f"no image {stem}.* in {where_images}/")
        problems.append(Problem(masks[key].relative_to(root).as_posix(), reason))
    return pairs, problems


def _index(folder: Path, root: Path) -> tuple[dict[str, Path], list[Problem]]:
    """``key → file`` for the image files below ``folder``, the key being the path below it
    without the suffix; a second file with a key already taken is a problem."""
    index: dict[str, Path] = {}
    problems = []
    for path in pair_files(folder):
        key = path.relative_to(folder).with_suffix("").as_posix()
        if key in index:
            problems.append(Problem(path.relative_to(root).as_posix(),
                                    f"has the name of {index[key].relative_to(root).as_posix()} but another suffix; "
                                    f"rename or remove one of them"))
        else:
            index[key] = path
    return index, problems


def pair_files(folder: Path) -> list[Path]:
    """The image files (``FILE_SUFFIXES``, not hidden) anywhere below ``folder``, sorted."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in FILE_SUFFIXES
                  and not p.name.startswith("."))


def read_mask(path: Path) -> np.ndarray:
    """The class values of the mask at ``path`` as an H x W int32 array. Unreadable files
    raise ``CorruptImageError``; a colour mask, or one of a mode without integer values, a
    ``DatasetError`` naming the file and the fix."""
    try:
        with Image.open(path) as image:
            image.load()
            mode, pixels = image.mode, np.asarray(image.convert("L") if image.mode == "1" else image)
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        raise CorruptImageError(f"{path}: cannot decode mask ({exc})") from exc
    fix = ("save each mask as a single-channel (grey or palette) PNG whose pixel values are the classes, e.g. "
           "0 background and 255 foreground")
    if mode in ("RGB", "RGBA"):
        if not (np.array_equal(pixels[..., 0], pixels[..., 1]) and np.array_equal(pixels[..., 0], pixels[..., 2])):
            raise DatasetError(f"{path} is a colour mask (its red, green and blue channels differ); mask_folder "
                               f"reads masks of class values: {fix}")
        pixels = pixels[..., 0]
    elif mode in ("LA", "PA"):
        pixels = pixels[..., 0]
    elif pixels.ndim != 2 or not np.issubdtype(pixels.dtype, np.integer):
        raise DatasetError(f"{path} is a {mode} image, not a mask of integer class values: {fix}")
    return pixels.astype(np.int32)


@dataclass
class _Reading:
    """What reading the pairs collects besides the arrays: the audit, each kept image's print
    (for the leakage check) and the number of masks holding each mask value."""

    root: Path
    image_size: int
    class_map: ClassMap
    audit: DataAudit
    prints: list[ImagePrint] = field(default_factory=list)
    values_seen: Counter = field(default_factory=Counter)

    def read_split(self, split: str, pairs: list[Pair]) -> SplitArrays:
        """One split's resized images and masks of class indices; kept images are counted in
        the audit once per class their resized mask holds."""
        size = self.image_size
        images, masks, sources = [], [], []
        for pair in pairs:
            decoded = self.read_pair(split, pair)
            if decoded is None:
                continue
            image, index = decoded
            self.prints.append(image_print(split, pair.source, pair.image, image))
            images.append(resize_square(image, size))
            masks.append(cv2.resize(index, (size, size), interpolation=cv2.INTER_NEAREST_EXACT))
            sources.append(pair.source)
            for name in self.present(masks[-1]):
                self.audit.keep(split, name)
        return SplitArrays(images=np.stack(images) if images else np.zeros((0, size, size, 3), np.uint8),
                           labels=np.stack(masks) if masks else np.zeros((0, size, size), np.uint8),
                           sources=np.asarray(sources, dtype=str))

    def present(self, mask: np.ndarray) -> list[str]:
        """The names of the classes ``mask`` (class indices) holds."""
        return [self.class_map.names[i] for i in np.unique(mask)]

    def read_pair(self, split: str, pair: Pair) -> tuple[np.ndarray, np.ndarray] | None:
        """The decoded image and its mask of class indices, or None (audited) when unusable."""
        item = pair.image.relative_to(self.root).as_posix()
        try:
            image = decode_rgb(pair.image)
            mask = read_mask(pair.mask)
        except CorruptImageError as exc:
            self.audit.drop(split, item, f"corrupt file: {exc}")
            return None
        self.audit.images_read[split] += 1
        if image.shape[:2] != mask.shape:
            self.audit.drop(split, item, f"size mismatch: image {image.shape[1]}x{image.shape[0]}, mask "
                                         f"{pair.mask.name} {mask.shape[1]}x{mask.shape[0]}; give both the same size")
            return None
        values, counts = np.unique(mask, return_counts=True)
        self.values_seen.update(int(v) for v in values)
        index, unknown = self.class_map.indices(mask, values)
        if unknown:
            found = ", ".join(f"{v} ({int(c)} px)" for v, c in zip(values, counts) if int(v) in unknown)
            self.audit.drop(split, item, f"mask {pair.mask.name} holds values outside the classes map: {found}; add "
                                         f"them to the data setting classes or correct the mask")
            return None
        return image, index


def read_mask_folder(layout: Layout, *, image_size: int, class_map: ClassMap,
                     fractions: tuple[float, ...] = SPLIT_FRACTIONS, seed: int = SPLIT_SEED,
                     policy: str = "group") -> tuple[dict[str, SplitArrays], DataAudit]:
    """Images and masks of class indices of every split, and the audit of the whole folder.

    Pairs are listed per folder of ``layout``, assigned to splits (``assign_splits``), decoded
    and resized; the leakage ``policy`` (resolved) runs on the result. Binary masks (no
    ``classes`` map) holding several non-zero values are an error naming them."""
    audit = DataAudit(dataset=DATASET, root=str(layout.root), class_names=class_map.names,
                      notes=[f"Layout: {layout.describe()}."])
    listed = {}
    for folders in layout.folders:
        listed[folders.split], problems = list_pairs(folders, layout.root)
        for problem in problems:
            audit.drop(UNPAIRED, problem.item, problem.reason)
    if not any(listed.values()):
        raise DatasetError(f"{layout.root}: no image has a mask ({len(audit.dropped)} unpaired file(s), e.g. "
                           f"{'; '.join(f'{d.item}: {d.reason}' for d in audit.dropped[:3]) or 'none'}); a mask "
                           f"pairs with the image of the same name, optionally ending in _mask or -mask")
    assigned, grouping = assign_splits(layout, listed, fractions=fractions, seed=seed, policy=policy)
    reading = _Reading(layout.root, image_size, class_map, audit)
    result = {}
    for split, pairs in assigned.items():
        audit.images_listed[split] = len(pairs)
        result[split] = reading.read_split(split, pairs)
    check_binary_values(class_map, reading.values_seen, layout.root)
    audit.leakage = check_leakage(reading.prints)
    result = apply_after_split(policy, result, audit, grouping,
                               columns_of=lambda source, mask: reading.present(mask))
    audit.masks = mask_section(result, class_map, reading.values_seen, audit)
    audit.notes += [f"Pixels per class in {split}: " + ", ".join(f"{name} {share:.1%}" for name, share in
                                                                 shares.items())
                    for split, shares in audit.masks["pixel_shares"].items()]
    return result, audit


def assign_splits(layout: Layout, listed: dict[str, list[Pair]], *, fractions: tuple[float, ...], seed: int,
                  policy: str) -> tuple[dict[str, list[Pair]], Grouping]:
    """The pairs of each split, and the groups of duplicates kept together. Without split
    folders all pairs are shuffled with ``seed`` and cut by ``fractions`` (under ``group``, each
    group of duplicate images as one); with them, each folder is its split, and a missing val
    or test split is cut from train by the fractions' proportions."""
    rng = np.random.default_rng(seed)
    if not layout.fixed:
        pairs = listed[ALL]
        grouping = duplicate_pair_groups(pairs) if policy == "group" else Grouping()
        parts = split_keeping_groups(len(pairs), grouping.indices,
                                     lambda representatives: cut(len(representatives), fractions, rng))
        return {split: [pairs[i] for i in part] for split, part in zip(SPLITS, parts)}, grouping
    cut_from_train = ("train", *(split for split in SPLITS if split not in listed))
    if len(cut_from_train) > 1:
        parts = cut(len(listed["train"]), tuple(fractions[SPLITS.index(s)] for s in cut_from_train), rng)
        listed = {**listed, **{split: [listed["train"][i] for i in part] for split, part in zip(cut_from_train, parts)}}
    return {split: listed[split] for split in SPLITS}, Grouping()


def cut(count: int, fractions: tuple[float, ...], rng: np.random.Generator) -> list[np.ndarray]:
    """``range(count)`` shuffled by ``rng`` and cut into parts in proportion to ``fractions``:
    every part after the first by rounding (at least one item each once there are as many items
    as parts), the first the rest."""
    total = sum(fractions)
    rest = [round(count * f / total) for f in fractions[1:]]
    if count >= len(fractions):
        rest = [max(1, n) for n in rest]
    bounds = np.cumsum([0, count - sum(rest), *rest])
    order = rng.permutation(count)
    return [order[start:stop] for start, stop in zip(bounds[:-1], bounds[1:])]


def duplicate_pair_groups(pairs: list[Pair]) -> Grouping:
    """The groups (indices into ``pairs``) of pairs whose images are copies or confirmed
    near-duplicates of each other, found before splitting; a mask follows its image."""
    prints = unassigned_prints((pair.source, pair.image) for pair in pairs)
    return duplicate_index_groups([pair.source for pair in pairs], prints)


def check_binary_values(class_map: ClassMap, values_seen: Counter, root: Path) -> None:
    """Without a ``classes`` map every non-zero value is foreground, which is only safe when
    the masks hold one non-zero value; several are an error giving the map to write."""
    nonzero = sorted(v for v in values_seen if v != 0)
    if class_map.values is None and len(nonzero) > 1:
        found = ", ".join(f"{v} in {values_seen[v]} mask(s)" for v in nonzero)
        suggested = ", ".join(f"{v}: {name}" for v, name in guess_classes(set(values_seen)).items())
        raise DatasetError(f"the masks under {root} hold several non-zero values ({found}), so they are not binary: "
                           f"set the data setting classes to name each value, e.g. classes: {{{suggested}}}")


def mask_section(splits: dict[str, SplitArrays], class_map: ClassMap, values_seen: Counter,
                 audit: DataAudit) -> dict[str, Any]:
    """The audit's masks section (see ``audit.format_masks``): the mapping rule, the spread of
    foreground (non-background) fractions over the kept masks, the near-empty ones by name (kept),
    the pairs dropped for their names or sizes, the masks holding each mask value, and each
    split's share of pixels per class."""
    fractions = {f"{split}/{source}": float((mask != 0).mean())
                 for split, arrays in splits.items() for source, mask in zip(arrays.sources, arrays.labels)}
    spread = np.asarray(list(fractions.values()), dtype=np.float64)
    counts, edges = np.histogram(spread, bins=50, range=(0.0, 1.0)) if len(spread) else ([], [])
    return {
        "rule": f"{class_map.rule()}; masks resized nearest-neighbour",
        "empty_below": EMPTY_BELOW,
        "policy": "keep",
        "fraction_quantiles": {f"p{q}": round(float(np.percentile(spread, q)), 5) if len(spread) else None
                               for q in (5, 50, 95)},
        "histogram": {"edges": [round(float(e), 4) for e in edges], "counts": [int(c) for c in counts]},
        "near_empty": [{"source": name, "fraction": round(value, 5)} for name, value in sorted(fractions.items())
                       if value < EMPTY_BELOW],
        "mismatched": [{"source": d.item, "reason": d.reason} for d in audit.dropped
                       if d.split == UNPAIRED or d.reason.startswith("size mismatch")],
        "values": {str(v): values_seen[v] for v in sorted(values_seen)},
        "pixel_shares": {split: pixel_shares(arrays.labels, class_map.names) for split, arrays in splits.items()},
    }


def pixel_shares(labels: np.ndarray, names: tuple[str, ...]) -> dict[str, float]:
    """Each class's share of the pixels of ``labels`` (all zero for an empty split)."""
    counts = np.bincount(labels.ravel(), minlength=len(names))
    total = max(int(counts.sum()), 1)
    return {name: round(int(count) / total, 5) for name, count in zip(names, counts)}




def leakage_policy(leakage: str | None, layout: Layout) -> str:
    """The leakage policy to run: ``group`` by default where medsweep splits, ``warn`` where
    split folders fix the splits (and ``group`` is refused there, naming the folders)."""
    if leakage == "group" and layout.fixed:
        raise DatasetError(f"leakage policy 'group' does not apply to {layout.root}: its split folders "
                           f"({', '.join(f.images.parent.name + '/' for f in layout.folders)}) fix the splits, so "
                           f"duplicates cannot be moved into one split; set the data setting leakage to warn, drop "
                           f"or fail, or merge the folders into images/ and masks/ to have medsweep split them")
    return resolve_policy(leakage, dataset=DATASET, splits_made_here=not layout.fixed)


def source_files(layout: Layout) -> list[Path]:
    """Every file the layout's folders hold that pairing considers (paired or not)."""
    return [path for folders in layout.folders for folder in (folders.images, folders.masks)
            for path in pair_files(folder)]


def prepare_mask_folder(*, data_dir: str | None, image_size: int, root: str | None = None, images: str | None = None,
                        masks: str | None = None, classes: dict | None = None,
                        split_fractions: tuple[float, ...] | list[float] = SPLIT_FRACTIONS,
                        leakage: str | None = None, use_cache: bool = True) -> tuple[ClassificationData, DataAudit]:
    """Images and masks of class indices (labels N x H x W uint8) of every split, and the
    audit of the whole folder; ``class_names`` lists the classes by index, the background
    first. The keywords after ``image_size`` are ``MaskFolderOptions``'s fields (checked
    here as a data section is). The result is cached under the files' digests and the
    reading parameters, whose hash is the data's fingerprint."""
    options = MaskFolderOptions(root=root, images=images, masks=masks, classes=classes,
                                split_fractions=list(split_fractions), leakage=leakage)
    layout = find_layout(resolve_root(DATASET, options.root, data_dir, holding=HOLDING), images=options.images,
                         masks=options.masks)
    policy = leakage_policy(options.leakage, layout)
    class_map = ClassMap.of(options.classes)
    fractions = tuple(options.split_fractions)
    mapping = None if class_map.values is None else [[v, n] for v, n in zip(class_map.values, class_map.names)]
    params = {"reader": READER_VERSION, "image_size": image_size, "seed": SPLIT_SEED, "fractions": list(fractions),
              "classes": mapping, "leakage": policy,
              "folders": [[f.split, f.images.relative_to(layout.root).as_posix(),
                           f.masks.relative_to(layout.root).as_posix()] for f in layout.folders]}
    key = fingerprint_of_digests(file_digests(source_files(layout)), layout.root, params)
    splits, audit = read_through_cache(
        cache_dir() / "masks" / f"{DATASET}-{key[:20]}.npz", params,
        lambda: read_mask_folder(layout, image_size=image_size, class_map=class_map, fractions=fractions,
                                 policy=policy),
        use_cache=use_cache)
    return ClassificationData(name=DATASET, class_names=class_map.names, splits=splits, fingerprint=key), audit


def guess_classes(values: set[int]) -> dict[int, str]:
    """A ``classes`` map for masks holding ``values`` (two or more): 0 (else the smallest
    value) is the background; a second value is ``foreground``, several are ``class_<value>``."""
    background, *others = sorted(values)
    if len(others) == 1:
        return {background: BACKGROUND, others[0]: BINARY_NAMES[1]}
    return {background: BACKGROUND, **{value: f"class_{value}" for value in others}}


def survey_mask_folder(root: str | os.PathLike, *, images: str | None = None,
                       masks: str | None = None) -> DatasetSurvey:
    """What ``mask_folder`` finds under ``root`` without decoding every image: the pairs,
    every image's and mask's header (size, mode), and the distinct values of the masks (all of
    them up to ``SURVEY_MASKS``, else an evenly spaced sample of that many), from which it
    guesses the ``classes`` map (see ``guess_classes``). ``counts`` are the masks holding
    each class per split (``all`` where medsweep splits), among the masks read; ``problems``
    name the unpaired, mismatched and unreadable files."""
    for key, value in (("images", images), ("masks", masks)):
        check_relative_folder(key, value)
    root = resolve_root(DATASET, os.fspath(root), None, holding=HOLDING)
    layout = find_layout(root, images=images, masks=masks)
    listed = {folders.split: list_pairs(folders, root) for folders in layout.folders}
    problems = [f"{p.item}: {p.reason}" for _, found in listed.values() for p in found]
    pairs = [(split, pair) for split, (found, _) in listed.items() for pair in found]
    sizes, modes, readable = _headers(pairs, root, problems)
    chosen = [readable[i] for i in np.unique(np.linspace(0, len(readable) - 1, SURVEY_MASKS).round().astype(int))
              ] if len(readable) > SURVEY_MASKS else readable
    values_of = _mask_values(chosen, root, problems)
    seen = set().union(*values_of)
    classes = guess_classes(seen) if len(seen) > 1 else None
    class_map = ClassMap.of(classes)
    counts = {split: dict.fromkeys(class_map.names, 0) for split in listed}
    for (split, _), values in zip(chosen, values_of):
        for name in _names_held(class_map, values):
            counts[split][name] += 1
    notes = _survey_notes(len(pairs), len(chosen), seen, modes)
    if len(seen) < 2:
        problems.append(f"every mask read holds the single value {min(seen)}: there is nothing to segment"
                        if seen else "no mask could be read")
    options = {"root": str(root), **({"images": images} if images else {}), **({"masks": masks} if masks else {}),
               **({"classes": classes} if classes else {})}
    return DatasetSurvey(format=DATASET, task="segmentation", root=root, layout=layout.describe(),
                         class_names=class_map.names, counts=counts, image_sizes=tuple(sizes), channels=3,
                         fixed_splits=layout.fixed, options=options, problems=tuple(problems), notes=tuple(notes))


def _headers(pairs: list[tuple[str, Pair]], root: Path, problems: list[str],
             ) -> tuple[list[tuple[int, int]], Counter, list[tuple[str, Pair]]]:
    """Every paired image's size, the images' modes, and the pairs whose image and mask
    headers open and agree in size; the others go into ``problems``."""
    sizes, modes, readable = [], Counter(), []
    for split, pair in pairs:
        try:
            with Image.open(pair.image) as image, Image.open(pair.mask) as mask:
                size, mask_size, mode = image.size, mask.size, image.mode
        except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
            problems.append(f"{pair.image.relative_to(root).as_posix()}: unreadable image or mask ({exc})")
            continue
        sizes.append(size)
        modes[mode] += 1
        if size != mask_size:
            problems.append(f"{pair.image.relative_to(root).as_posix()}: size mismatch: image {size[0]}x{size[1]}, "
                            f"mask {pair.mask.name} {mask_size[0]}x{mask_size[1]}")
        else:
            readable.append((split, pair))
    return sizes, modes, readable


def _mask_values(chosen: list[tuple[str, Pair]], root: Path, problems: list[str]) -> list[set[int]]:
    """The distinct values of each chosen mask (none for one that does not decode, which goes
    into ``problems``)."""
    values = []
    for _, pair in chosen:
        try:
            values.append({int(v) for v in np.unique(read_mask(pair.mask))})
        except CorruptImageError as exc:
            problems.append(f"{pair.mask.relative_to(root).as_posix()}: unreadable mask ({exc})")
            values.append(set())
    return values


def _names_held(class_map: ClassMap, values: set[int]) -> list[str]:
    """The classes a mask holding ``values`` holds, by name."""
    if class_map.values is None:
        return [class_map.names[int(v != 0)] for v in sorted({v != 0 for v in values})]
    return [name for value, name in zip(class_map.values, class_map.names) if value in values]


def _survey_notes(listed: int, read: int, seen: set[int], modes: Counter) -> list[str]:
    """What a person should know about the survey's numbers: sampling, lossy-looking masks,
    and grey images stored as RGB."""
    notes = []
    if read < listed:
        notes.append(f"mask values and counts come from an evenly spaced sample of {read} of {listed} pairs")
    if len(seen) > MANY_VALUES:
        notes.append(f"the masks hold {len(seen)} distinct values: if they were saved as JPEG (lossy), save them "
                     f"as PNG, or edit the classes map")
    grey = sum(count for mode, count in modes.items() if mode in ("1", "L", "LA", "I", "I;16", "P"))
    if grey:
        notes.append(f"{grey} image(s) are grey or palette; mask_folder stores every image as RGB")
    return notes
